"""The ``rollback`` flow: production goes back to the version that preceded it."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.context import project_context
from flows.outcome import FlowOutcome
from tidemark.judging.decisions import Decision
from tidemark.orchestration import ROLLBACK_FLOW
from tidemark.registry import writer as registry


@flow(name=ROLLBACK_FLOW)
def rollback(
    reason: str = "rolled back by hand", project: str | None = None, version: str | None = None
) -> FlowOutcome:
    """Re-point production of ``project``'s model (the stack's default project when None) to
    the previous production version; fails when there is none.

    ``reason`` is recorded on both versions (tags and description), the rolled-back one and
    the restored one. With ``version``, the version to roll back, the flow is idempotent: run
    again once that version left production, it changes nothing (a retried run cannot roll
    back a second version).
    """
    settings = project_context(project).settings
    rolled_back, restored = registry.rollback_with_reason(
        settings.registry, reason, version=version
    )
    get_run_logger().info("production: v%s -> v%s (%s)", rolled_back, restored, reason)
    return FlowOutcome(
        model_name=settings.registry.model_name,
        version=restored,
        decision=Decision.ROLLED_BACK,
        reason=f"v{rolled_back} rolled back; v{restored} is in production again: {reason}",
        production_version=restored,
    )
