"""The project a flow run works on: its file, its settings and its contracts, by name.

Every flow takes a ``project`` parameter, the name of a project of the stack's catalog
(``tidemark.project.catalog``); None is the catalog's default project. The project names the
registered model and experiment, the store's collection and the loop's thresholds
(``project_settings``), and its model is the platform's default for its target or the user's
factory (``tidemark.modelling``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tidemark.config import Settings, get_settings
from tidemark.project.catalog import Catalog, stack_catalog
from tidemark.project.contracts import Contracts
from tidemark.project.spec import Project


@dataclass(frozen=True, slots=True)
class ProjectContext:
    """One project of the stack as a flow run sees it."""

    project: Project
    settings: Settings
    contracts: Contracts

    @property
    def model_name(self) -> str:
        """The registered model of the project."""
        return self.settings.registry.model_name


def project_context(name: str | None = None, settings: Settings | None = None) -> ProjectContext:
    """The project ``name`` of the stack's catalog (the default project for None), with the
    settings it runs with; ``ProjectError`` when the stack runs no such project."""
    stack = settings or get_settings()
    catalog = stack_catalog(stack.projects)
    return context_of(catalog, name, stack)


def context_of(catalog: Catalog, name: str | None, settings: Settings) -> ProjectContext:
    """The project ``name`` of ``catalog`` with its settings and contracts."""
    project = catalog.get(name)
    return ProjectContext(project, catalog.settings(settings, name), catalog.contracts(name))
