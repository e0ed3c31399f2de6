"""pr-report.yml then pr-comment.yml under act, as GitHub chains them for a pull request.

The pull request changes a training parameter; pr-report reproduces the pipeline on the merge
commit (refs/pull/N/merge of the origin) and uploads the `model-report` artifact to act's
artifact server; pr-comment, triggered by `workflow_run`, downloads that artifact (act's run id
is always 1), finds the pull request by the run's head commit (gh stand-in) and posts it with
`cml comment update` (cml stand-in from the tool cache, via iterative/setup-cml).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from act_harness import OWNER_REPO, Act, Origin

pytestmark = pytest.mark.slow

PR = 7


def artifact_files(artifacts: Path, name: str) -> dict[str, bytes]:
    """{path inside the artifact: bytes} of the artifact ``name`` act's server stored."""
    found: dict[str, bytes] = {}
    for path in artifacts.rglob("*"):
        if not path.is_file() or name not in path.parts:
            continue
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                found.update({n: archive.read(n) for n in archive.namelist()})
        else:
            found[str(path.relative_to(artifacts))] = path.read_bytes()
    return found


def pull_request_event(number: int, head: str, branch: str, base: str) -> dict[str, object]:
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"ref": branch, "sha": head, "repo": {"full_name": OWNER_REPO}},
            "base": {"ref": "main", "sha": base, "repo": {"full_name": OWNER_REPO}},
        },
        "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
    }


def workflow_run_event(head: str, branch: str, conclusion: str) -> dict[str, object]:
    return {
        "action": "completed",
        "workflow_run": {
            "id": 1,
            "name": "model report",
            "event": "pull_request",
            "conclusion": conclusion,
            "head_sha": head,
            "head_branch": branch,
            "head_repository": {"full_name": OWNER_REPO},
        },
        "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
    }


def halve_max_iter(origin: Origin) -> tuple[int, int]:
    params = origin.work / "params.yaml"
    text = params.read_text()
    before = int(yaml.safe_load(text)["train"]["max_iter"])
    after = max(before // 2, 20)
    params.write_text(re.sub(rf"(?m)^(  max_iter: ){before}\b", rf"\g<1>{after}", text, count=1))
    return before, after


def test_pr_report_then_comment_posts_the_verdict_and_deltas_once_per_push(
    act: Act, origin: Origin
) -> None:
    base = origin.head()
    origin.git("checkout", "--quiet", "-b", "pr-params")
    before, after = halve_max_iter(origin)
    origin.git("commit", "--quiet", "-am", "fewer boosting rounds")
    head, _merge = origin.open_pull_request(PR, "pr-params")

    report_run = act.run(
        "pull_request",
        "pr-report.yml",
        pull_request_event(PR, head, "pr-params", base),
        secrets={"DVC_REMOTE_URL": str(act.dvc_remote)},
    )

    assert report_run.jobs == {"report": "success"}, report_run.explain()
    files = artifact_files(act.artifacts, "model-report")
    report = files["report.md"].decode()
    assert report.startswith("## flight-delay report\n\n"), report[:500]
    verdict = report.splitlines()[2]
    assert "promoted" in verdict.lower(), verdict
    assert f"| `train.max_iter` | `{before}` | `{after}` |" in report
    roc = next(line for line in report.splitlines() if line.startswith("| **ROC AUC ↑** |"))
    cells = [c.strip() for c in roc.strip("|").split("|")]
    assert cells[3].count("…") == 1, roc  # delta, mark, <sub>low … high</sub>
    assert any(mark in cells[3] for mark in "⚪🟢🔴"), roc
    assert "img/evaluation-curves.png" in files

    act.gh_state.write_text(
        json.dumps(
            {
                "pulls": [
                    {"number": PR, "state": "open", "headRefName": "pr-params", "headRefOid": head}
                ]
            },
            indent=1,
        )
    )
    comment_run = act.run(
        "workflow_run", "pr-comment.yml", workflow_run_event(head, "pr-params", "success")
    )

    assert comment_run.jobs == {"comment": "success"}, comment_run.explain()
    comments = [c for c in comment_run.calls["cml"] if c["command"] == "comment update"]
    assert len(comments) == 1, comment_run.calls["cml"]
    posted = comments[0]
    assert posted["options"]["target"] == f"pr/{PR}"
    assert posted["options"]["watermark-title"] == "flight-delay report"
    assert posted["publish"] is False
    assert verdict in posted["markdown"]
    searched = [c["argv"] for c in comment_run.calls["gh"] if c["argv"][:2] == ["pr", "list"]]
    assert searched, comment_run.calls["gh"]
    assert head in searched[0], comment_run.calls["gh"]

    # A second push to the pull request: the same comment (same target and watermark) is updated.
    origin.git("checkout", "--quiet", "pr-params")
    (origin.work / "README.md").write_text((origin.work / "README.md").read_text() + "\n")
    origin.git("commit", "--quiet", "-am", "a second push")
    head2, _ = origin.open_pull_request(PR, "pr-params")
    act.gh_state.write_text(act.gh_state.read_text().replace(head, head2))
    again = act.run(
        "workflow_run", "pr-comment.yml", workflow_run_event(head2, "pr-params", "success")
    )

    assert again.jobs == {"comment": "success"}, again.explain()
    updates = [c for c in again.calls["cml"] if c["command"] == "comment update"]
    assert len(updates) == 2, again.calls["cml"]
    assert updates[1]["options"]["target"] == updates[0]["options"]["target"]
    assert updates[1]["options"]["watermark-title"] == updates[0]["options"]["watermark-title"]


def test_pr_report_corrupt_batch_fails_names_the_expectation_and_is_still_posted(
    act: Act, origin: Origin, main_repo: tuple[Path, Path]
) -> None:
    base = origin.head()
    origin.git("checkout", "--quiet", "-b", "pr-corrupt")
    # The developer adds October with a carrier code no expectation allows, as a PR would.
    env = {**origin.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    dvc = [sys.executable, "-m", "dvc"]
    for cmd in (
        [*dvc, "remote", "add", "--local", "--default", "--force", "team", str(main_repo[1])],
        [*dvc, "pull", "--quiet", "data.dvc"],
        [sys.executable, "-m", "flightdelay", "data", "add-month", "2013-10"],
    ):
        done = subprocess.run(cmd, cwd=origin.work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    batch = origin.work / "data" / "flights" / "2013-10.csv"
    lines = batch.read_text().splitlines(keepends=True)
    batch.write_text(
        "".join(ln.replace(",UA,", ",ZZ,", 1) if 0 < i <= 50 else ln for i, ln in enumerate(lines))
    )
    # Recorded as a data pull request records it (manifest + dvc add), pushed by its pre-push hook.
    for cmd in (
        [sys.executable, "-m", "flightdelay", "data", "record"],
        [*dvc, "push", "--quiet", "data.dvc"],
    ):
        done = subprocess.run(cmd, cwd=origin.work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    origin.git("add", "data.dvc")
    origin.git("commit", "--quiet", "-m", "add October (corrupt)")
    head, _merge = origin.open_pull_request(PR + 1, "pr-corrupt")

    report_run = act.run(
        "pull_request",
        "pr-report.yml",
        pull_request_event(PR + 1, head, "pr-corrupt", base),
        secrets={"DVC_REMOTE_URL": str(act.dvc_remote)},
    )

    assert report_run.jobs == {"report": "failure"}, report_run.explain()
    report = artifact_files(act.artifacts, "model-report")["report.md"].decode()
    verdict = report.splitlines()[2]
    assert verdict.startswith("❌ **Would not be promoted if merged**: data validation failed")
    assert "expect_column_values_to_be_in_set column=carrier in 2013-10" in verdict
    assert verdict in act.summary.read_text()

    act.gh_state.write_text(
        json.dumps({"pulls": [{"number": PR + 1, "state": "open", "headRefOid": head}]})
    )
    comment_run = act.run(
        "workflow_run", "pr-comment.yml", workflow_run_event(head, "pr-corrupt", "failure")
    )

    assert comment_run.jobs == {"comment": "success"}, comment_run.explain()
    (posted,) = [c for c in comment_run.calls["cml"] if c["command"] == "comment update"]
    assert posted["options"]["target"] == f"pr/{PR + 1}"
    # The same verdict line; the comment writes the artifact's brackets as entities (text only).
    posted_verdict = posted["markdown"].splitlines()[2]
    assert posted_verdict == verdict.replace("[", "&#91;").replace("]", "&#93;"), posted_verdict
