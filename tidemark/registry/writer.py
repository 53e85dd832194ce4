"""The registry contract on MLflow: register, load, promote and roll back a project's model.

Every registered version comes from one training run that logs its parameters, metrics, the
model (skops, with signature and input example), its training and held-out data as dataset
inputs (source: where the records came from and the query that selected them) and the training
data itself as ``reference/training_data.parquet``, the drift reference of monitoring.

Production is the alias ``production``; promotion also moves the version to the ``Production``
stage (archiving the previous one) while the installed MLflow supports stages. The registered
model keeps its promotion history in a tag, so that a rollback is well defined: it re-points
production to the version that was in production before the current one. Before the alias
moves, the move itself (which version, replacing which, how, why, on what figures) is recorded
as a tag of its own (``tidemark.registry.history``), and the model's description ends with the
table of every interval in which a version served.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE
from sklearn.pipeline import Pipeline

from tidemark.config import RegistrySettings
from tidemark.judging.shadow import (
    SHADOW_ROLE_TAG,
    SHADOW_STATE_TAG,
    ShadowEvaluation,
    ShadowRole,
)
from tidemark.logs import get_logger
from tidemark.modelling.storage import TRUSTED_TYPES
from tidemark.modelling.training import predict
from tidemark.project.spec import Project
from tidemark.registry.history import (
    NO_FIGURES,
    HowItCame,
    MoveFigures,
    ProductionMove,
    live_figures,
    move_tag,
    moves_of,
    production_intervals,
    with_history,
)
from tidemark.registry.notes import model_description
from tidemark.registry.reader import ArtifactError, RegistryReader
from tidemark.schemas import ModelDecision

log = get_logger("registry")

MODEL_ARTIFACT = "model"
REFERENCE_DIR = "reference"
REFERENCE_FILE = "training_data.parquet"
HISTORY_TAG = "production_history"
PRODUCTION_STAGE = "Production"
RUN_SOURCE = "tidemark flows"
# The packages the pipeline needs to load; listing them spares MLflow a slow inference step.
_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "pandas", "scipy")
_INPUT_EXAMPLE_ROWS = 3


class RegistryError(RuntimeError):
    """A registry operation that cannot be done as asked (no such version, nothing to undo)."""


class RecordSource(DatasetSource):
    """Where a training set came from: a URI (a collection, a scenario, a file) and a query."""

    def __init__(self, uri: str, query: Mapping[str, Any]) -> None:
        self.uri = uri
        self.query = dict(query)

    @staticmethod
    def _get_source_type() -> str:
        return "tidemark"

    def load(self) -> Any:
        """Not used: the records are read by tidemark.store or tidemark.simulation."""
        raise NotImplementedError("read the records with tidemark.store or tidemark.simulation")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> RecordSource:
        raise NotImplementedError("a RecordSource is built, never resolved from a string")

    def to_dict(self) -> dict[str, Any]:
        """The source as MLflow records it on the run."""
        return {"uri": self.uri, "query": json.dumps(self.query, default=str, sort_keys=True)}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> RecordSource:
        """Rebuild a source from ``to_dict``."""
        return cls(source_dict["uri"], json.loads(source_dict.get("query") or "{}"))


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One registered version, as ``tidemark models`` lists it."""

    version: str
    run_id: str
    aliases: tuple[str, ...]
    stage: str
    tags: dict[str, str]
    created_at: datetime
    description: str = ""


def client(registry: RegistrySettings) -> MlflowClient:
    """An MLflow client of the settings' server; also points MLflow's module API at it."""
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    return MlflowClient(registry.tracking_uri, registry.tracking_uri)


def reference_columns(project: Project) -> list[str]:
    """The columns a version keeps of its training data: key, features, target, input time."""
    return [
        project.key,
        *(f.name for f in project.features),
        project.target.name,
        project.times.input,
    ]


def register(
    registry: RegistrySettings,
    project: Project,
    model: Any,
    *,
    training_data: pd.DataFrame,
    holdout: pd.DataFrame,
    source: RecordSource,
    run_name: str,
    description: str,
    params: Mapping[str, str | int | float],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
) -> VersionInfo:
    """Log one training run and register its model as a new version carrying ``tags``, with
    ``description`` (Markdown) on the version and on the run. The model is stored with skops
    and the trusted types every loading process passes (no pickle)."""
    mlflow_client = client(registry)
    mlflow.set_experiment(registry.experiment)
    present = [f.name for f in project.features if f.name in training_data.columns]
    features = training_data.loc[:, present]
    signature = infer_signature(features, predict(project, model, features).values)
    kept = [c for c in reference_columns(project) if c in training_data.columns]
    # MLflow names the source after the process's entry point ("tidemark", "engine.py"...);
    # every version comes from the same flows, so they all say so.
    run_tags = {**tags, MLFLOW_SOURCE_NAME: RUN_SOURCE, MLFLOW_SOURCE_TYPE: "JOB"}
    with mlflow.start_run(run_name=run_name, tags=run_tags, description=description) as run:
        mlflow.log_params(dict(params))
        mlflow.log_metrics(dict(metrics))
        for data, context in ((training_data, "training"), (holdout, "evaluation")):
            dataset = from_pandas(
                data.loc[:, [c for c in kept if c in data.columns]],
                source=source,
                targets=project.target.name,
                name=f"{registry.model_name}-{context}",
            )
            mlflow.log_input(dataset, context=context)
        _log_reference(training_data.loc[:, kept])
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(TRUSTED_TYPES),
            # MLflow checks the example by loading the model back, which no Tidemark process
            # may do (no deserialisation): it logs a warning and goes on. The flows check the
            # registered artifact themselves, loaded as the scorers load it.
            input_example=features.head(_INPUT_EXAMPLE_ROWS),
            pip_requirements=[f"{name}=={installed_version(name)}" for name in _REQUIREMENTS],
        )
    registered = mlflow.register_model(info.model_uri, registry.model_name, tags=dict(tags))
    mlflow_client.update_model_version(
        registry.model_name, registered.version, description=description
    )
    _publish_history(registry, model_description(project))
    log.info("registered", model=registry.model_name, version=registered.version)
    return _info(mlflow_client.get_model_version(registry.model_name, registered.version), run)


def set_version_description(registry: RegistrySettings, version: str, description: str) -> None:
    """Replace a version's Markdown description, e.g. after a later decision about it."""
    client(registry).update_model_version(registry.model_name, version, description=description)


def _log_reference(training_data: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / REFERENCE_FILE
        training_data.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=REFERENCE_DIR)


def _info(version: ModelVersion, run: Any = None) -> VersionInfo:
    return VersionInfo(
        version=str(version.version),
        run_id=str(version.run_id or (run.info.run_id if run else "")),
        aliases=tuple(version.aliases or ()),
        stage=str(version.current_stage or "None"),
        tags=dict(version.tags or {}),
        created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC),
        description=str(version.description or ""),
    )


def production_version(registry: RegistrySettings) -> str | None:
    """The version the ``production`` alias points at, or None when there is none."""
    return _aliased_version(registry, registry.production_alias)


def _aliased_version(registry: RegistrySettings, alias: str) -> str | None:
    try:
        found = client(registry).get_model_version_by_alias(registry.model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return str(found.version)


def version_info(registry: RegistrySettings, version: str) -> VersionInfo:
    """One registered version; ``RegistryError`` when it does not exist."""
    try:
        return _info(client(registry).get_model_version(registry.model_name, version))
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"{registry.model_name} has no version {version}") from error
        raise


def load_model(registry: RegistrySettings, version: str | None = None) -> Pipeline:
    """The scikit-learn pipeline of ``version``, or of production when ``version`` is None.

    Read the way the scorers read it (``RegistryReader``): from the version's skops file with
    skops' default trusted types only, never unpickled, so that whoever can register a version
    cannot run code in the flows. ``RegistryError`` when there is no such version or its files
    are not a skops model.
    """
    with RegistryReader(registry) as reader:
        ref = reader.alias() if version is None else reader.version(version)
        if ref is None:
            wanted = "production version" if version is None else f"version {version}"
            raise RegistryError(f"{registry.model_name} has no {wanted}")
        try:
            return reader.load_model(ref)
        except ArtifactError as error:
            raise RegistryError(str(error)) from error


def load_reference(registry: RegistrySettings, version: str) -> pd.DataFrame:
    """The training data that ``version`` was fitted on (monitoring's drift reference)."""
    info = version_info(registry, version)
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=info.run_id,
            artifact_path=f"{REFERENCE_DIR}/{REFERENCE_FILE}",
            dst_path=folder,
            tracking_uri=registry.tracking_uri,
        )
        return pd.read_parquet(path)


def set_version_tags(registry: RegistrySettings, version: str, tags: Mapping[str, str]) -> None:
    """Set (or overwrite) tags of one version, e.g. a later decision about it."""
    mlflow_client = client(registry)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(registry.model_name, version, key, value)


def production_history(registry: RegistrySettings) -> list[str]:
    """The versions promoted to production, oldest first, rolled-back ones removed."""
    try:
        model = client(registry).get_registered_model(registry.model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    raw = (model.tags or {}).get(HISTORY_TAG, "[]")
    return [str(v) for v in json.loads(raw)]


def promote(
    registry: RegistrySettings,
    version: str,
    *,
    how: HowItCame = HowItCame.FORCED,
    reason: str = "promoted by hand",
    figures: MoveFigures = NO_FIGURES,
    decided_by: str = "",
    flow_run_id: str | None = None,
) -> None:
    """Make ``version`` production: the move and the history, then the alias and the Production
    stage (previous archived).

    The move (``how`` it came, the ``reason`` and the ``figures`` of the decision) and the
    history are written before the alias moves, so that no move is missing from the production
    history and a promotion that fails half-way and is retried finds its version already last
    and does not add it twice; promoting the version that is already in production changes
    nothing.
    """
    version_info(registry, version)
    current = production_version(registry)
    if current != version:
        record_move(
            registry,
            ProductionMove(
                version=version,
                previous=current,
                at=datetime.now(UTC),
                how=how,
                reason=reason,
                figures=figures,
                decided_by=decided_by,
                flow_run_id=flow_run_id,
            ),
        )
    history = production_history(registry)
    if not history or history[-1] != version:
        _write_history(registry, [*history, version])
    if production_version(registry) != version:
        _point_production(registry, version)
    _publish_history(registry)
    log.info("promoted", model=registry.model_name, version=version, how=how.value)


def rollback(
    registry: RegistrySettings,
    version: str | None = None,
    *,
    reason: str = "rolled back by hand",
    figures: MoveFigures = NO_FIGURES,
    decided_by: str = "",
) -> tuple[str, str]:
    """Re-point production to the version before the current one; returns (from, to).

    With ``version`` (the version to roll back), a rollback that already happened is not done
    again: when production is no longer ``version`` and the history no longer holds it last,
    nothing changes and (``version``, production) is returned, so a retried rollback cannot
    roll back a second version. The move (``rollback``, with ``reason`` and ``figures``) and the
    history are written before the alias moves: a rollback that fails half-way and is retried
    then finds its target last in the history.
    """
    current = production_version(registry)
    if current is None:
        raise RegistryError(f"{registry.model_name} has no production version to roll back")
    history = production_history(registry)
    if version is not None and current != version:
        if history and history[-1] == current:
            log.info("already rolled back", model=registry.model_name, version=version)
            return version, current
        raise RegistryError(
            f"{registry.model_name} v{version} is not in production (v{current} is)"
        )
    # Entries after the last of the current version are promotions whose alias never moved.
    if current in history:
        history = history[: len(history) - history[::-1].index(current)]
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise RegistryError(
            f"{registry.model_name} v{current} is the only version ever in production: "
            "there is nothing to roll back to"
        )
    previous = history[-1]
    record_move(
        registry,
        ProductionMove(
            version=previous,
            previous=current,
            at=datetime.now(UTC),
            how=HowItCame.ROLLBACK,
            reason=reason,
            figures=figures,
            decided_by=decided_by,
        ),
    )
    _write_history(registry, history)
    _point_production(registry, previous)
    set_version_tags(registry, current, {"rolled_back_at": datetime.now(UTC).isoformat()})
    _publish_history(registry)
    log.info("rolled back", model=registry.model_name, current=previous, rolled_back=current)
    return current, previous


def production_moves(registry: RegistrySettings) -> list[ProductionMove]:
    """Every recorded move of the production alias, oldest first."""
    return moves_of(_model_tags(registry))


def record_move(registry: RegistrySettings, move: ProductionMove) -> None:
    """Append ``move`` to the history: a tag of its own, never written again.

    A promotion retried after its alias move failed finds its own move last and records
    nothing more.
    """
    moves = production_moves(registry)
    if moves and moves[-1].version == move.version and moves[-1].how is move.how:
        return
    client(registry).set_registered_model_tag(
        registry.model_name, move_tag(move.at), move.model_dump_json()
    )


def _model_tags(registry: RegistrySettings) -> dict[str, str]:
    try:
        model = client(registry).get_registered_model(registry.model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return dict(model.tags or {})


def _publish_history(registry: RegistrySettings, description: str | None = None) -> None:
    """End the registered model's description (``description``, else its own) with the table
    of production intervals, for the MLflow page of the model."""
    mlflow_client = client(registry)
    model = mlflow_client.get_registered_model(registry.model_name)
    intervals = production_intervals(moves_of(dict(model.tags or {})))
    text = with_history(description or model.description or "", intervals)
    mlflow_client.update_registered_model(registry.model_name, description=text)


def _point_production(registry: RegistrySettings, version: str) -> None:
    mlflow_client = client(registry)
    mlflow_client.set_registered_model_alias(
        registry.model_name, registry.production_alias, version
    )
    transition = getattr(mlflow_client, "transition_model_version_stage", None)
    if transition is None:
        return
    # Stages are deprecated in favour of aliases, but the UI and older clients still read them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        transition(registry.model_name, version, PRODUCTION_STAGE, archive_existing_versions=True)


def _write_history(registry: RegistrySettings, history: list[str]) -> None:
    client(registry).set_registered_model_tag(registry.model_name, HISTORY_TAG, json.dumps(history))


def list_versions(registry: RegistrySettings) -> list[VersionInfo]:
    """Every registered version, newest first."""
    try:
        found = client(registry).search_model_versions(f"name = '{registry.model_name}'")
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    # search_model_versions leaves aliases empty, so production is looked up once.
    current = production_version(registry) if found else None
    infos = [
        replace(info, aliases=(registry.production_alias,))
        if info.version == current and not info.aliases
        else info
        for info in map(_info, found)
    ]
    return sorted(infos, key=lambda i: int(i.version), reverse=True)


# --- shadow: the challenger alias, verdicts on live items, rollbacks with their reason ------

# A version's tags of its latest challenge; a new challenge of the version clears them first.
SHADOW_TAGS = (
    "shadow_verdict", "shadow_n", "shadow_statistic", "shadow_p_value", "shadow_alpha",
    "shadow_reason", "shadow_champion_mre", "shadow_challenger_mre", "shadow_decided_at",
    SHADOW_STATE_TAG,
)  # fmt: skip


def challenger_version(registry: RegistrySettings) -> str | None:
    """The version the ``challenger`` alias points at (the one in shadow), or None."""
    return _aliased_version(registry, registry.challenger_alias)


def set_challenger(
    registry: RegistrySettings, version: str, *, reason: str, rollback_watch: bool = False
) -> str | None:
    """Put ``version`` in shadow beside production; returns the challenger it replaces.

    The version must exist and must not be in production. Its tags of an earlier challenge
    are cleared, and it is tagged with the champion it now runs against, when, why and its
    role (``rollback_watch``: the version production replaced, judged with no margin).
    """
    version_info(registry, version)
    production = production_version(registry)
    if production is None:
        raise RegistryError(f"{registry.model_name} has no production version to challenge")
    if production == version:
        raise RegistryError(f"v{version} is in production: it cannot challenge itself")
    previous = challenger_version(registry)
    mlflow_client = client(registry)
    # The tags first, the alias last: a monitor that sees the alias reads the role at once, and
    # a watch read before its role tag was written was judged as a challenger (a promotion
    # verdict instead of a rollback).
    stale = set(SHADOW_TAGS) & set(version_info(registry, version).tags)
    for key in sorted(stale):
        mlflow_client.delete_model_version_tag(registry.model_name, version, key)
    started = datetime.now(UTC)
    set_version_tags(
        registry,
        version,
        {
            "shadow_champion": production,
            "shadow_started_at": started.isoformat(),
            "shadow_start_reason": reason,
            SHADOW_ROLE_TAG: ShadowRole.ROLLBACK_WATCH if rollback_watch else ShadowRole.CHALLENGER,
        },
    )
    mlflow_client.set_registered_model_alias(
        registry.model_name, registry.challenger_alias, version
    )
    _append_description(
        registry,
        version,
        f"**In shadow** against production v{production} since {_when(started)}: {reason}",
    )
    log.info("challenger set", model=registry.model_name, version=version, champion=production)
    return previous if previous != version else None


def clear_challenger(registry: RegistrySettings) -> str | None:
    """Take the challenger out of shadow (the alias only); returns it, or None if there was none."""
    current = challenger_version(registry)
    if current is not None:
        client(registry).delete_registered_model_alias(
            registry.model_name, registry.challenger_alias
        )
        log.info("challenger cleared", model=registry.model_name, version=current)
    return current


def record_verdict(registry: RegistrySettings, decision: ModelDecision) -> None:
    """Record a challenge's verdict on the challenger: ``shadow_*`` tags and a paragraph.

    The tags give the verdict, n, the test's statistic (log likelihood ratio), its
    always-valid p-value and the reason; the paragraph appended to the version's description
    says the same for a person, with the per-segment figures.
    """
    tags = {
        "shadow_verdict": (decision.verdict or decision.kind).value,
        "shadow_n": str(decision.n),
        "shadow_reason": decision.reason,
        "shadow_champion": decision.champion_version,
        "shadow_decided_at": decision.decided_at.isoformat(),
    }
    for key, value in (
        ("shadow_statistic", decision.statistic),
        ("shadow_p_value", decision.p_value),
        ("shadow_alpha", decision.alpha),
        ("shadow_champion_mre", decision.champion_mre),
        ("shadow_challenger_mre", decision.challenger_mre),
    ):
        if value is not None:
            tags[key] = repr(float(value))
    set_version_tags(registry, decision.challenger_version, tags)
    _append_description(registry, decision.challenger_version, _verdict_paragraph(decision))


def save_shadow_state(registry: RegistrySettings, evaluation: ShadowEvaluation) -> None:
    """Keep a shadow evaluation's running state on its challenger, for a restarted monitor to
    resume."""
    set_version_tags(
        registry, evaluation.challenger_version, {SHADOW_STATE_TAG: evaluation.to_json()}
    )


def load_shadow_state(registry: RegistrySettings, version: str) -> ShadowEvaluation | None:
    """The running state saved on ``version`` by ``save_shadow_state``, or None."""
    raw = version_info(registry, version).tags.get(SHADOW_STATE_TAG)
    return ShadowEvaluation.from_json(raw) if raw else None


def rollback_with_reason(
    registry: RegistrySettings,
    reason: str,
    evidence: ModelDecision | None = None,
    version: str | None = None,
) -> tuple[str, str]:
    """Roll production back (see ``rollback``) and record why on both versions.

    The rolled-back version gets ``rolled_back_reason`` and ``rolled_back_to``, the restored
    one ``restored_reason``, ``restored_from`` and ``restored_at``, and both a paragraph in
    their description (with the live evidence when the rollback was decided on it). A
    challenger alias on the restored version is cleared: production is not its own
    challenger. Returns (rolled back, restored).

    With ``version`` (the version to roll back) it is idempotent (see ``rollback``): retried
    after it succeeded, or after it failed once the reasons were recorded, it changes nothing
    and adds no second paragraph.
    """
    figures = live_figures(evidence, rollback=True) if evidence is not None else NO_FIGURES
    rolled_back, restored = rollback(
        registry,
        version,
        reason=reason,
        figures=figures,
        decided_by=evidence.decided_by if evidence else "manual",
    )
    recorded = version_info(registry, rolled_back).tags
    if recorded.get("rolled_back_to") == restored and recorded.get("rolled_back_reason") == reason:
        if challenger_version(registry) == restored:
            clear_challenger(registry)
        return rolled_back, restored
    at = datetime.now(UTC)
    set_version_tags(
        registry, rolled_back, {"rolled_back_reason": reason, "rolled_back_to": restored}
    )
    set_version_tags(
        registry,
        restored,
        {"restored_reason": reason, "restored_from": rolled_back, "restored_at": at.isoformat()},
    )
    paragraph = f" {_evidence(evidence)}" if evidence is not None else ""
    _append_description(
        registry,
        rolled_back,
        f"**Rolled back** on {_when(at)}; v{restored} is in production again: {reason}.{paragraph}",
    )
    _append_description(
        registry,
        restored,
        f"**Restored** to production on {_when(at)}, replacing v{rolled_back}: "
        f"{reason}.{paragraph}",
    )
    if challenger_version(registry) == restored:
        clear_challenger(registry)
    return rolled_back, restored


def _append_description(registry: RegistrySettings, version: str, paragraph: str) -> None:
    mlflow_client = client(registry)
    current = mlflow_client.get_model_version(registry.model_name, version).description or ""
    text = f"{current.rstrip()}\n\n{paragraph}" if current.strip() else paragraph
    mlflow_client.update_model_version(registry.model_name, version, description=text)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _verdict_paragraph(decision: ModelDecision) -> str:
    verdict = (decision.verdict or decision.kind).value.replace("_", " ")
    return (
        f"**Shadow verdict: {verdict}** ({decision.kind.value}, {_when(decision.decided_at)}, "
        f"by {decision.decided_by}) against production v{decision.champion_version}: "
        f"{decision.reason}. {_evidence(decision)}"
    ).rstrip()


def _evidence(decision: ModelDecision) -> str:
    if decision.n == 0 or decision.statistic is None or decision.p_value is None:
        return ""
    parts = [
        f"Live evidence: n = {decision.n} items, log likelihood ratio {decision.statistic:.2f}, "
        f"always-valid p = {decision.p_value:.3g}"
        + (f" (alpha {decision.alpha:.3g})" if decision.alpha is not None else "")
    ]
    if decision.champion_mre is not None and decision.challenger_mre is not None:
        parts.append(
            f"mean relative error v{decision.challenger_version} {decision.challenger_mre:.4f}, "
            f"v{decision.champion_version} {decision.champion_mre:.4f}"
        )
    segments = "; ".join(
        f"{name} n = {s.n}, {s.challenger_mre:.4f} vs {s.champion_mre:.4f}, p = {s.p_value:.3g}"
        for name, s in sorted(decision.segments.items())
    )
    if segments:
        parts.append(f"per segment: {segments}")
    return "; ".join(parts) + "."
