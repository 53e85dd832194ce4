"""How often the shadow evaluation decides wrongly, and how many items it needs to decide.

    .venv/bin/python -m benchmarks.judging.shadow_verdicts [--runs 400] [--seed 0]

Each run is one shadow evaluation (``tidemark.judging.shadow.ShadowEvaluation``, the monitor's
own) looked at after every window of 30 to 60 items, as the monitor looks after every window,
until it decides or reaches ``max_fish``. Both versions' relative errors come from a log-space
model whose weight is off by ``exp(noise)``; the two share 80 % of their noise (an item hard
for one is hard for the other, as for two versions of one model). Scenarios:

- two equal models, normal and heavy-tailed (Student t, 3 degrees of freedom) noise, no
  margin: any verdict is wrong (the rate must stay under alpha, 0.05);
- a challenger exactly at the promotion margin (5 % better): any verdict is wrong;
- a challenger 25 % better (noise 0.06 against 0.08) must be promoted, one 15 % worse (0.092)
  retired: how many items each took.

Prints a table and writes benchmarks/results/judging_shadow_verdicts.json. The unit test
tests/unit/tidemark/judging/test_shadow.py asserts the bound on wrong verdicts on the same
simulation (same draws, seeds 0 to 399), and that clearly better and worse challengers are
decided.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tidemark.judging.shadow import ShadowEvaluation, ShadowRules
from tidemark.schemas import ShadowVerdict

RESULTS = Path(__file__).resolve().parents[1] / "results" / "judging_shadow_verdicts.json"
SEGMENTS = np.array(["a", "b"])
# Errors of a log-space model: the prediction is off by a factor exp(noise).
NOISE = 0.08
ALPHA = 0.05

Pairs = Callable[
    [np.random.Generator, int], tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]
]


def pairs(
    rng: np.random.Generator,
    n: int,
    *,
    champion: float = NOISE,
    challenger: float = NOISE,
    tails: int | None = None,
    challenger_factor: float = 1.0,
) -> tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]:
    """Segments and both models' relative errors on the same ``n`` items.

    The two models share part of their error (the item is hard for both); ``tails`` draws the
    noise from a Student t with that many degrees of freedom (scaled to unit variance);
    ``challenger_factor`` scales the challenger's errors.
    """

    def draw(size: tuple[int, ...]) -> NDArray[np.float64]:
        if tails is None:
            return rng.standard_normal(size)
        return rng.standard_t(tails, size) * math.sqrt((tails - 2) / tails)

    shared, own = draw((n,)) * math.sqrt(0.8), draw((2, n)) * math.sqrt(0.2)
    a = np.abs(np.expm1(champion * (shared + own[0])))
    b = np.abs(np.expm1(challenger * (shared + own[1]))) * challenger_factor
    return rng.choice(SEGMENTS, n), a, b


def run(config: ShadowRules, draw: Pairs, seed: int) -> ShadowEvaluation:
    """One evaluation looked at after every window of 30 to 60 items until it is decided."""
    rng = np.random.default_rng(seed)
    evaluation = ShadowEvaluation.start("1", "2", config)
    while not evaluation.decided:
        segments, a, b = draw(rng, int(rng.integers(30, 61)))
        evaluation = evaluation.update(segments, a, b)
    return evaluation


@dataclass(frozen=True)
class Scenario:
    """One row of the table: a pair of models, the rules, and the verdict that is right."""

    name: str
    margin: float
    max_fish: int
    draw: Pairs
    # None: any verdict is wrong (the right outcome is no evidence at max_fish).
    right: ShadowVerdict | None


@dataclass(frozen=True)
class Row:
    """What a scenario's runs came to."""

    scenario: str
    runs: int
    promoted: int
    retired: int
    no_evidence: int
    wrong_share: float
    median_items_to_verdict: float | None
    p90_items_to_verdict: float | None


SCENARIOS = (
    Scenario("equal models", 0.0, 2_000, lambda rng, n: pairs(rng, n), None),
    Scenario("equal models, heavy tails", 0.0, 2_000, lambda rng, n: pairs(rng, n, tails=3), None),
    Scenario(
        "challenger at the margin (5 % better)",
        0.05,
        2_000,
        lambda rng, n: pairs(rng, n, challenger_factor=0.95),
        None,
    ),
    Scenario(
        "challenger 25 % better",
        0.05,
        5_000,
        lambda rng, n: pairs(rng, n, challenger=0.06),
        ShadowVerdict.PROMOTE,
    ),
    Scenario(
        "challenger 15 % worse",
        0.05,
        5_000,
        lambda rng, n: pairs(rng, n, challenger=0.092),
        ShadowVerdict.RETIRE,
    ),
)


def measure(scenario: Scenario, runs: int, seed: int) -> Row:
    """Run one scenario ``runs`` times (seeds ``seed`` …) and count its verdicts."""
    config = ShadowRules(
        alpha=ALPHA, margin=scenario.margin, min_items=100, max_items=scenario.max_fish
    )
    outcomes = [run(config, scenario.draw, seed + i) for i in range(runs)]
    verdicts = [o.verdict for o in outcomes]
    if scenario.right is None:
        wrong = sum(v is not ShadowVerdict.NO_EVIDENCE for v in verdicts)
        decided = [o.n for o in outcomes if o.verdict is not ShadowVerdict.NO_EVIDENCE]
    else:
        wrong = sum(v is not scenario.right for v in verdicts)
        decided = [o.n for o in outcomes if o.verdict is scenario.right]
    return Row(
        scenario=scenario.name,
        runs=runs,
        promoted=verdicts.count(ShadowVerdict.PROMOTE),
        retired=verdicts.count(ShadowVerdict.RETIRE),
        no_evidence=verdicts.count(ShadowVerdict.NO_EVIDENCE),
        wrong_share=wrong / runs,
        median_items_to_verdict=float(statistics.median(decided)) if decided else None,
        p90_items_to_verdict=float(np.percentile(decided, 90)) if decided else None,
    )


def _items(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main() -> None:
    """Run every scenario, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [measure(s, args.runs, args.seed) for s in SCENARIOS]
    print(f"{args.runs} runs per scenario, a look every 30-60 items, alpha {ALPHA}, min 100 items")
    print(
        f"{'scenario':<40} {'promoted':>8} {'retired':>8} {'none':>6} {'wrong':>7} "
        f"{'median n':>9} {'p90 n':>7}"
    )
    for row in rows:
        print(
            f"{row.scenario:<40} {row.promoted:>8} {row.retired:>8} {row.no_evidence:>6} "
            f"{row.wrong_share:>7.2%} {_items(row.median_items_to_verdict):>9} "
            f"{_items(row.p90_items_to_verdict):>7}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "runs": args.runs,
                "seed": args.seed,
                "alpha": ALPHA,
                "rows": [asdict(row) for row in rows],
            },
            indent=2,
        )
    )
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
