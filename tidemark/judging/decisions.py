"""What was decided about a version, and the reason a person reads in the registry.

``Decision`` is every outcome the flows report. The first four are the judge's and the only
ones written to a version's ``decision`` tag (the monitor reads them back from there); the
others say what a flow did without judging a candidate. The values are the words the flows
have always returned, so that a result stored by an earlier version still reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Decision(StrEnum):
    """What happened to a version, or to a flow's request about one."""

    PROMOTED = "promoted"
    REJECTED = "rejected"
    # Put in production over the policy, by hand.
    FORCED = "forced"
    # Too few rows to train or to judge: nothing trained, nothing registered, nothing promoted.
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"
    # Asked to serve what serves already, or a live verdict about versions no longer paired.
    UNCHANGED = "unchanged"
    # The bootstrap found a version in production and trained nothing.
    SKIPPED = "skipped"
    # Put in shadow by hand, as the challenger of production.
    CHALLENGING = "challenging"
    # Taken out of shadow: it lost, found no evidence, was retired by hand, or confirmed.
    RETIRED = "retired"
    ROLLED_BACK = "rolled back"


@dataclass(frozen=True, slots=True)
class Ruling:
    """A decision about one version, with the reason a person reads in the registry."""

    decision: Decision
    reason: str

    @property
    def promote(self) -> bool:
        """Whether the version goes to production."""
        return self.decision in (Decision.PROMOTED, Decision.FORCED)
