"""The README's worked example runs as written (its budget-solver commands, in a temp folder)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from solver.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _example_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- readme-example", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [shlex.split(line)[1:] for line in block.strip().splitlines() if line.startswith(".venv/bin/budget-solver")]


def test_readme_example_commands_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _example_commands()
    assert [c[0] for c in commands] == ["fit", "validate", "optimize", "optimize", "check"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "solver").symlink_to(ROOT / "solver")  # the README's paths are relative to the repo
    for argv in commands:
        assert main(argv) == 0, argv
    assert (tmp_path / "work" / "q1" / "summary.md").exists()


def test_readme_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert re.search(r"^make demo", text, re.M) and re.search(r"^make test", text, re.M)
