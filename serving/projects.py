"""The projects this server speaks of, found by the name a URL gives (``/models/{name}/…``).

A project is addressed by its name, which is also its registered model's name; the default
project may be served under another model name (an explicit ``TIDEMARK_REGISTRY_MODEL_NAME``),
which is accepted too. The first project of the stack's catalog is the default one, the one
``/predict`` answers for.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.project.catalog import Catalog, stack_catalog
from tidemark.project.contracts import Contracts
from tidemark.project.spec import Project, ProjectError

log = get_logger("serving")


@dataclass(frozen=True)
class ServedProject:
    """One project of the server, with the settings it runs with (its model, topics …)."""

    project: Project
    settings: Settings
    contracts: Contracts
    default: bool

    @property
    def name(self) -> str:
        """The project's name."""
        return self.project.name

    @property
    def model_name(self) -> str:
        """Its registered model's name."""
        return self.settings.registry.model_name


class ServedProjects:
    """The stack's projects in catalog order, the default one first.

    Where the projects cannot be read (no folder of projects) there are none, and ``problem``
    says why: the server refuses to start then, since even ``/predict`` takes its fields from
    the default project.
    """

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.problem: str | None = None
        if catalog is None:
            try:
                catalog = stack_catalog(settings.projects)
            except ProjectError as error:
                self.problem = str(error)
                log.warning("no projects to serve by name", reason=self.problem)
        self.all: tuple[ServedProject, ...] = ()
        if catalog is not None:
            self.all = tuple(
                ServedProject(
                    project,
                    catalog.settings(settings, project.name),
                    catalog.contracts(project.name),
                    project is catalog.default,
                )
                for project in catalog
            )

    @property
    def default(self) -> ServedProject:
        """The project ``/predict`` answers for (``IndexError`` when there is none)."""
        return self.all[0]

    def find(self, name: str) -> ServedProject | None:
        """The project of that name or registered model name, or None."""
        for served in self.all:
            if name in (served.name, served.model_name):
                return served
        return None

    def names(self) -> list[str]:
        """Every project's name, for a 404 that says what there is."""
        return [served.name for served in self.all]

    def unknown(self, name: str) -> str:
        """Why ``name`` names nothing here, and what there is."""
        if not self.all:
            return f"no model named {name!r} is served here: no projects ({self.problem})"
        return (
            f"no model named {name!r} is served here; the projects are "
            f"{', '.join(self.names())} (GET /models lists them)"
        )
