"""make test's scheduling under pytest-xdist: each module on one worker (its module fixtures built
once), tests/workflows as one scope. pytest-xdist 3.8's --dist loadgroup silently stopped doing
this under pytest 9 (it rewrites ``item._nodeid``, which pytest 9 no longer reads), so the
scheduler is tests/conftest.py's, keyed on the node id, and this checks the real thing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import scope_of

REPO = Path(__file__).resolve().parents[2]


def test_scope_is_the_module_and_the_workflow_harness_is_one() -> None:
    assert scope_of("tests/core/test_io.py::test_a[1-x]") == "tests/core/test_io.py"
    assert scope_of("tests/loop/test_gate.py::TestX::test_b") == "tests/loop/test_gate.py"
    assert scope_of("tests/workflows/test_ci_workflow.py::test_c") == "tests/workflows"
    assert scope_of("tests/workflows/test_harness.py::test_d") == "tests/workflows"


def test_make_test_uses_the_mode_the_scheduler_serves() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^PYTEST_XDIST := -n \$\(PYTEST_WORKERS\) --dist loadscope$", makefile, re.M)


@pytest.mark.slow
def test_each_module_runs_on_one_worker_in_make_test_s_mode() -> None:
    modules = ["tests/core/test_stats.py", "tests/core/test_io.py", "tests/core/test_stage.py"]
    found = re.search(r"^PYTEST_XDIST := .*--dist (\w+)", (REPO / "Makefile").read_text(), re.M)
    assert found, "the Makefile names no --dist mode"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            found.group(1),
            "-v",
            "-p",
            "no:cacheprovider",
            *modules,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    workers: dict[str, set[str]] = defaultdict(set)
    for worker, nodeid in re.findall(r"^\[(gw\d+)\] \[[ \d]+%\] PASSED (\S+)", done.stdout, re.M):
        workers[scope_of(nodeid)].add(worker)
    assert set(workers) == set(modules), done.stdout[-2000:]
    assert all(len(w) == 1 for w in workers.values()), dict(workers)
