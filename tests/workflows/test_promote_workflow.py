"""promote.yml (push to main) and the release.yml it calls (workflow_call) under act.

main holds a pipeline run whose outputs are in the DVC remote (the ``main_repo`` fixture). The
promote job pulls them, reads the merged pull request's labels (gh stand-in), runs the gate and
GTO, and pushes the version and stage tags to the origin; the release jobs check out those tags
(a real actions/checkout against the origin), pull and verify the model, build and push the
image (docker stand-in), start the staging service on loopback and smoke it, and publish the
GitHub release (gh stand-in).
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from act_harness import OWNER_REPO, Act, Origin, listening

pytestmark = pytest.mark.slow


def push_event(origin: Origin) -> dict[str, object]:
    return {
        "ref": "refs/heads/main",
        "after": origin.head(),
        "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
    }


def test_promote_push_to_main_tags_releases_and_deploys_staging(act: Act, origin: Origin) -> None:
    sha = origin.head()
    act.gh_state.write_text(
        json.dumps({"pulls": [{"number": 3, "mergeCommitOid": sha, "labels": [{"name": "patch"}]}]})
    )

    run = act.run("push", "promote.yml", push_event(origin))

    assert run.jobs.get("promote") == "success", run.explain()
    tags = origin.tags()
    assert "flight-delay@v0.1.0" in tags, (tags, run.explain())
    assert "flight-delay#staging#1" in tags, (tags, run.explain())
    assert run.jobs == {
        "promote": "success",
        "resolve": "success",
        "deploy": "success",
        "publish": "success",
    }, run.explain()
    labels = [c["argv"] for c in run.calls["gh"] if c["argv"][:1] == ["api"]]
    assert labels == [
        [
            "api",
            f"repos/{OWNER_REPO}/commits/{sha}/pulls",
            "--jq",
            '"labels=" + ([.[0].labels[]?.name] | join(","))',
        ]
    ]
    image = f"ghcr.io/{OWNER_REPO}:v0.1.0"
    docker = [c["argv"] for c in run.calls["docker"]]
    assert docker[0][:2] == ["login", "ghcr.io"], docker
    build = next(a for a in docker if a[0] == "build")
    assert build[build.index("--tag") + 1] == image
    assert "MODEL_VERSION=v0.1.0" in build
    assert ["push", image] in docker
    created = [c["argv"] for c in run.calls["gh"] if c["argv"][:2] == ["release", "create"]]
    assert len(created) == 1, run.calls["gh"]
    assert created[0][2] == "flight-delay@v0.1.0"
    assert "--prerelease" in created[0]
    url = f"http://127.0.0.1:{act.deploy_port}/version"
    with urllib.request.urlopen(url, timeout=10) as answer:
        served = json.load(answer)
    assert "v0.1.0" in json.dumps(served), served
    assert act.stop_services()
    assert not listening(act.deploy_port)


def test_promote_worse_model_than_prod_creates_no_tag_and_says_why(
    act: Act, origin: Origin
) -> None:
    # prod holds main's model (registered and assigned by hand, as after an earlier release).
    origin.developer("gto", "register", "flight-delay", "HEAD", "--version", "v1.0.0")
    origin.developer("gto", "assign", "flight-delay", "--version", "v1.0.0", "--stage", "prod")
    origin.git("push", "--quiet", "origin", "--tags")
    before = origin.tags()
    # A merged change that makes the model worse: 5 boosting rounds, reproduced and pushed by
    # the developer (make repro; the pre-push hook's dvc push) before the merge lands on main.
    params = origin.work / "params.yaml"
    params.write_text(re.sub(r"(?m)^(  max_iter: )\d+", r"\g<1>5", params.read_text(), count=1))
    origin.use_remote(act.dvc_remote)
    origin.developer("flightdelay", "repro")
    origin.developer("dvc", "push", "--quiet")
    origin.git("add", "--all")
    origin.git("commit", "--quiet", "-m", "five boosting rounds")
    origin.git("push", "--quiet", "origin", "HEAD:main")
    sha = origin.head()
    act.gh_state.write_text(json.dumps({"pulls": [{"number": 4, "mergeCommitOid": sha}]}))

    run = act.run("push", "promote.yml", push_event(origin))

    assert run.jobs.get("promote") == "failure", run.explain()
    released = {job for job in ("resolve", "deploy", "publish") if run.jobs.get(job) == "success"}
    assert not released, run.explain()
    assert origin.tags() == before
    summary = act.summary.read_text()
    assert f"the promotion gate refused the model of `{sha[:12]}`" in summary, summary
    assert "No tag was created." in summary, summary
    assert "promote: refused, no tag created" in run.log, run.explain()
    assert not run.calls["docker"], run.calls["docker"]
