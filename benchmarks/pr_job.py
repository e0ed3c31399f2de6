"""Time the pull-request job's commands (.github/workflows/pr-report.yml) from a fresh clone.

    python benchmarks/pr_job.py [--cache warm|cold|both] [--keep DIR]

Packages are cached (this venv, like setup-python's pip cache); everything else starts fresh:

1. setup, not timed: a clone of this repository's committed state plays ``main``: ``make data
   repro`` there, its dvc.lock committed and ``dvc push``-ed to a temporary DVC remote (what the
   main branch's runs leave behind);
2. a fresh clone of that ``main`` on a branch that changes a training parameter
   (``train.learning_rate``), the typical model pull request;
3. timed: the job's steps, each the make target the workflow runs (the Makefile's ``PR_JOB``):
   ``remote-from-env``, ``data``, ``repro`` (``flightdelay repro``: pull what exists, rebuild
   the rest), ``report`` (not a DVC stage: the verdict is computed every time) and
   ``report-summary``.

``--cache warm`` first copies main's DVC cache into the fresh clone, as the workflow's
actions/cache step restores it; ``cold`` starts with an empty cache, so the data and main's
outputs come from the DVC remote. Prints the wall time of each step and the total; the acceptance
target is under 90 s on 2 cores. Nothing outside a temporary directory is written.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
TARGET_SECONDS = 90.0
STAGE_TIME = re.compile(r"\(\d+(?:\.\d+)?\s?s\)$")
STEPS = ("remote-from-env", "data", "repro", "report", "report-summary")


def environment(clone: Path, workspace: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DVC_"))},
        "HOME": str(workspace / "home"),
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(clone / "src"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GITHUB_STEP_SUMMARY": str(workspace / "step-summary.md"),
        "GITHUB_BASE_REF": "main",
    }


def run(
    args: list[str], cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return done


def make(
    target: str, cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``make target`` with this venv, which make must never reinstall (``-o <stamp>``)."""
    return run(
        [
            "make",
            "--no-print-directory",
            f"VENV={VENV}",
            "-o",
            str(VENV / ".installed-dev"),
            target,
        ],
        cwd,
        env,
        check,
    )


def clone(source: Path, dest: Path, remote: Path, env: dict[str, str]) -> None:
    run(["git", "clone", "--quiet", str(source), str(dest)], source, env)
    name = run([sys.executable, "-m", "dvc", "config", "core.remote"], dest, env).stdout.strip()
    run(
        [sys.executable, "-m", "dvc", "remote", "modify", "--local", name, "url", str(remote)],
        dest,
        env,
    )


def prepare_main(workspace: Path) -> Path:
    """The ``main`` every pull request starts from: pipeline run, committed and pushed."""
    main = workspace / "main"
    env = environment(main, workspace)
    if (main / "dvc.lock").is_file():  # --keep DIR of an earlier run: its main is ready
        print(f"setup: reusing {main}")
        return main
    clone(REPO, main, workspace / "remote", env)
    started = time.perf_counter()
    make("data", main, env)
    make("repro", main, env)
    run(["git", "add", "dvc.lock"], main, env)
    run(["git", "commit", "--quiet", "-m", "pipeline run"], main, env)
    run([sys.executable, "-m", "dvc", "push", "--quiet"], main, env)
    print(
        f"setup: main's pipeline run and push took {time.perf_counter() - started:.1f} s "
        "(not timed below)"
    )
    return main


def pull_request(workspace: Path, main: Path, name: str, warm: bool) -> dict[str, float]:
    pr = workspace / name
    env = environment(pr, workspace)
    clone(main, pr, workspace / "remote", env)
    run(["git", "checkout", "--quiet", "-b", "pr"], pr, env)
    params = pr / "params.yaml"
    text = params.read_text()
    rate = float(yaml.safe_load(text)["train"]["learning_rate"])
    line = re.compile(rf"^(  learning_rate: ){re.escape(str(rate))}\b", re.MULTILINE)
    params.write_text(line.sub(rf"\g<1>{round(rate * 0.75, 4)}", text, count=1))
    run(["git", "commit", "--quiet", "-am", "a training parameter"], pr, env)
    if warm:  # actions/cache restores main's DVC cache
        shutil.copytree(main / ".dvc" / "cache", pr / ".dvc" / "cache", dirs_exist_ok=True)
    times: dict[str, float] = {}
    failed = False
    for step in STEPS:
        started = time.perf_counter()
        done = make(step, pr, env, check=step != "repro")
        times[step] = time.perf_counter() - started
        failed = failed or done.returncode != 0
        if step == "repro":  # each stage prints its own wall time last: "(12.3s)"
            for line in (done.stdout + done.stderr).splitlines():
                if STAGE_TIME.search(line) or "didn't change, skipping" in line:
                    print(
                        f"    {line[:60]}{' … ' if len(line) > 75 else ''}{line[-15:]}"
                        if len(line) > 75
                        else f"    {line}"
                    )
    verdict = next(
        (
            line
            for line in (pr / "outputs" / "report" / "report.md").read_text().splitlines()
            if line.startswith(("✅", "❌"))
        ),
        "(no verdict)",
    )
    print(f"  verdict: {verdict[:110]}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", choices=("warm", "cold", "both"), default="both")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    workspace = Path(args.keep or tempfile.mkdtemp(prefix="flightdelay-pr-job-"))
    (workspace / "home").mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; work in {workspace}")
    try:
        main_repo = prepare_main(workspace)
        scenarios = ("warm", "cold") if args.cache == "both" else (args.cache,)
        worst = 0.0
        for scenario in scenarios:
            print(f"pull request, {scenario} DVC cache:")
            times = pull_request(workspace, main_repo, f"pr-{scenario}", scenario == "warm")
            for step, seconds in times.items():
                print(f"  make {step:<16} {seconds:6.1f} s")
            total = sum(times.values())
            worst = max(worst, total)
            print(
                f"  {'total':<21} {total:6.1f} s  (target < {TARGET_SECONDS:.0f} s: "
                f"{'met' if total < TARGET_SECONDS else 'MISSED'})"
            )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        return 0 if worst < TARGET_SECONDS else 1
    finally:
        if args.keep is None:
            shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
