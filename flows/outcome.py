"""What a flow did to the registry, as the CLI prints it and a flow run returns it."""

from __future__ import annotations

from pydantic import BaseModel

from tidemark.judging.decisions import Decision


class FlowOutcome(BaseModel):
    """What a flow did to the registry, as the CLI prints it and a flow run returns it.

    ``decision`` says what became of ``version``; for ``insufficient_evidence`` nothing was
    trained or registered and ``rows_short`` says how many more rows each segment needs
    (``all`` for the holdout as a whole). The ``heldout_*`` and ``*_error_by_segment`` fields
    give the evidence a judged decision rests on (the error the project judges, per segment);
    ``candidate_error_by_segment`` is also the error a retrain achieved on each segment, the
    level an alarm that it could not beat is closed at.
    """

    model_name: str
    version: str | None
    decision: Decision
    reason: str
    production_version: str | None
    row_count: int = 0
    candidate: dict[str, float] | None = None
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    heldout_n: int = 0
    heldout_n_by_segment: dict[str, int] = {}
    p_value: float | None = None
    candidate_error_by_segment: dict[str, float] = {}
    champion_error_by_segment: dict[str, float] | None = None
    rows_short: dict[str, int] = {}
