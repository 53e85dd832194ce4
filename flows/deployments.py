"""The flows as Prefect deployments named like them, each saying who starts it.

The same deployments are either deployed to the process work pool that ``tidemark worker`` polls
(what ``make up`` runs) or served by one process without a pool (``tidemark serve-flows``).
"""

from __future__ import annotations

from typing import cast

from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from flows.promote import promote
from flows.retrain import retrain
from flows.rollback import rollback
from flows.shadow import retire_challenger, shadow, shadow_verdict
from flows.train import train

FLOWS = (train, retrain, promote, rollback, shadow, retire_challenger, shadow_verdict)

# Who starts each deployment, as its description's first line and as a tag, so that the Prefect
# UI answers "why did this run?" without the code.
TRIGGERS: dict[str, tuple[str, str]] = {
    "train": ("by make up", "`make up` (`tidemark train --if-no-production`) trains each "
              "project's first version from its bootstrap CSV when it has no production model; "
              "`tidemark train --project NAME --csv FILE` by hand."),
    "retrain": ("by the monitor", "The monitor starts it when a closed window's error or drift "
                "passes its threshold (the retrain request names the window and the figures)."),
    "promote": ("by a person", "A person, with Run here and a version, or `tidemark promote "
                "VERSION` (a retrain promotes its own candidate without this deployment)."),
    "rollback": ("by a person", "A person, with Run here or `tidemark rollback`: puts the "
                 "previous production version back."),
    "shadow": ("by a person", "A person, with Run here and a version, or `tidemark shadow "
               "VERSION`: runs it in shadow beside production."),
    "retire-challenger": ("by a person", "A person, with Run here or `tidemark shadow "
                          "--retire`: takes the challenger out of shadow."),
    "shadow-verdict": ("by the monitor", "The monitor starts it when a challenger's live "
                       "evidence is final: promote it, retire it, or roll a promotion back."),
}  # fmt: skip


def deployments(work_pool_name: str | None = None) -> list[RunnerDeployment]:
    """A deployment per flow, named like it, so ``run_deployment("retrain/retrain", ...)``.

    With ``work_pool_name`` the deployments belong to that pool and its workers run them.
    """
    return [
        cast(
            RunnerDeployment,
            flow.to_deployment(
                name=flow.name,
                description=_description(flow.name, flow.description),
                # The list shows the first tag only: who starts it, rather than the project.
                tags=[f"started {TRIGGERS[flow.name][0]}", "tidemark"],
                # By module path, with no pull step: a run imports the installed package, so a
                # worker runs it from any folder, on any machine where Tidemark is installed.
                entrypoint_type=EntrypointType.MODULE_PATH,
                work_pool_name=work_pool_name,
            ),
        )
        for flow in FLOWS
    ]


def _description(name: str, what: str | None) -> str:
    return f"Who starts it: {TRIGGERS[name][1]}\n\n{what or ''}".strip()
