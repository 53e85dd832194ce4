"""The registry contract, read over MLflow's REST API: what a serving process needs, nothing more.

Scorers, the API and the monitor only read the registry: which version the ``production`` alias
points at, that version's model and its training data. Those are three REST calls and two file
downloads, so they go through ``httpx`` with a short timeout of our own instead of the MLflow
client (about 100 MB and several seconds of imports, and retries that would hold a check for
minutes while the registry is down). Writing to the registry (train, register, promote,
roll back) stays with ``tidemark.registry.writer`` and MLflow itself.

Files come through the tracking server's artifact proxy (``mlflow-artifacts:`` URIs, what the
local stack's ``mlflow server`` hands out); any other artifact store falls back to MLflow's own
download. The model is read from its skops file with skops' default trusted types and
``tidemark.modelling.storage.TRUSTED_TYPES`` only, never
with pickle, and a version is loaded only after the alias was read, so what is loaded is what
the alias named.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote, urlsplit

import httpx
import yaml

from tidemark.config import RegistrySettings

# skops' defaults and the few types a stored model needs beyond them, the same list the flows
# store a model with; never pickle (tidemark.modelling.storage).
from tidemark.modelling.storage import TRUSTED_TYPES

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

MODEL_FILE = "MLmodel"
SKOPS_FORMAT = "skops"
REFERENCE_PATH = "reference/training_data.parquet"
_PROXY_SCHEME = "mlflow-artifacts"
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


class RegistryUnavailableError(RuntimeError):
    """The registry did not answer, or answered with an error that is not 'no such alias'."""


class ArtifactError(RuntimeError):
    """A version's files are missing or are not a skops model."""


@dataclass(frozen=True)
class VersionRef:
    """One registered version as the alias or the registry names it."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]


class RegistryReader:
    """Reads the registry of ``registry.tracking_uri`` over HTTP."""

    def __init__(self, registry: RegistrySettings, timeout_s: float | None = None) -> None:
        self.registry = registry
        self.base_url = registry.tracking_uri.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=registry.timeout_s if timeout_s is None else timeout_s,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def alias(self, alias: str | None = None) -> VersionRef | None:
        """The version ``alias`` (production by default) points at; None when there is none."""
        found = self._get(
            "/api/2.0/mlflow/registered-models/alias",
            {
                "name": self.registry.model_name,
                "alias": alias or self.registry.production_alias,
            },
        )
        return None if found is None else _ref(found["model_version"])

    def version(self, version: str) -> VersionRef | None:
        """One registered version, or None when it does not exist."""
        found = self._get(
            "/api/2.0/mlflow/model-versions/get",
            {"name": self.registry.model_name, "version": version},
        )
        return None if found is None else _ref(found["model_version"])

    def run(self, run_id: str) -> dict[str, Any] | None:
        """A run as MLflow's REST API gives it (``info``, ``data``), or None when it is gone."""
        found = self._get("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        return None if found is None else dict(found["run"])

    def model_tags(self) -> dict[str, str] | None:
        """The registered model's tags (its production history among them); None when the
        model does not exist."""
        found = self._get(
            "/api/2.0/mlflow/registered-models/get", {"name": self.registry.model_name}
        )
        if found is None:
            return None
        tags = found["registered_model"].get("tags", [])
        return {t["key"]: t["value"] for t in tags}

    def versions_tagged(self, key: str, value: str) -> list[VersionRef]:
        """The versions of the model whose tag ``key`` is ``value``, newest first."""
        found = self._get(
            "/api/2.0/mlflow/model-versions/search",
            {"filter": f"name = '{self.registry.model_name}' and tags.{key} = '{value}'"},
        )
        refs = [_ref(v) for v in (found or {}).get("model_versions", [])]
        return sorted(refs, key=lambda ref: int(ref.version), reverse=True)

    def load_model(self, ref: VersionRef) -> Pipeline:
        """The fitted pipeline of ``ref``, read from its skops file (never with pickle)."""
        import skops.io

        found = self._get(
            "/api/2.0/mlflow/model-versions/get-download-uri",
            {"name": ref.name, "version": ref.version},
        )
        if found is None:
            raise ArtifactError(f"{ref.name} has no version {ref.version}")
        root = str(found["artifact_uri"])
        with tempfile.TemporaryDirectory(prefix="tidemark-model-") as folder:
            description = yaml.safe_load(self.download(root, MODEL_FILE, Path(folder)).read_text())
            flavor = (description.get("flavors") or {}).get("sklearn") or {}
            if flavor.get("serialization_format") != SKOPS_FORMAT:
                raise ArtifactError(
                    f"{ref.name} v{ref.version} is not stored with skops "
                    f"({flavor.get('serialization_format')!r}): refusing to unpickle it"
                )
            path = self.download(root, str(flavor["pickled_model"]), Path(folder))
            pipeline: Pipeline = skops.io.load(path, trusted=list(TRUSTED_TYPES))
        return pipeline

    def load_reference(self, ref: VersionRef) -> pd.DataFrame:
        """The training data that ``ref`` was fitted on (monitoring's drift reference)."""
        import pandas as pd

        run = self._get("/api/2.0/mlflow/runs/get", {"run_id": ref.run_id})
        if run is None:
            raise ArtifactError(f"{ref.name} v{ref.version}: its run {ref.run_id} is gone")
        root = str(run["run"]["info"]["artifact_uri"])
        with tempfile.TemporaryDirectory(prefix="tidemark-reference-") as folder:
            return pd.read_parquet(self.download(root, REFERENCE_PATH, Path(folder)))

    def download(self, root: str, path: str, folder: Path) -> Path:
        """Fetch ``root/path`` into ``folder``; returns the local file."""
        target = folder / Path(path).name
        parts = urlsplit(root)
        if parts.scheme != _PROXY_SCHEME:
            return _download_with_mlflow(root, path, folder)
        # mlflow-artifacts:/1/… (or mlflow-artifacts://host:port/1/…): the path is served below
        # the tracking server's proxy route.
        remote = f"{parts.path.strip('/')}/{path}"
        url = f"/api/2.0/mlflow-artifacts/artifacts/{quote(remote)}"
        try:
            with self._http.stream("GET", url) as response, target.open("wb") as out:
                if response.status_code == httpx.codes.NOT_FOUND:
                    raise ArtifactError(f"no artifact {remote} in the registry")
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    out.write(chunk)
        except httpx.HTTPError as error:
            raise RegistryUnavailableError(f"{type(error).__name__}: {error}") from error
        return target

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        try:
            response = self._http.get(path, params=params)
        except httpx.HTTPError as error:
            raise RegistryUnavailableError(f"{type(error).__name__}: {error}") from error
        if response.status_code == httpx.codes.NOT_FOUND or _not_found(response):
            return None  # no such model, alias, version or run: an answer, not an error
        if response.is_error:
            raise RegistryUnavailableError(f"registry answered {response.status_code}")
        body: dict[str, Any] = response.json()
        return body


def _not_found(response: httpx.Response) -> bool:
    if response.status_code != httpx.codes.BAD_REQUEST:
        return False
    try:
        code = response.json().get("error_code")
    except ValueError:
        return False
    return code in _NOT_FOUND


def _ref(version: dict[str, Any]) -> VersionRef:
    return VersionRef(
        name=str(version["name"]),
        version=str(version["version"]),
        run_id=str(version.get("run_id", "")),
        tags={t["key"]: t["value"] for t in version.get("tags", [])},
    )


def _download_with_mlflow(root: str, path: str, folder: Path) -> Path:
    # Another artifact store (S3, GCS, a shared file system): MLflow knows them all.
    from mlflow.artifacts import download_artifacts

    return Path(download_artifacts(artifact_uri=f"{root.rstrip('/')}/{path}", dst_path=str(folder)))
