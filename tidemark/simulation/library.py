"""Where a project's scenarios are: the folder its project file names, one YAML file each.

A project file says ``scenarios = "../examples/bakery/scenarios"`` (relative to itself); every
``*.yaml`` there is a scenario of that project, known by its file name (``default.yaml`` is
``default``, the one played when none is named). A scenario elsewhere is given by its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tidemark.project.catalog import Catalog
from tidemark.project.spec import Project
from tidemark.simulation.scenario import Scenario, ScenarioError, bind, parse_spec
from tidemark.simulation.spec import ScenarioFile

DEFAULT_SCENARIO = "default"
SUFFIX = ".yaml"


def scenario_folder(project: Project) -> Path | None:
    """The folder of the project's scenarios, if its file names one."""
    return None if project.scenarios is None else Path(project.scenarios)


def packaged_scenarios(project: Project) -> tuple[str, ...]:
    """The names of the project's scenarios, sorted (none without a folder)."""
    folder = scenario_folder(project)
    if folder is None or not folder.is_dir():
        return ()
    return tuple(sorted(path.stem for path in folder.glob(f"*{SUFFIX}") if path.is_file()))


def is_name(scenario: str | Path) -> bool:
    """Whether ``scenario`` names a project's scenario rather than a file.

    A bare word (no suffix, no folder) that is not a file in the working directory is a name.
    """
    candidate = Path(scenario)
    return not (candidate.exists() or candidate.suffix or len(candidate.parts) != 1)


def scenario_path(project: Project, scenario: str | Path | None = None) -> Path:
    """The file of a scenario: a path as given, or a name among the project's scenarios."""
    if scenario is not None and not is_name(scenario):
        return Path(scenario)
    name = str(scenario or DEFAULT_SCENARIO)
    if name not in packaged_scenarios(project):
        folder = scenario_folder(project)
        where = f"in {folder}" if folder else "(its project file names no scenarios folder)"
        known = ", ".join(packaged_scenarios(project)) or "none"
        raise ScenarioError(
            f"no scenario file {name} and project {project.name} has no scenario {name!r} "
            f"{where}; its scenarios: {known}"
        )
    folder = scenario_folder(project)
    assert folder is not None  # it has scenarios
    return folder / f"{name}{SUFFIX}"


def read_spec(path: Path) -> ScenarioFile:
    """A scenario file, checked for its shape alone (which project it names, its phases)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"cannot read scenario {path}: {error.strerror}") from None
    return parse_spec(text, str(path))


def load_scenario(project: Project, scenario: str | Path | None = None) -> Scenario:
    """A scenario of ``project`` by name (its default one for None) or path, bound to it."""
    path = scenario_path(project, scenario)
    return bind(read_spec(path), project, folder=path.parent, source=str(path))


def choose_scenarios(
    catalog: Catalog, projects: Sequence[str] = (), scenarios: Sequence[str | Path] = ()
) -> list[Scenario]:
    """The scenario each project plays, for a command line that names projects and scenarios.

    The projects are those named, else those the scenario files name, else the catalog's
    default one. A scenario file plays for the project it names; a scenario name (at most one)
    is looked up among the scenarios of each project that has no file; a project with neither
    plays its default scenario.
    """
    files = [Path(s) for s in scenarios if not is_name(s)]
    names = [str(s) for s in scenarios if is_name(s)]
    if len(names) > 1:
        raise ScenarioError(f"name one scenario for every project, not {names}; or give files")
    specs: dict[str, tuple[Path, ScenarioFile]] = {}
    for path in files:
        spec = read_spec(path)
        catalog.get(spec.project)
        if spec.project in specs:
            raise ScenarioError(
                f"{specs[spec.project][0]} and {path} are both scenarios of {spec.project}"
            )
        specs[spec.project] = (path, spec)
    chosen = list(dict.fromkeys(projects or specs)) or [catalog.default.name]
    for named, (path, _) in specs.items():
        if named not in chosen:
            raise ScenarioError(f"{path} is a scenario of {named}, which is not simulated")
    played = []
    for name in chosen:
        project = catalog.get(name)
        if name in specs:
            path, spec = specs[name]
            played.append(bind(spec, project, folder=path.parent, source=str(path)))
        else:
            played.append(load_scenario(project, names[0] if names else None))
    return played
