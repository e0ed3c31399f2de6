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
