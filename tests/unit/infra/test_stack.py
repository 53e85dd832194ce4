"""The stack hands each service the settings of its own sections, and no others."""

from __future__ import annotations

from pathlib import Path

from infra.local.services import platform_services
from infra.local.stack import Stack
from tidemark.config import Settings


def test_each_service_gets_exactly_the_variables_of_its_sections(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        kafka_bootstrap_servers="127.0.0.1:19092",
        registry_tracking_uri="http://127.0.0.1:15000",
        stack_state_dir=tmp_path / "elsewhere",
    )
    stack = Stack(settings, tmp_path / "state", services=platform_services)
    services = {c.name: c for c in stack.components() if c.service}
    for service in services.values():
        given = {key for key in service.env if key.startswith("TIDEMARK_")}
        # The monitor writes its reports under the stack's state folder; the scorer and the
        # joiner, run there too, find the projects of the folder the stack was started from.
        outside = {"TIDEMARK_STACK_STATE_DIR", "TIDEMARK_PROJECTS_DIR"}
        assert given - outside == set(settings.as_env(*service.sections)) - outside
    for name in ("scorer", "joiner"):
        assert services[name].env["TIDEMARK_PROJECTS_DIR"] == str(Path("projects").resolve())
    assert services["scorer"].env["TIDEMARK_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert services["serving"].env["TIDEMARK_REGISTRY_TRACKING_URI"] == "http://127.0.0.1:15000"
    # The server finds predictions again on their topics (GET /predictions/{key}), not in
    # the training store.
    assert services["serving"].env["TIDEMARK_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert "TIDEMARK_STORE_URI" not in services["serving"].env
    assert services["serving"].env["TIDEMARK_PROJECTS_DIR"] == str(Path("projects").resolve())
    assert "TIDEMARK_STORE_URI" not in services["scorer"].env
    assert services["monitor"].env["TIDEMARK_STACK_STATE_DIR"] == str(
        (tmp_path / "state").resolve()
    )
    assert not any("TIDEMARK_STACK_KAFKA_HEAP_MB" in s.env for s in services.values())
    assert not any(key.startswith("TIDEMARK_") for key in services["evidently"].env)
    # No service unpickles a model, whatever MLflow's default.
    assert {s.env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] for s in services.values()} == {"false"}
