"""The one registry write the monitor makes itself: a version's tag, over MLflow's REST API.

The monitor keeps a running challenge's state on the challenger (``challenge.SHADOW_STATE_TAG``)
after every window, so that a restarted monitor resumes it. That is one small HTTP call; a
Prefect flow run per window would cost seconds, and the MLflow client's import would double
the monitor's memory. Every other registry write (a verdict, a promotion, a rollback) goes
through the ``shadow-verdict`` deployment, where the registry's own functions run.
"""

from __future__ import annotations

import httpx

from tidemark.registry.reader import RegistryReader, RegistryUnavailableError


class RegistryTagger(RegistryReader):
    """Reads the registry like :class:`RegistryReader` and sets version tags."""

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        """Set one tag of ``version``; raises ``RegistryUnavailableError`` when it fails."""
        try:
            response = self._http.post(
                "/api/2.0/mlflow/model-versions/set-tag",
                json={
                    "name": self.registry.model_name,
                    "version": version,
                    "key": key,
                    "value": value,
                },
            )
        except httpx.HTTPError as error:
            raise RegistryUnavailableError(f"{type(error).__name__}: {error}") from error
        if response.is_error:
            raise RegistryUnavailableError(
                f"registry answered {response.status_code} to set-tag: {response.text[:200]}"
            )
