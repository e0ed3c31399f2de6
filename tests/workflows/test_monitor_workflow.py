"""monitor.yml (workflow_dispatch; the schedule runs the same jobs) under act.

README, "The drift monitor": `make monitor-check` compares the month after the newest batch
(2013-10) with what the model learned from; the workflow keeps ONE tracking issue, labelled
drift-monitor, whose body it replaces (never a comment), and opens ONE retraining pull request
when a triggering signal crossed its threshold; an open pull request for that branch means there
is nothing to do. Here the tracking issue exists and the retraining pull request is open already,
so the run must edit the issue in place and open, push and re-run nothing.
"""

from __future__ import annotations

import json

import pytest
from act_harness import OWNER_REPO, Act, Origin

pytestmark = pytest.mark.slow

BRANCH = "retrain/2013-10"


def test_monitor_replaces_the_tracking_issue_body_and_opens_no_second_pull_request(
    act: Act, origin: Origin
) -> None:
    act.gh_state.write_text(
        json.dumps(
            {
                "issues": [{"number": 5, "state": "open", "labels": [{"name": "drift-monitor"}]}],
                "pulls": [{"number": 9, "state": "open", "headRefName": BRANCH}],
            }
        )
    )

    run = act.run(
        "workflow_dispatch",
        "monitor.yml",
        {"inputs": {"month": ""}, "repository": {"full_name": OWNER_REPO, "fork": False}},
        secrets={"DVC_REMOTE_URL": str(act.dvc_remote)},
    )

    assert run.jobs == {"check": "success", "issue": "success", "retrain": "success"}, run.explain()
    gh = run.calls["gh"]
    verbs = [c["argv"][:2] for c in gh]
    assert ["label", "create"] in verbs, gh
    (edit,) = [c for c in gh if c["argv"][:2] == ["issue", "edit"]]
    assert edit["argv"][2] == "5", edit
    title = edit["argv"][edit["argv"].index("--title") + 1]
    assert title.startswith("Drift monitor: 2013-10"), title
    assert "2013-10" in edit["body"], edit["body"][:500]
    assert ["issue", "create"] not in verbs, gh
    assert ["issue", "comment"] not in verbs, gh
    (searched,) = [c["argv"] for c in gh if c["argv"][:2] == ["pr", "list"]]
    assert searched[searched.index("--head") + 1] == BRANCH, gh
    assert ["pr", "create"] not in verbs, gh
    assert BRANCH not in origin.git("ls-remote", "--heads", "origin"), "no branch may be pushed"
