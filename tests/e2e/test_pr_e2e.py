"""End to end, without GitHub: the pull-request job's commands on a clone of this repository.

A clone of the committed state with a temporary DVC remote, HOME and MLflow store runs the whole
pipeline on ``main`` (with test_loop_e2e's fast training config) and commits its dvc.lock (what
merging a pipeline run does). Then each pull request runs ``make pr-job``, exactly the steps of
.github/workflows/pr-report.yml (data, repro, report, report-summary; the report also after a
failed repro):

- a branch that changes a training parameter gets a report with the parameter's diff and metric
  deltas with their intervals against main;
- a branch that adds a corrupt batch fails the pipeline at validation and gets a report that says
  it would not be promoted and names the broken expectation.

The clone runs its own committed code (PYTHONPATH=<clone>/src) with this venv's tools; ``make``
is told the venv is up to date (``-o <stamp>``) so it never reinstalls into it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dvc_store import shared_run
from params_edit import FAST, edit_params
from signing_keys import KeyPair

pytestmark = pytest.mark.slow

VENV = Path(sys.executable).parent.parent


class Clone:
    def __init__(self, repo_root: Path, workspace: Path) -> None:
        self.path = workspace / "clone"
        home = workspace / "home"
        home.mkdir()
        self.summary = workspace / "step-summary.md"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DVC_"))},
            "HOME": str(home),
            "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(self.path / "src"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}",
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "e2e",
            "GIT_AUTHOR_EMAIL": "e2e@example.com",
            "GIT_COMMITTER_NAME": "e2e",
            "GIT_COMMITTER_EMAIL": "e2e@example.com",
            "GITHUB_STEP_SUMMARY": str(self.summary),
        }
        self.run("git", "clone", "--quiet", str(repo_root), str(self.path), cwd=repo_root)
        remote = self.run(sys.executable, "-m", "dvc", "config", "core.remote").stdout.strip()
        self.run(
            sys.executable,
            "-m",
            "dvc",
            "remote",
            "modify",
            "--local",
            remote,
            "url",
            str(workspace / "remote"),
        )

    def run(
        self, *args: str, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args, cwd=cwd or self.path, env=self.env, capture_output=True, text=True, check=False
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def make(
        self, target: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``make <target>`` as the workflow runs it, with this venv (never reinstalled)."""
        return self.run(
            "make",
            "--no-print-directory",
            f"VENV={VENV}",
            "-o",
            str(VENV / ".installed-dev"),
            target,
            *extra,
            check=check,
        )

    def pr_job(self) -> subprocess.CompletedProcess[str]:
        """`make pr-job`: the steps of pr-report.yml, in order (tests/repo/test_workflows.py holds
        the two equal); fails with repro's status after writing the report."""
        self.summary.write_text("")
        return self.make("pr-job", check=False)

    def report(self) -> str:
        return (self.path / "outputs" / "report" / "report.md").read_text()

    def checkout(self, *args: str) -> None:
        """A CI job's clean checkout: ``git checkout --force`` resets what git tracks, and data/
        (git-ignored, DVC-tracked) is put back to the checked-out data.dvc, so a batch another
        test added on its branch is not left behind as a stray file."""
        self.run("git", "checkout", "--quiet", "--force", *args)
        self.make("data", "FORCE=1")


@pytest.fixture(scope="module")
def clone(
    repo_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
    keys: dict[str, KeyPair],
    dvc_store: Path,
) -> Clone:
    """The clone after `make data repro` on main and a commit of its dvc.lock. Promotions sign
    what they approve (no signer, no promotion): with the tests' "promotion" key pair. The run
    reuses what another clone of the session built of main (tests/dvc_store.py); its remote holds
    the data either way (rebuilt and pushed, or pushed here), not main's pipeline outputs."""
    c = Clone(repo_root, tmp_path_factory.mktemp("pr-e2e"))
    c.run("git", "checkout", "--quiet", "-B", "main")  # this tree's HEAD, whatever its branch
    c.env["FLIGHTDELAY_SIGNING_KEY"] = str(keys["promotion"].private)
    # main trains with the fast config (every branch below then retrains cheaply); the real
    # config's run is test_fresh_clone's and test_monitor's. Its own shared_run job, shared with
    # test_loop_e2e's main (the same stage params): never a run-cache hit for a clone of the
    # committed config.
    edit_params(c.path / "params.yaml", FAST)
    c.run("git", "commit", "--quiet", "-am", "fast training config")
    with shared_run(dvc_store, c.path, "main-fast"):
        c.make("data")
        c.make("repro")
    c.run(sys.executable, "-m", "dvc", "push", "--quiet", "data.dvc")
    # Everything the run changed that git tracks: dvc.lock, the model card, metrics and plots.
    c.run("git", "add", "--all")
    # --allow-empty: the run reproduces the committed outputs bit for bit when they are fresh.
    c.run("git", "commit", "--quiet", "--allow-empty", "-m", "pipeline run on main")
    return c


def fewer_rounds(params: Path) -> tuple[int, int]:
    """(main's train.max_iter, a branch's): fewer boosting rounds, a real change and a faster
    branch; the params test's change, which the stale-verdict test repeats."""
    before = int(yaml.safe_load(params.read_text())["train"]["max_iter"])
    return before, max(before // 2, 20)


def test_pr_job_params_change_reports_the_diff_and_deltas_with_intervals(clone: Clone) -> None:
    clone.checkout("-B", "pr-params", "main")
    params = clone.path / "params.yaml"
    text = params.read_text()
    before, after = fewer_rounds(params)
    line = re.compile(rf"^(  max_iter: ){before}\b", re.MULTILINE)
    assert len(line.findall(text)) == 1
    params.write_text(line.sub(rf"\g<1>{after}", text))
    clone.run("git", "commit", "--quiet", "-am", "fewer boosting rounds")

    repro = clone.pr_job()

    assert repro.returncode == 0, repro.stderr
    assert "Running stage 'train'" in repro.stdout
    assert "Stage 'validate' didn't change, skipping" in repro.stdout
    report = clone.report()
    assert report.startswith("## flight-delay report\n\n")
    assert "### Parameters changed" in report
    assert f"| `train.max_iter` | `{before}` | `{after}` |" in report
    assert "train.learning_rate" not in report  # only changed keys
    roc = next(line for line in report.splitlines() if line.startswith("| **ROC AUC ↑** |"))
    cells = [c.strip() for c in roc.strip("|").split("|")]
    assert cells[3].count("…") == 1, roc  # delta, mark, <sub>low … high</sub>
    assert any(mark in cells[3] for mark in "⚪🟢🔴"), roc
    assert "paired bootstrap" in report
    assert "main's model: DVC cache or remote" in report or "main's model: cached" in report
    assert clone.summary.read_text().startswith("## flight-delay report")
    assert (clone.path / "outputs" / "report" / "report.html").is_file()
    assert (clone.path / "outputs" / "report" / "img" / "evaluation-curves.png").is_file()


def test_pr_job_corrupt_batch_fails_and_the_report_names_the_expectation(clone: Clone) -> None:
    clone.checkout("-B", "pr-corrupt", "main")
    clone.make("add-month", "MONTH=2013-10")
    batch = clone.path / "data" / "flights" / "2013-10.csv"
    lines = batch.read_text().splitlines(keepends=True)
    corrupt = [ln.replace(",UA,", ",ZZ,", 1) if 0 < i <= 50 else ln for i, ln in enumerate(lines)]
    assert corrupt != lines
    batch.write_text("".join(corrupt))
    # Record the corrupt batch as a pull request would (manifest + dvc add), then commit.
    clone.run(
        sys.executable,
        "-c",
        "from pathlib import Path; from flightdelay.core.data import "
        "write_manifest; write_manifest(Path('data'))",
    )
    clone.run(sys.executable, "-m", "dvc", "add", "--quiet", "data")
    clone.run("git", "add", "data.dvc")
    clone.run("git", "commit", "--quiet", "-m", "add October (corrupt)")

    repro = clone.pr_job()

    assert repro.returncode != 0
    assert "validation FAILED" in repro.stderr
    report = clone.report()
    verdict = report.splitlines()[2]
    assert verdict.startswith("❌ **Would not be promoted if merged**: data validation failed")
    assert "expect_column_values_to_be_in_set column=carrier in 2013-10" in verdict
    assert "### Data validation\n\n❌ **failed**" in report
    assert "| `flights/2013-10.csv` | added |" in report
    assert "### Metrics" not in report  # stale model outputs are not shown
    assert "ZZ" in report  # the offending values
    assert clone.summary.read_text().splitlines()[2] == verdict


def test_compare_without_main_model_in_cache_or_remote_reproduces_it_in_a_worktree(
    clone: Clone, tmp_path: Path
) -> None:
    """A fork's job has no DVC cache of main and no remote with main's outputs: the baseline is
    reproduced at main's commit in a temporary git worktree, leaving the work tree alone."""
    other = Clone(clone.path, tmp_path)  # a fresh clone of the e2e repository: an empty cache
    remote = clone.run(sys.executable, "-m", "dvc", "config", "core.remote").stdout.strip()
    data_remote = clone.run(sys.executable, "-m", "dvc", "config", f"remote.{remote}.url")
    other.run(
        sys.executable,
        "-m",
        "dvc",
        "remote",
        "modify",
        "--local",
        remote,
        "url",
        data_remote.stdout.strip(),
    )  # holds the data, not main's pipeline outputs
    other.run("git", "checkout", "--quiet", "main")
    other.make("data")
    status_before = other.run("git", "status", "--porcelain").stdout

    done = other.run(
        sys.executable,
        "-c",
        "from flightdelay.core.revisions import materialise, resolve; "
        "print(materialise(resolve('main')).source)",
    )

    assert done.stdout.strip() == "reproduced in a git worktree"
    main_commit = other.run("git", "rev-parse", "main").stdout.strip()
    baseline = other.path / ".dvc" / "tmp" / "flightdelay" / "baselines" / main_commit
    assert (baseline / "model" / "model.json").is_file()
    assert other.run("git", "status", "--porcelain").stdout == status_before
    assert len(other.run("git", "worktree", "list").stdout.splitlines()) == 1


# ------------------------------------------------ a verdict reviewers can trust (issue 11)
# These run last: they promote main and assign it prod (GTO tags in the clone), as promote.yml
# and a person do, and each resets main to where it was.

WORSE_AND_LOOSER = {
    "train": {"max_iter": 1},  # nearly no model
    "gate": {"min_metric": 0.5, "max_drop": 1.0, "slice_min_metric": 0.0, "slice_max_drop": 1.0},
}


def tags(clone: Clone) -> set[str]:
    return set(clone.run("git", "tag", "--list").stdout.split())


def ensure_prod(clone: Clone) -> None:
    """main promoted (promote.yml: make promote) and v0.1.0 assigned prod (make promote-prod)."""
    if any("#prod#" in t for t in tags(clone)):
        return
    clone.checkout("main")
    clone.make("repro")  # main's outputs back in the work tree (from the cache)
    clone.make("promote")
    clone.make("promote-prod", "VERSION=v0.1.0")
    assert "flight-delay#prod#2" in tags(clone)


def merge_and_promote(clone: Clone, branch: str) -> subprocess.CompletedProcess[str]:
    """GitHub merges the branch into main (a merge commit); promote.yml runs `make promote`.
    main is reset to where it was afterwards."""
    clone.checkout("main")
    before = clone.run("git", "rev-parse", "HEAD").stdout.strip()
    clone.run("git", "merge", "--quiet", "--no-ff", "-m", f"Merge {branch}", branch)
    try:
        return clone.make("promote", check=False)
    finally:
        clone.run("git", "reset", "--quiet", "--hard", before)


def test_pr_job_after_main_went_to_prod_compares_with_prod_not_a_stale_verdict(
    clone: Clone,
) -> None:
    """Finding 1: a PR reported, then main promoted and assigned prod, then the PR job again."""
    assert not any("#prod#" in t for t in tags(clone)), "this test needs a clone without prod"
    clone.checkout("-B", "pr-stale", "main")
    # The branch's training is not what this test is about: the params test's change, so DVC's
    # run cache has its run when that test ran first.
    edit_params(
        clone.path / "params.yaml",
        {"train": {"max_iter": fewer_rounds(clone.path / "params.yaml")[1]}},
    )
    clone.run("git", "commit", "--quiet", "-am", "fewer boosting rounds")
    assert clone.pr_job().returncode == 0
    assert "no champion (no version was ever assigned prod)" in clone.report()

    ensure_prod(clone)
    clone.checkout("pr-stale")
    repro = clone.pr_job()

    assert repro.returncode == 0, repro.stderr
    report = clone.report()
    assert "no champion" not in report
    assert "against prod (flight-delay@v0.1.0)" in report
    assert "ROC AUC vs prod (flight-delay@v0.1.0)" in report


def test_pr_that_loosens_the_gate_is_judged_by_main_s_rule_in_report_and_promote(
    clone: Clone,
) -> None:
    """Finding 2: one commit sets train.max_iter 1 and loosens gate: (thresholds it would pass)."""
    ensure_prod(clone)
    clone.checkout("-B", "pr-loosen", "main")
    edit_params(clone.path / "params.yaml", WORSE_AND_LOOSER)
    clone.run("git", "commit", "--quiet", "-am", "one boosting round, and a gate it passes")

    repro = clone.pr_job()

    assert repro.returncode == 0, repro.stderr
    report = clone.report()
    assert report.splitlines()[2].startswith("❌ **Would not be promoted if merged**")
    assert (
        "changes the rule it is judged by (`gate.max_drop`, `gate.min_metric`, "
        "`gate.slice_max_drop`, `gate.slice_min_metric`): judged by main's rule; the new rule "
        "applies from the next PR" in report
    )
    assert "```diff\n- gate.max_drop: 0.005\n+ gate.max_drop: 1.0\n" in report
    clone.run("git", "add", "--all")  # the branch records its run (dvc.lock, card, metrics)
    clone.run("git", "commit", "--quiet", "-m", "pipeline run")

    before = tags(clone)
    promoted = merge_and_promote(clone, "pr-loosen")

    assert promoted.returncode != 0
    assert "refused, no tag created" in promoted.stderr
    assert "lower bound above" not in promoted.stderr  # judged with max_drop 0.005, not 1
    assert tags(clone) == before


def test_forged_outputs_are_refused_by_promote(clone: Clone, tmp_path: Path) -> None:
    """Finding 3: the champion's evaluate/slices/predictions copied over a worse model, recorded
    with `dvc commit -f` and committed."""
    ensure_prod(clone)
    clone.checkout("-B", "pr-forged", "main")
    clone.make("repro")  # main's (the champion's) outputs in the work tree
    forged = ["outputs/metrics/evaluate.json", "outputs/metrics/slices.json"]
    forged.append("outputs/predictions.parquet")
    for path in forged:
        (tmp_path / Path(path).name).write_bytes((clone.path / path).read_bytes())
    edit_params(clone.path / "params.yaml", {"train": {"max_iter": 1}})
    clone.make("repro")
    for path in forged:
        (clone.path / path).write_bytes((tmp_path / Path(path).name).read_bytes())
    clone.run(sys.executable, "-m", "dvc", "commit", "--force", "--quiet")
    clone.run("git", "add", "--all")
    clone.run("git", "commit", "--quiet", "-m", "one boosting round (with the champion's metrics)")
    main_metrics = clone.run("git", "show", "main:outputs/metrics/evaluate.json").stdout
    assert (clone.path / forged[0]).read_text() == main_metrics  # the forgery is committed
    assert clone.run(sys.executable, "-m", "dvc", "status", "--quiet", check=False).returncode == 0

    before = tags(clone)
    promoted = merge_and_promote(clone, "pr-forged")

    assert promoted.returncode != 0
    assert "refused, no tag created" in promoted.stderr
    assert "+0.0000 (95% CI +0.0000 … +0.0000)" not in promoted.stderr + promoted.stdout
    assert "the interval reaches below" in promoted.stderr
    assert tags(clone) == before
