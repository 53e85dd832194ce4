"""Checks that a picture or a report page shows something, not only that a file was written."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tidemark.project.contracts import Scored

# A picture with less than this share of its pixels off its background colour is blank for a
# reader: an empty axes frame or an error page covers less; a drawn line chart covers more.
MIN_DRAWN_SHARE = 0.01


def assert_picture(path: Path, *, min_width: int = 400, min_height: int = 200) -> None:
    """``path`` is a PNG at least ``min_width`` x ``min_height`` pixels, not of one colour."""
    with Image.open(path) as image:
        assert image.format == "PNG", (path, image.format)
        width, height = image.size
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert width >= min_width, (path, image.size)
    assert height >= min_height, (path, image.size)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    drawn = 1.0 - counts.max() / len(pixels)
    assert len(colours) > 2, f"{path}: {len(colours)} colours"
    assert drawn >= MIN_DRAWN_SHARE, f"{path}: {drawn:.2%} of the pixels off the background"


# Evidently embeds each counter of a report in the page as JSON: its title, then its value.
_COUNTER = re.compile(
    r'"title": ("(?:[^"\\]|\\.)*")[^{}]*?"params": \{"counters": \[\{"value": ("(?:[^"\\]|\\.)*")'
)


def report_counters(page: Path) -> dict[str, str]:
    """The counters an Evidently HTML report shows, by title."""
    text = page.read_text()
    return {json.loads(m.group(1)): json.loads(m.group(2)) for m in _COUNTER.finditer(text)}


def assert_error_report(page: Path, records: Sequence[Scored]) -> None:
    """``page`` is the error report of exactly ``records``: its mean absolute percentage error
    is theirs (Evidently's counter, rounded to two decimals)."""
    counters = report_counters(page)
    mape = 100 * float(np.mean([r.rel_error for r in records]))
    shown = counters.get("Mean Absolute Percentage Error: mean")
    assert shown is not None, (page, sorted(counters))
    assert abs(float(shown) - mape) <= 0.005 + 1e-9, (page, shown, mape)
