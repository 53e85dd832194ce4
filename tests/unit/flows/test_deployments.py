"""The deployments say in the Prefect UI who starts them, and run on the pool they are given."""

from __future__ import annotations

from flows.deployments import deployments
from tidemark.orchestration import FLOW_NAMES


def test_every_deployment_names_who_starts_it() -> None:
    starters = {d.name: [t for t in d.tags if t.startswith("started by ")] for d in deployments()}
    assert starters == {
        "train": ["started by make up"],
        "retrain": ["started by the monitor"],
        "promote": ["started by a person"],
        "rollback": ["started by a person"],
        "shadow": ["started by a person"],
        "retire-challenger": ["started by a person"],
        "shadow-verdict": ["started by the monitor"],
    }
    for deployment in deployments():
        # The Prefect UI's list shows only the first tag.
        assert deployment.tags[0].startswith("started by "), deployment.tags
        assert deployment.description is not None
        assert deployment.description.startswith("Who starts it: ")
        assert len(deployment.description.splitlines()) > 2, deployment.description


def test_every_flow_of_the_contract_is_deployed_by_module_path() -> None:
    found = deployments("a-pool")
    assert [d.name for d in found] == list(FLOW_NAMES)
    assert {d.work_pool_name for d in found} == {"a-pool"}
    # A module path imports the installed package: no folder of one machine is recorded.
    assert all(d.entrypoint and ":" not in d.entrypoint for d in found)
    assert all(d.storage is None for d in found)
    assert {d.work_pool_name for d in deployments()} == {None}
