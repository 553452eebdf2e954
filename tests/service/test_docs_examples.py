"""docs/http-api.md's curl and Python examples run as written, against a real server on a free port.

Each example is the fenced block after a ``<!-- docs-example: NAME -->`` marker. The only change
made to it is the address: ``http://127.0.0.1:8000`` becomes the test server's. Comment lines of
the curl example that show an answer in full (``# {"detail": ...}``) must appear in its output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from service_helpers import ROOT, Server

from solver.cli import main

DOC = ROOT / "docs" / "http-api.md"
DOC_URL = "http://127.0.0.1:8000"


def example(name: str) -> str:
    """The code of the fenced block that follows ``<!-- docs-example: name -->``."""
    text = DOC.read_text()
    m = re.search(rf"<!-- docs-example: {name} -->\s*```\w+\n(.*?)```", text, re.DOTALL)
    assert m, f"no docs-example {name!r} in {DOC}"
    return m.group(1)


@pytest.fixture(scope="module")
def docs_server(server_factory: Any, workdir: Path) -> Server:
    return server_factory("docs.db", workers=2, dask_workers=1)


@pytest.fixture(scope="module")
def example_dir(workdir: Path) -> Path:
    """A folder laid out as the repository's root for the examples: solver/sample_data and the
    README's fitted ``work/problem.json``."""
    folder = workdir / "docs-examples"
    folder.mkdir()
    (folder / "solver").symlink_to(ROOT / "solver")
    data = ROOT / "solver" / "sample_data"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["fit", str(data / "email_history.csv"), "--plan", str(data / "plan.json"),
                     "--out", str(folder / "work" / "problem.json")])
    assert code == 0
    return folder


def test_the_curl_example_runs_as_written(docs_server: Server, example_dir: Path) -> None:
    script = example("curl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGET_SOLVER_")}
    env |= {"BUDGET_SOLVER_DB": docs_server.db_url, "PYTHONPATH": str(ROOT),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}
    done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script.replace(DOC_URL, docs_server.url)],
                          cwd=example_dir, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    for shown in re.findall(r"^# (\{\"detail\".*\})$", script, re.MULTILINE):
        assert shown in done.stdout
    assert json.loads((example_dir / "submitted.json").read_text()) == json.loads(
        (example_dir / "work" / "problem.json").read_text())
    fitted = json.loads((example_dir / "fitted.json").read_text())
    assert fitted["status"] == "done" and len(fitted["problem"]["cells"]) == 30
    assert '"status":"done"' in done.stdout and '"solution":{"status":"optimal"' in done.stdout


def test_the_python_client_example_runs_as_written(docs_server: Server, example_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from solver.service.store import RunStore

    store = RunStore(docs_server.db_url)
    monkeypatch.setenv("KEY", store.create_key("python-example"))
    store.close()
    monkeypatch.chdir(example_dir)
    namespace: dict[str, Any] = {}
    exec(compile(example("python").replace(DOC_URL, docs_server.url), str(DOC), "exec"), namespace)  # noqa: S102 - the docs' own example
    out = capsys.readouterr().out
    assert namespace["solution"]["status"] == "optimal" and namespace["run"]["status"] == "done"
    assert [s["status"] for s in namespace["solutions"]] == ["optimal"] * 3
    assert len(namespace["frontier"]) == 5
    assert "budget: must be a finite number > 0, got 0" in out
