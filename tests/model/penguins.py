"""The Palmer penguins as a project: its file beside this module, its data from the package."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import pandas as pd

from tidemark.project.spec import Project, load_project

PROJECT_FILE = Path(__file__).with_name("penguin-mass.toml")


def project() -> Project:
    """The penguins' project."""
    return load_project(PROJECT_FILE)


def penguins() -> pd.DataFrame:
    """Every weighed penguin of palmerpenguins' CSV, read from the installed wheel (the
    package's own modules are not imported), in the file's order; a sex not recorded is NaN."""
    text = resources.files("palmerpenguins").joinpath("data/penguins.csv").read_text()
    frame = pd.read_csv(io.StringIO(text), na_values=["NA"], keep_default_na=False)
    return frame.dropna(subset=["body_mass_g"]).reset_index(drop=True)
