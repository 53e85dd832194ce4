"""The ``retrain`` flow: a candidate from the recent joined records in MongoDB."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.candidate import judge_and_register, retrying, window_tags
from flows.context import ProjectContext, project_context
from flows.outcome import FlowOutcome
from tidemark.modelling.frames import TrainingDataError
from tidemark.orchestration import RETRAIN_FLOW, SegmentStart
from tidemark.registry.notes import Trigger
from tidemark.registry.writer import RecordSource
from tidemark.schemas import RetrainReason
from tidemark.store import TrainingStore


@task(cache_policy=NO_CACHE)
def read_records(
    context: ProjectContext,
    window_start: datetime | None,
    window_end: datetime | None,
    last_n: int | None,
    required: frozenset[str] = frozenset(),
    segment_starts: Mapping[str, SegmentStart] | None = None,
) -> tuple[pd.DataFrame, RecordSource, frozenset[str], dict[str, str]]:
    """The records to retrain on, the collection and query they came from, the segments they
    were read for (those of the window or of the last records, not those remembered), and per
    segment where its records begin and why.

    A segment in ``segment_starts`` (its incident's change began there) is read from its start
    only, never before: its earlier records follow the law that no longer holds, and it is
    not completed with remembered records either.

    A window is completed with the latest records measured before it of every segment it does
    not retrain for (``required``; all of the window's own segments when empty): those absent
    from the window, and those it holds too few of to be judged. A drift or an error in one
    segment must not make the new model forget the others, nor promote it without checking
    them. Each such segment is completed to ``retrain.segment_memory`` records and no more
    than the window holds, so that the items of the window weigh at least as much as any
    segment remembered. An empty window stays empty. A project without a segment reads the
    window alone.
    """
    settings, segment = context.settings, context.project.segment

    def segments(data: pd.DataFrame) -> pd.Series:
        return data[segment].astype(str) if segment is not None and not data.empty else _NONE

    with TrainingStore(settings.store, context.contracts) as store:
        query: dict[str, Any]
        if window_start is not None:
            end = window_end or datetime.now(UTC)
            data = store.window(window_start, end)
            starts = dict(segment_starts or {}) if segment is not None else {}
            for name, since in starts.items():
                before = (data[segment].astype(str) == name) & (
                    pd.to_datetime(data[store.time], utc=True) < since.start
                )
                data = data.loc[~before].reset_index(drop=True)
            own = frozenset(segments(data))
            query = {"filter": store.window_filter(window_start, end), "sort": store.time}
            if starts:
                query["segment_starts"] = {
                    name: store.segment_filter_since(name, since.start, end)
                    for name, since in sorted(starts.items())
                }
            keep = min(settings.retrain.segment_memory, len(data))
            counts = segments(data).value_counts()
            wanted: dict[str, int] = {}
            if segment is not None:
                wanted = {
                    name: keep - int(counts.get(name, 0))
                    for name in store.segments_before(
                        window_start, (required or own) | frozenset(starts)
                    )
                }
            wanted = {name: n for name, n in wanted.items() if n > 0}
            if wanted:
                earlier = store.latest_per_segment(window_start, wanted)
                if not earlier.empty:
                    # Remembered segments are judged on their own latest records when they have
                    # evidence enough, and only trained on otherwise (tidemark.judging.holdout).
                    data = pd.concat([earlier, data], ignore_index=True)
                    query["remembered"] = {
                        "filters": [
                            {"filter": store.segment_filter(name, window_start), "limit": n}
                            for name, n in sorted(wanted.items())
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
            own = frozenset(segments(data))
            query = {"filter": {}, "sort": f"-{store.time}", "limit": n}
            reasons = dict.fromkeys(own, f"the latest {n} records")
        return data, RecordSource(store.source_uri, query), own, reasons


_NONE = pd.Series([], dtype=object)


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
    segments: list[str] | None = None,
    project: str | None = None,
    segment_starts: dict[str, SegmentStart] | None = None,
) -> FlowOutcome:
    """Retrain the model of ``project`` (the stack's default project when None) on its joined
    records of a time window, or on the ``last_n`` most recent ones.

    ``metric``, ``metric_value`` and ``threshold`` tell what fired; ``segments`` the segments
    the retrain is about, which must each have evidence enough (by default every segment of the
    window or of the last records; segments remembered from before the window are judged only
    when they have it). A retrain short of evidence ends with the decision
    ``insufficient_evidence`` and trains, registers and promotes nothing: records from before
    the window belong to the regime the alarm says has changed, so the caller waits for more
    windows rather than the flow reading further back. ``segment_starts`` gives, per segment,
    where its change began and why (the monitor's estimate): that segment is read from there
    only, and the version's tags and description say, per segment, where its records begin
    and why. Fails (and registers nothing) on an empty window or bad values.
    """
    context = project_context(project)
    settings = context.settings
    logger = get_run_logger()
    trigger = RetrainReason(reason)
    if window_end is not None and window_start is None:
        raise ValueError("window_end needs a window_start")
    if last_n is not None and last_n < 2:
        raise ValueError(f"last_n must be at least 2, got {last_n}")
    data, source, own, reasons = read_records.with_options(**retrying(settings))(
        context, window_start, window_end, last_n, frozenset(segments or ()), segment_starts
    )
    if data.empty:
        where = (
            f"measured between {window_start} and {window_end or 'now'}"
            if window_start is not None
            else "in the store"
        )
        raise TrainingDataError(f"no joined records {where}: nothing to retrain on")
    logger.info(
        "retraining %s (%s) on %d records from %s",
        context.project.name, trigger.value, len(data), source.uri,
    )  # fmt: skip
    return judge_and_register(
        context,
        data,
        source=source,
        trigger=Trigger(
            reason=trigger.value,
            metric=metric,
            metric_value=None if metric_value is None else float(metric_value),
            threshold=None if threshold is None else float(threshold),
            segments=tuple(segments or ()),
        ),
        window=window_tags(data, context.project.times.input, window_start, window_end),
        required_segments=segments if segments else own,
        segment_windows=segment_windows(context, data, reasons),
    )


def segment_windows(
    context: ProjectContext, data: pd.DataFrame, reasons: Mapping[str, str]
) -> dict[str, str]:
    """Per segment of ``data``: the span of its records, their number, and why they begin
    where they do (nothing for a project without a segment)."""
    segment = context.project.segment
    if data.empty or segment is None:
        return {}
    times = pd.to_datetime(data[context.project.times.input], utc=True)
    spans = {}
    for name, at in times.groupby(data[segment].astype(str)):
        why = reasons.get(str(name), "read with the window")
        spans[str(name)] = (
            f"{at.min().isoformat()} to {at.max().isoformat()} ({len(at)} records): {why}"
        )
    return spans
