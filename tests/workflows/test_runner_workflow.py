"""Bigger runners (README, "Bigger runners"): repository variables pick where the model jobs run.

`runs-on` of pr-report.yml's `report` and promote.yml's `promote` is vars.MODEL_RUNNER (default
ubuntu-latest): a job whose runner does not exist fails to start, so offering only the variable's
label shows which label a job asked for. The harness stops act when a job begins its first step
(``until_first_step``): by then the job has its runner, and nothing has run (act's -n would run
every step on the host executor: the whole report and promote jobs). With vars.CML_RUNNER_CLOUD
set too, the `runner` job calls `make runner-launch`, i.e. `cml runner launch` (cml stand-in)
with the flags the README documents.
"""

from __future__ import annotations

import pytest
from act_harness import OWNER_REPO, Act, Origin
from test_pr_report_workflow import pull_request_event
from test_promote_workflow import push_event

pytestmark = pytest.mark.slow

LABEL = "gpu-box"
CLOUD = {
    "MODEL_RUNNER": "cml-gpu",
    "CML_RUNNER_CLOUD": "aws",
    "CML_RUNNER_REGION": "eu-west",
    "CML_RUNNER_TYPE": "g4dn.xlarge",
    "CML_RUNNER_IDLE_TIMEOUT": "900",
}


def pr_event(origin: Origin, head_repo: str = OWNER_REPO) -> dict[str, object]:
    event = pull_request_event(7, origin.head(), "pr", origin.head())
    event["pull_request"]["head"]["repo"]["full_name"] = head_repo  # type: ignore[index]
    return event


def test_runner_variable_moves_the_report_and_promote_jobs_to_its_label(
    act: Act, origin: Origin
) -> None:
    labelled = {"MODEL_RUNNER": LABEL}
    report = act.run(
        "pull_request", "pr-report.yml", pr_event(origin), variables=labelled, runners=[LABEL],
        until_first_step=True,
    )  # fmt: skip
    promote = act.run(
        "push", "promote.yml", push_event(origin), variables=labelled, runners=[LABEL],
        job="promote", until_first_step=True,
    )  # fmt: skip
    unset = act.run(
        "pull_request", "pr-report.yml", pr_event(origin), runners=[LABEL], until_first_step=True
    )
    fork = act.run(
        "pull_request", "pr-report.yml", pr_event(origin, "someone/fork"), variables=labelled,
        runners=[LABEL], until_first_step=True,
    )  # fmt: skip

    assert report.jobs.get("report") == "started", report.explain()
    assert promote.jobs.get("promote") == "started", promote.explain()
    assert unset.jobs.get("report") == "failure", unset.explain()  # asks for ubuntu-latest
    assert fork.jobs.get("report") == "failure", fork.explain()  # a fork's code stays on GitHub's


def test_runner_launch_job_calls_cml_runner_launch_with_the_documented_flags(
    act: Act, origin: Origin
) -> None:
    run = act.run(
        "pull_request", "pr-report.yml", pr_event(origin), job="runner", variables=CLOUD,
        secrets={"CML_RUNNER_TOKEN": "a-personal-access-token"},
    )  # fmt: skip

    assert run.jobs == {"runner": "success"}, run.explain()
    (launch,) = [c for c in run.calls["cml"] if c["command"] == "runner launch"]
    assert launch["token"] is True
    assert launch["options"] == {
        "cloud": "aws",
        "cloud-region": "eu-west",
        "cloud-type": "g4dn.xlarge",
        "cloud-spot": True,
        "labels": "cml-gpu",
        "idle-timeout": "900",
        "single": True,
    }


def test_runner_launch_without_the_token_secret_fails_and_says_which(
    act: Act, origin: Origin
) -> None:
    run = act.run("push", "promote.yml", push_event(origin), job="runner", variables=CLOUD)

    assert run.jobs == {"runner": "failure"}, run.explain()
    assert "error: set REPO_TOKEN (CI: the secret CML_RUNNER_TOKEN" in run.log, run.explain()
    assert not run.calls["cml"], run.calls["cml"]
