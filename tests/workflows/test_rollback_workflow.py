"""rollback.yml (workflow_dispatch) and the release.yml it calls, under act.

README, "Promotion, release and rollback": prod is re-assigned to the version it held before the
current one (from `gto history`), as a new tag; the release workflow redeploys it.

The history is made by hand before the event, as earlier promotions left it: v1.0.0 on main's
commit, then v1.1.0 on a later commit (a docs change: the same model), each assigned to prod in
turn, and the model's signature in the DVC remote (what the promotion stored).
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from act_harness import OWNER_REPO, Act, Origin, git, listening

pytestmark = pytest.mark.slow

SIGN = (
    "from pathlib import Path; from flightdelay.core.artifacts import directory_md5; "
    "from flightdelay.loop.promote import sign_approved; "
    "m = Path('outputs/model'); sign_approved(m, directory_md5(m))"
)


def test_rollback_reassigns_prod_to_the_previous_version_and_redeploys_it(
    act: Act, origin: Origin
) -> None:
    first = origin.head()
    origin.use_remote(act.dvc_remote)
    origin.developer("dvc", "pull", "--quiet")
    origin.developer("python", "-c", SIGN, env=act.signing.job_env())
    origin.developer("gto", "register", "flight-delay", "HEAD", "--version", "v1.0.0")
    origin.developer("gto", "assign", "flight-delay", "--version", "v1.0.0", "--stage", "prod")
    (origin.work / "README.md").write_text((origin.work / "README.md").read_text() + "\n")
    origin.git("commit", "--quiet", "-am", "a docs change")
    origin.developer("gto", "register", "flight-delay", "HEAD", "--version", "v1.1.0")
    origin.developer("gto", "assign", "flight-delay", "--version", "v1.1.0", "--stage", "prod")
    origin.git("push", "--quiet", "origin", "HEAD:main", "--tags")
    assert "flight-delay#prod#2" in origin.tags()

    run = act.run(
        "workflow_dispatch",
        "rollback.yml",
        {"repository": {"full_name": OWNER_REPO, "default_branch": "main"}},
    )

    assert run.jobs == {
        "rollback": "success",
        "resolve": "success",
        "deploy": "success",
        "publish": "success",
    }, run.explain()
    tags = origin.tags()
    assert "flight-delay#prod#3" in tags, tags
    assert git(origin.bare, "rev-parse", "flight-delay#prod#3^{commit}") == first
    image = f"ghcr.io/{OWNER_REPO}:v1.0.0"
    docker = [c["argv"] for c in run.calls["docker"]]
    assert ["push", image] in docker, docker
    created = [c["argv"] for c in run.calls["gh"] if c["argv"][:2] == ["release", "create"]]
    assert len(created) == 1, run.calls["gh"]
    assert created[0][2] == "flight-delay@v1.0.0"
    assert "--latest" in created[0]
    assert "--prerelease" not in created[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{act.deploy_port}/version", timeout=10) as r:
        served = json.load(r)
    assert "v1.0.0" in json.dumps(served), served
    assert act.stop_services()
    assert not listening(act.deploy_port)
