"""The deployments say in the Prefect UI who starts them."""

from __future__ import annotations

from flows.serve import deployments


def test_every_deployment_names_who_starts_it() -> None:
    starters = {d.name: [t for t in d.tags if t.startswith("started by ")] for d in deployments()}
    assert starters == {
        "train": ["started by make up"],
        "retrain": ["started by the monitor"],
        "promote": ["started by a person"],
        "rollback": ["started by a person"],
        "shadow-verdict": ["started by the monitor"],
    }
    for deployment in deployments():
        assert deployment.description is not None
        assert deployment.description.startswith("Who starts it: ")
        assert len(deployment.description.splitlines()) > 2, deployment.description
