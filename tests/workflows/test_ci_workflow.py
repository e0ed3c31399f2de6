"""ci.yml under act: the lint job (pre-commit on every file, the model card is fresh)."""

from __future__ import annotations

import pytest
from act_harness import Act, Origin

pytestmark = pytest.mark.slow


def test_ci_lint_job_passes_on_main(act: Act, origin: Origin) -> None:
    run = act.run("push", "ci.yml", {"ref": "refs/heads/main"}, job="lint")

    assert run.returncode == 0, run.explain()
    assert run.jobs == {"lint": "success"}, run.explain()
    assert "make lint" in run.log or "pre-commit run --all-files" in run.log
    assert "flightdelay card --check" in run.log, run.explain()


@pytest.mark.skip(reason="written, not yet run to green under act (issue 18 ran out of time)")
def test_ci_lint_job_fails_on_a_lint_error(act: Act, origin: Origin) -> None:
    source = origin.work / "src" / "flightdelay" / "cli.py"
    source.write_text(source.read_text() + "\nimport os  # unused: ruff F401\n")
    origin.git("commit", "--quiet", "-am", "an unused import")
    origin.git("push", "--quiet", "origin", "HEAD:main")

    run = act.run("push", "ci.yml", {"ref": "refs/heads/main"}, job="lint")

    assert run.returncode != 0
    assert run.jobs == {"lint": "failure"}, run.explain()
    assert "F401" in run.log, run.explain()
