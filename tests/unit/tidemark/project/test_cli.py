"""`tidemark projects` and `tidemark init` as a person runs them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tidemark.cli import app
from tidemark.project.spec import load_project

REPO = Path(__file__).parents[4]
runner = CliRunner()


def test_projects_lists_the_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["projects", "--dir", str(REPO / "projects")])
    assert result.exit_code == 0, result.output
    assert "fish-weight" in result.output


def test_init_writes_a_file_that_loads_and_refuses_to_overwrite(tmp_path: Path) -> None:
    csv = tmp_path / "loaves.csv"
    csv.write_text(
        "recipe,dough_g,loaf_g\n" + "".join(f"rye,{500 + i},{450 + i}\n" for i in range(10))
    )
    out = tmp_path / "bakery.toml"
    args = ["init", "bakery", "--csv", str(csv), "--target", "loaf_g", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert load_project(out).target.name == "loaf_g"
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "exists" in again.output


def test_init_names_a_target_that_is_not_a_column(tmp_path: Path) -> None:
    csv = tmp_path / "loaves.csv"
    csv.write_text("recipe,dough_g\nrye,500\n")
    result = runner.invoke(
        app,
        [
            "init",
            "bakery",
            "--csv",
            str(csv),
            "--target",
            "mass",
            "--out",
            str(tmp_path / "b.toml"),
        ],
    )
    assert result.exit_code == 2
    assert "--target mass is not a column" in result.output
