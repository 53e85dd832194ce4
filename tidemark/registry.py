"""The registry contract on MLflow: register, load, promote and roll back ``fish-weight``.

Every registered version comes from one training run that logs its parameters, metrics, the
model (skops, with signature and input example), its training and held-out data as dataset
inputs (source: where the records came from and the query that selected them) and the training
data itself as ``reference/training_data.parquet``, the drift reference of monitoring.

Production is the alias ``production``; promotion also moves the version to the ``Production``
stage (archiving the previous one) while the installed MLflow supports stages. The registered
model keeps its promotion history in a tag, so that a rollback is well defined: it re-points
production to the version that was in production before the current one.
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
from typing import Any, cast

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

from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.model import FEATURES, TARGET, predict
from tidemark.version_notes import MODEL_DESCRIPTION

log = get_logger("registry")

MODEL_ARTIFACT = "model"
REFERENCE_DIR = "reference"
REFERENCE_FILE = "training_data.parquet"
REFERENCE_COLUMNS = ("fish_id", "species", "length_cm", "height_cm", TARGET, "measured_at")
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
        """Not used: the records are read by tidemark.store or tidemark.scenario."""
        raise NotImplementedError("read the records with tidemark.store or tidemark.scenario")

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


def client(settings: Settings) -> MlflowClient:
    """An MLflow client of the settings' server; also points MLflow's module API at it."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def register(
    settings: Settings,
    model: Pipeline,
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
    ``description`` (Markdown) on the version and on the run."""
    mlflow_client = client(settings)
    mlflow.set_experiment(settings.mlflow_experiment)
    features = training_data.loc[:, list(FEATURES)]
    signature = infer_signature(features, predict(model, features).weight_kg)
    # MLflow names the source after the process's entry point ("tidemark", "engine.py"...);
    # every version comes from the same flows, so they all say so.
    run_tags = {**tags, MLFLOW_SOURCE_NAME: RUN_SOURCE, MLFLOW_SOURCE_TYPE: "JOB"}
    with mlflow.start_run(run_name=run_name, tags=run_tags, description=description) as run:
        mlflow.log_params(dict(params))
        mlflow.log_metrics(dict(metrics))
        for data, context in ((training_data, "training"), (holdout, "evaluation")):
            dataset = from_pandas(
                data.loc[:, [c for c in REFERENCE_COLUMNS if c in data.columns]],
                source=source,
                targets=TARGET,
                name=f"{settings.model_name}-{context}",
            )
            mlflow.log_input(dataset, context=context)
        _log_reference(training_data)
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=features.head(_INPUT_EXAMPLE_ROWS),
            pip_requirements=[f"{name}=={installed_version(name)}" for name in _REQUIREMENTS],
        )
    registered = mlflow.register_model(info.model_uri, settings.model_name, tags=dict(tags))
    mlflow_client.update_model_version(
        settings.model_name, registered.version, description=description
    )
    mlflow_client.update_registered_model(settings.model_name, description=MODEL_DESCRIPTION)
    log.info("registered", model=settings.model_name, version=registered.version)
    return _info(mlflow_client.get_model_version(settings.model_name, registered.version), run)


def set_version_description(settings: Settings, version: str, description: str) -> None:
    """Replace a version's Markdown description, e.g. after a later decision about it."""
    client(settings).update_model_version(settings.model_name, version, description=description)


def _log_reference(training_data: pd.DataFrame) -> None:
    columns = [c for c in REFERENCE_COLUMNS if c in training_data.columns]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / REFERENCE_FILE
        training_data.loc[:, columns].to_parquet(path, index=False)
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


def production_version(settings: Settings) -> str | None:
    """The version the ``production`` alias points at, or None when there is none."""
    try:
        found = client(settings).get_model_version_by_alias(
            settings.model_name, settings.production_alias
        )
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return str(found.version)


def version_info(settings: Settings, version: str) -> VersionInfo:
    """One registered version; ``RegistryError`` when it does not exist."""
    try:
        return _info(client(settings).get_model_version(settings.model_name, version))
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"{settings.model_name} has no version {version}") from error
        raise


def load_model(settings: Settings, version: str | None = None) -> Pipeline:
    """The scikit-learn pipeline of ``version``, or of production when ``version`` is None."""
    client(settings)
    where = f"@{settings.production_alias}" if version is None else f"/{version}"
    return cast(Pipeline, mlflow.sklearn.load_model(f"models:/{settings.model_name}{where}"))


def load_reference(settings: Settings, version: str) -> pd.DataFrame:
    """The training data that ``version`` was fitted on (monitoring's drift reference)."""
    info = version_info(settings, version)
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=info.run_id,
            artifact_path=f"{REFERENCE_DIR}/{REFERENCE_FILE}",
            dst_path=folder,
            tracking_uri=settings.mlflow_tracking_uri,
        )
        return pd.read_parquet(path)


def set_version_tags(settings: Settings, version: str, tags: Mapping[str, str]) -> None:
    """Set (or overwrite) tags of one version, e.g. a later decision about it."""
    mlflow_client = client(settings)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(settings.model_name, version, key, value)


def production_history(settings: Settings) -> list[str]:
    """The versions promoted to production, oldest first, rolled-back ones removed."""
    try:
        model = client(settings).get_registered_model(settings.model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    raw = (model.tags or {}).get(HISTORY_TAG, "[]")
    return [str(v) for v in json.loads(raw)]


def promote(settings: Settings, version: str) -> None:
    """Make ``version`` production: the alias, the Production stage (previous archived), history.

    Promoting the version that is already in production changes nothing.
    """
    version_info(settings, version)
    history = production_history(settings)
    _point_production(settings, version)
    if not history or history[-1] != version:
        _write_history(settings, [*history, version])
    log.info("promoted", model=settings.model_name, version=version)


def rollback(settings: Settings) -> tuple[str, str]:
    """Re-point production to the version before the current one; returns (from, to)."""
    current = production_version(settings)
    if current is None:
        raise RegistryError(f"{settings.model_name} has no production version to roll back")
    history = production_history(settings)
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise RegistryError(
            f"{settings.model_name} v{current} is the only version ever in production: "
            "there is nothing to roll back to"
        )
    previous = history[-1]
    _point_production(settings, previous)
    _write_history(settings, history)
    set_version_tags(settings, current, {"rolled_back_at": datetime.now(UTC).isoformat()})
    log.info("rolled back", model=settings.model_name, current=previous, rolled_back=current)
    return current, previous


def _point_production(settings: Settings, version: str) -> None:
    mlflow_client = client(settings)
    mlflow_client.set_registered_model_alias(
        settings.model_name, settings.production_alias, version
    )
    transition = getattr(mlflow_client, "transition_model_version_stage", None)
    if transition is None:
        return
    # Stages are deprecated in favour of aliases, but the UI and older clients still read them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        transition(settings.model_name, version, PRODUCTION_STAGE, archive_existing_versions=True)


def _write_history(settings: Settings, history: list[str]) -> None:
    client(settings).set_registered_model_tag(settings.model_name, HISTORY_TAG, json.dumps(history))


def list_versions(settings: Settings) -> list[VersionInfo]:
    """Every registered version, newest first."""
    try:
        found = client(settings).search_model_versions(f"name = '{settings.model_name}'")
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    # search_model_versions leaves aliases empty, so production is looked up once.
    current = production_version(settings) if found else None
    infos = [
        replace(info, aliases=(settings.production_alias,))
        if info.version == current and not info.aliases
        else info
        for info in map(_info, found)
    ]
    return sorted(infos, key=lambda i: int(i.version), reverse=True)
