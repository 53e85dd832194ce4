"""The projects a stack runs, found in a folder or named one by one, with their settings.

A stack runs every project file of its projects folder, or those that ``projects.names``
lists (names of files in the folder, or paths); the first of them, in that order, is the
default project that ``/predict`` and a command without ``--project`` address. Each project
gets its own copy of the settings, with its loop overrides applied (:func:`project_settings`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tidemark.config import ProjectsSettings, Settings
from tidemark.project.contracts import Contracts
from tidemark.project.spec import Project, ProjectError, describe_errors, load_project

SUFFIXES = (".toml", ".yaml", ".yml")


@dataclass(frozen=True)
class Catalog:
    """The projects of a stack, in order; the first is the default one."""

    projects: tuple[Project, ...]
    _contracts: dict[str, Contracts] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.projects:
            raise ProjectError("no project: a stack runs at least one")
        seen: dict[str, str] = {}
        for project in self.projects:
            if project.name in seen:
                raise ProjectError(f"two projects are named {project.name}")
            seen[project.name] = project.name
        topics: dict[str, str] = {}
        for project in self.projects:
            for topic in topics_of(project).values():
                if topic in topics:
                    raise ProjectError(
                        f"projects {topics[topic]} and {project.name} both use topic {topic}"
                    )
                topics[topic] = project.name

    def __iter__(self) -> Iterator[Project]:
        return iter(self.projects)

    def __len__(self) -> int:
        return len(self.projects)

    @property
    def default(self) -> Project:
        """The project that commands and ``/predict`` address when none is named."""
        return self.projects[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every project's name, in order."""
        return tuple(p.name for p in self.projects)

    def get(self, name: str | None = None) -> Project:
        """The project of that name (the default one for None); ``ProjectError`` if unknown."""
        if name is None:
            return self.default
        for project in self.projects:
            if project.name == name:
                return project
        raise ProjectError(f"no project named {name!r}; the stack runs {list(self.names)}")

    def settings(self, settings: Settings, name: str | None = None) -> Settings:
        """The settings a project of this stack runs with (the default one for None)."""
        project = self.get(name)
        return project_settings(project, settings, default=project is self.default)

    def contracts(self, name: str | None = None) -> Contracts:
        """The contracts of a project, built once."""
        project = self.get(name)
        if project.name not in self._contracts:
            self._contracts[project.name] = Contracts(project)
        return self._contracts[project.name]


def project_files(folder: Path) -> list[Path]:
    """The project files of a folder, by name."""
    if not folder.is_dir():
        raise ProjectError(f"{folder}: no such folder of projects")
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def load_catalog(folder: Path, names: Sequence[str] = ()) -> Catalog:
    """The projects named (file stems in ``folder``, or paths), else every file of ``folder``."""
    if not names:
        return Catalog(tuple(load_project(path) for path in project_files(folder)))
    projects = []
    for name in names:
        path = Path(name)
        if path.suffix not in SUFFIXES:
            matches = [folder / f"{name}{suffix}" for suffix in SUFFIXES]
            found = [m for m in matches if m.is_file()]
            if not found:
                raise ProjectError(f"no project file {name}.toml (or .yaml) in {folder}")
            path = found[0]
        projects.append(load_project(path))
    return Catalog(tuple(projects))


def stack_catalog(settings: ProjectsSettings) -> Catalog:
    """The projects a stack's settings name (every file of the folder when none is named)."""
    return load_catalog(settings.dir, settings.listed)


def project_settings(project: Project, settings: Settings, *, default: bool = True) -> Settings:
    """The settings one project runs with: its names, and the stack's loop with its overrides.

    The project names its topics, its registered model and MLflow experiment (its name) and
    its store's collection. A stack setting given explicitly for one of those (an environment
    variable, a keyword) still wins for the ``default`` project, so that a deployment or a test
    can move the default project's topics or model without a file of its own; it never applies
    to another project, whose names would then collide with the default one's.
    """
    changes: dict[str, Any] = {
        section: overridden(
            getattr(settings, section), getattr(project.loop, section), f"{project.name}: loop"
        )
        for section in ("monitor", "retrain", "shadow")
    }
    if project.times.join_window_s is not None:
        changes["stream"] = settings.stream.model_copy(
            update={"join_window_s": project.times.join_window_s}
        )
    kafka, registry, store = settings.kafka, settings.registry, settings.store
    topics = {
        role: name
        for role, name in topics_of(project).items()
        if not (default and role in kafka.topics.model_fields_set)
    }
    changes["kafka"] = kafka.model_copy(update={"topics": kafka.topics.model_copy(update=topics)})
    names = {"model_name": project.name, "experiment": project.name}
    changes["registry"] = registry.model_copy(
        update={k: v for k, v in names.items() if not (default and k in registry.model_fields_set)}
    )
    if not (default and "collection" in store.model_fields_set):
        changes["store"] = store.model_copy(update={"collection": project.collection})
    return settings.model_copy(update=changes)


def topics_of(project: Project) -> dict[str, str]:
    """The project's topics by role."""
    prefix = project.topic_prefix
    return {
        "input": f"{prefix}.{project.topics.input}",
        "truth": f"{prefix}.{project.topics.truth}",
        "predictions": f"{prefix}.predictions",
        "scored": f"{prefix}.scored",
        "retrain_requests": f"{prefix}.retrain-requests",
        "model_decisions": f"{prefix}.model-decisions",
        "dead_letter": f"{prefix}.dead-letter",
    }


def overridden(section: BaseModel, changes: Mapping[str, Any], where: str) -> Any:
    """A settings section with a project's changes, validated; the error names the field."""
    if not changes:
        return section
    try:
        return type(section).model_validate(section.model_dump() | dict(changes))
    except ValidationError as error:
        raise ProjectError(f"{where}: {describe_errors(error)}") from None
