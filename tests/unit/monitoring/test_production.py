"""The production version the monitor judges follows the watcher's, without a moment's lag."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, cast

import pandas as pd
import pytest

from monitoring import production
from monitoring.production import ProductionFollower
from tidemark.config import Settings


@dataclass
class Served:
    """What a watcher serves, as the follower reads it."""

    version: str
    name: str = "fish"
    run_id: str = "run"
    tags: dict[str, str] = field(default_factory=dict)
    segments: frozenset[str] = frozenset({"salmon"})


class SwappedElsewhere:
    """A watcher whose own thread already swapped to ``current`` and has not yet called its
    listeners (they run after its lock is released): ``check_now`` finds nothing to do."""

    def __init__(self, current: Served) -> None:
        self.current = current
        self.listeners: list[Any] = []

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def check_now(self) -> bool:
        return False


class Reader:
    loads: ClassVar[list[str]] = []

    def __init__(self, _: Any) -> None:
        pass

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType
    ) -> None:
        return None

    def load_reference(self, ref: Any) -> pd.DataFrame:
        Reader.loads.append(ref.version)
        return pd.DataFrame({"length_cm": [60.0]})


class Detector:
    reference_rows = 1

    def __init__(self, *_: Any, **__: Any) -> None:
        pass


@pytest.fixture
def follower(monkeypatch: pytest.MonkeyPatch) -> ProductionFollower:
    monkeypatch.setattr(production, "RegistryReader", Reader)
    monkeypatch.setattr(production, "DriftDetector", Detector)
    Reader.loads = []
    watcher = SwappedElsewhere(Served("1"))
    follower = ProductionFollower(Settings(), watcher=cast(Any, watcher))
    follower._swapped(cast(Any, watcher.current))
    return follower


def test_a_version_the_watcher_swapped_to_is_judged_before_its_listener_ran(
    follower: ProductionFollower,
) -> None:
    cast(Any, follower.watcher).current = Served("2")
    current = follower.refresh()
    assert current is not None
    assert (current.version, current.detector is not None) == ("2", True)
    assert Reader.loads == ["1", "2"]
    # The watcher's listener then finds the version loaded, and loads nothing again.
    follower._swapped(cast(Any, follower.watcher.current))
    assert Reader.loads == ["1", "2"]


def test_an_unchanged_version_is_not_loaded_again(follower: ProductionFollower) -> None:
    current = follower.refresh()
    assert current is not None
    assert current.version == "1"
    assert Reader.loads == ["1"]
