"""Fixtures shared by every kind of test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidemark.schemas import Measurement


@pytest.fixture
def measurement() -> Measurement:
    """A typical salmon, as the line measures it."""
    return Measurement(
        fish_id="fish-0001",
        species="salmon",
        length_cm=70.0,
        height_cm=17.0,
        measured_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real stack, and is marked so."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
