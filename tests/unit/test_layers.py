"""Imports run one way: kernel ← services ← infra and demo, and nothing imports the demo.

Every ``.py`` file of the layered packages is parsed with ``ast`` (imports inside functions and
``TYPE_CHECKING`` blocks count too) and each import is resolved to the top-level package it
names. Third-party imports are not judged; only arrows between Tidemark's own packages are.
The ``tidemark`` command finds the sub-commands through entry points declared in
pyproject.toml, which is how the kernel's command line reaches services without importing them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "tidemark"
SERVICES = frozenset({"flows", "serving", "streaming", "monitoring"})
INFRA = "infra"
DEMO = "demo"

# What each package may import besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    KERNEL: frozenset(),
    **{service: frozenset({KERNEL}) for service in SERVICES},
    # infra knows services only as command lines, never as Python.
    INFRA: frozenset({KERNEL}),
    # The demo drives the simulator, the monitor's windows and the supervisor; nothing drives it.
    DEMO: frozenset({KERNEL, *SERVICES, INFRA}),
}
PACKAGES = frozenset(ALLOWED)


def _package_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


def imported_packages(source: str, package: str) -> set[tuple[int, str]]:
    """(line, top-level package) of every import in ``source``, a module of ``package``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            # A relative import stays inside the package it is written in.
            top = package if node.level else (node.module or "").split(".")[0]
            found.add((node.lineno, top))
    return found


def forbidden_arrows(source: str, package: str) -> list[str]:
    """``line: package -> other`` for each import of ``source`` that breaks the layering."""
    return [
        f"{line}: {package} -> {target}"
        for line, target in sorted(imported_packages(source, package))
        if target in PACKAGES and target != package and target not in ALLOWED[package]
    ]


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_every_layered_package_is_walked() -> None:
    walked = {_package_of(path) for path in _modules()}
    assert walked == PACKAGES


@pytest.mark.parametrize(
    ("package", "source"),
    [
        (KERNEL, "from flows.cli import app"),
        (KERNEL, "def f():\n    import infra.local.stack"),
        ("monitoring", "from streaming.scorer import Scorer"),
        ("flows", "from infra.local.components import Component"),
        (INFRA, "from serving.cli import serve"),
        ("streaming", "from demo.player import play"),
        (INFRA, "import demo"),
    ],
)
def test_a_back_arrow_is_found(package: str, source: str) -> None:
    assert forbidden_arrows(source, package)


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("streaming", "from tidemark.stream.service import run_service\nimport kafka"),
        (DEMO, "from streaming.simulator import publish\nfrom infra.local.stack import Stack"),
        ("monitoring", "from . import metrics"),
    ],
)
def test_a_forward_arrow_passes(package: str, source: str) -> None:
    assert forbidden_arrows(source, package) == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    assert forbidden_arrows(path.read_text(), _package_of(path)) == []
