"""The ``retrain`` flow: a candidate from the recent joined records in MongoDB."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.candidate import judge_and_register, retrying, window_tags
from flows.outcome import FlowOutcome
from tidemark.config import Settings, get_settings
from tidemark.judging.holdout import MEASURED_AT
from tidemark.model import SPECIES, TrainingDataError
from tidemark.orchestration import RETRAIN_FLOW, SegmentStart
from tidemark.project.catalog import stack_catalog
from tidemark.registry.notes import Trigger
from tidemark.registry.writer import RecordSource
from tidemark.schemas import RetrainReason
from tidemark.store import TrainingStore


@task(cache_policy=NO_CACHE)
def read_records(
    settings: Settings,
    window_start: datetime | None,
    window_end: datetime | None,
    last_n: int | None,
    required: frozenset[str] = frozenset(),
    segment_starts: Mapping[str, SegmentStart] | None = None,
) -> tuple[pd.DataFrame, RecordSource, frozenset[str], dict[str, str]]:
    """The records to retrain on, the collection and query they came from, the species they
    were read for (those of the window or of the last records, not those remembered), and per
    species where its records begin and why.

    A species in ``segment_starts`` (its incident's change began there) is read from its start
    only, never before: its earlier records follow the law that no longer holds, and it is
    not completed with remembered records either.

    A window is completed with the latest records measured before it of every species it does
    not retrain for (``required``; all of the window's own species when empty): those absent
    from the window, and those it holds too few of to be judged. A drift or an error in one
    species must not make the new model forget the others, nor promote it without checking
    them. Each such species is completed to ``retrain_species_memory`` records and no more
    than the window holds, so that the fish of the window weigh at least as much as any species
    remembered. An empty window stays empty.
    """
    with TrainingStore(settings.store, stack_catalog(settings.projects).contracts()) as store:
        query: dict[str, Any]
        if window_start is not None:
            end = window_end or datetime.now(UTC)
            data = store.window(window_start, end)
            starts = dict(segment_starts or {})
            for species, since in starts.items():
                before = (data[SPECIES].astype(str) == species) & (
                    pd.to_datetime(data[store.time], utc=True) < since.start
                )
                data = data.loc[~before].reset_index(drop=True)
            own = frozenset(data[SPECIES].astype(str))
            query = {"filter": store.window_filter(window_start, end), "sort": store.time}
            if starts:
                query["segment_starts"] = {
                    species: store.segment_filter_since(species, since.start, end)
                    for species, since in sorted(starts.items())
                }
            keep = min(settings.retrain.segment_memory, len(data))
            counts = data[SPECIES].astype(str).value_counts()
            wanted = {
                species: keep - int(counts.get(species, 0))
                for species in store.segments_before(
                    window_start, (required or own) | frozenset(starts)
                )
            }
            wanted = {species: n for species, n in wanted.items() if n > 0}
            if wanted:
                earlier = store.latest_per_segment(window_start, wanted)
                if not earlier.empty:
                    # Remembered species are judged on their own latest records when they have
                    # evidence enough, and only trained on otherwise (tidemark.judging.holdout).
                    data = pd.concat([earlier, data], ignore_index=True)
                    query["remembered"] = {
                        "filters": [
                            {"filter": store.segment_filter(species, window_start), "limit": n}
                            for species, n in sorted(wanted.items())
                        ],
                        "sort": f"-{store.time}",
                    }
            reasons = {
                **{s: f"the window from {window_start.isoformat()}" for s in own},
                **{
                    s: (f"the window from {window_start.isoformat()}, with" if s in own else "")
                    + f" its latest {n} records before the window (remembered)"
                    for s, n in wanted.items()
                },
                **{s: since.reason for s, since in starts.items()},
            }
        else:
            n = last_n or settings.retrain.last_n
            data = store.recent(n)
            own = frozenset(data[SPECIES].astype(str)) if not data.empty else frozenset()
            query = {"filter": {}, "sort": f"-{store.time}", "limit": n}
            reasons = dict.fromkeys(own, f"the latest {n} records")
        return data, RecordSource(store.source_uri, query), own, reasons


# The result is persisted so that the monitor can read the outcome of a run it triggered
# (an insufficient_evidence outcome registers nothing in MLflow to read instead).
@flow(name=RETRAIN_FLOW, persist_result=True)
def retrain(
    reason: str = RetrainReason.MANUAL.value,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    last_n: int | None = None,
    metric: str | None = None,
    metric_value: float | None = None,
    threshold: float | None = None,
    species: list[str] | None = None,
    segment_starts: dict[str, SegmentStart] | None = None,
) -> FlowOutcome:
    """Retrain on the joined records of a time window, or on the ``last_n`` most recent ones.

    ``metric``, ``metric_value`` and ``threshold`` tell what fired; ``species`` the species the
    retrain is about, which must each have evidence enough (by default every species of the
    window or of the last records; species remembered from before the window are judged only
    when they have it). A retrain short of evidence ends with the decision
    ``insufficient_evidence`` and trains, registers and promotes nothing: records from before
    the window belong to the regime the alarm says has changed, so the caller waits for more
    windows rather than the flow reading further back. ``segment_starts`` gives, per species,
    where its change began and why (the monitor's estimate): that species is read from there
    only, and the version's tags and description say, per species, where its records begin
    and why. Fails (and registers nothing) on an empty window or bad values.
    """
    settings = get_settings()
    logger = get_run_logger()
    trigger = RetrainReason(reason)
    if window_end is not None and window_start is None:
        raise ValueError("window_end needs a window_start")
    if last_n is not None and last_n < 2:
        raise ValueError(f"last_n must be at least 2, got {last_n}")
    data, source, own, reasons = read_records.with_options(**retrying(settings))(
        settings,
        window_start,
        window_end,
        last_n,
        frozenset(species or ()),
        segment_starts,
    )
    if data.empty:
        where = (
            f"measured between {window_start} and {window_end or 'now'}"
            if window_start is not None
            else "in the store"
        )
        raise TrainingDataError(f"no joined records {where}: nothing to retrain on")
    logger.info("retraining (%s) on %d records from %s", trigger.value, len(data), source.uri)
    return judge_and_register(
        settings,
        data,
        source=source,
        trigger=Trigger(
            reason=trigger.value,
            metric=metric,
            metric_value=None if metric_value is None else float(metric_value),
            threshold=None if threshold is None else float(threshold),
            species=tuple(species or ()),
        ),
        window=window_tags(data, window_start, window_end),
        required_species=species if species else own,
        segment_windows=segment_windows(data, reasons),
    )


def segment_windows(data: pd.DataFrame, reasons: Mapping[str, str]) -> dict[str, str]:
    """Per species of ``data``: the span of its records, their number, and why they begin
    where they do."""
    if data.empty:
        return {}
    times = pd.to_datetime(data[MEASURED_AT], utc=True)
    spans = {}
    for species, at in times.groupby(data[SPECIES].astype(str)):
        why = reasons.get(str(species), "read with the window")
        spans[str(species)] = (
            f"{at.min().isoformat()} to {at.max().isoformat()} ({len(at)} records): {why}"
        )
    return spans
