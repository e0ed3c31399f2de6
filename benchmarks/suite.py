"""Time the test suite before and after issue 15's test work, on this machine, in one run.

    python benchmarks/suite.py [--before REV] [--after REV] [--keep DIR [--setup-only]]

Issue 15 asks for the suite as it stood (everything but the workflow harness, ``tests/workflows``)
under 5 minutes wall on 2 cores, and ``make test-fast`` under 60 s without ``make data``. This
clones each revision into a temporary directory beside this checkout's ``../shared`` (the actions
the workflow tests would need; they are left out here), gives each clone its own venv and data
(``make venv data``, untimed: the pip cache and this checkout's DVC cache make it cheap), then
times, one after the other on the same machine:

1. ``before``: by default the revision before the session-scoped fixtures and pytest-xdist
   (549457b), its suite run the way its ``make test`` ran it (serially there; a later
   ``--before`` with pytest-xdist gets ``-n auto`` and its Makefile's ``--dist`` mode);
2. ``after``: HEAD's suite as its ``make test`` runs it (``pytest -n auto`` with the ``--dist``
   mode its Makefile names);
3. ``after``'s ``make test-fast`` in a clone with no ``data/``.

Each row prints the wall time, the tests passed/failed/skipped as pytest counted them, and the
load average before it started, since two shared cores make every wall time depend on what else
runs. A failing suite is printed as such, not hidden: its time still counts.
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

REPO = Path(__file__).resolve().parents[1]
OUTCOME = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected)")
BEFORE = "549457b"  # main just before the issue-15 test work (f0f5313..4b7da32, merged in f8d9996)
WORKFLOWS = "--ignore=tests/workflows"
DURATIONS = "--durations=40"  # the slowest tests, in each run's log (where the time goes)


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"`{' '.join(args)}` in {cwd} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return done.stdout


def clone(rev: str, where: Path, env: dict[str, str], data: bool) -> Path:
    """A clone of ``rev`` at ``where`` with its venv (and data/ unless ``data`` is false); one
    kept from an earlier ``--keep`` run at the same revision is reused."""
    if (where / ".git").is_dir():
        head = sh(["git", "rev-parse", "HEAD"], where, env).strip()
        if head != sh(["git", "rev-parse", f"{rev}^{{commit}}"], REPO, env).strip():
            sys.exit(f"{where} holds {head[:12]}, not {rev}: remove it or use another --keep")
    else:
        subprocess.run(["git", "clone", "-q", str(REPO), str(where)], check=True)
        subprocess.run(["git", "-C", str(where), "checkout", "-q", "-B", "main", rev], check=True)
    cache = REPO / ".dvc" / "cache"
    if cache.is_dir():  # this checkout's objects: `make data` then only links them
        sh(["git", "config", "-f", ".dvc/config.local", "cache.dir", str(cache)], where, env)
    sh(["make", "venv", "tools"] + (["data"] if data else []), where, env)
    return where


def suite_command(clone_dir: Path) -> list[str]:
    """The clone's suite the way its ``make test`` runs it: serially before pytest-xdist, else
    ``-n auto`` with the ``--dist`` mode its Makefile names (loadgroup, later loadscope)."""
    found = re.search(r"--dist (\w+)", (clone_dir / "Makefile").read_text())
    xdist = ["-n", "auto", "--dist", found.group(1)] if found else []
    return [".venv/bin/python", "-m", "pytest", "-q", *xdist, DURATIONS, WORKFLOWS]


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, int]:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.stdout + done.stderr, done.returncode


def counts(output: str) -> str:
    tail = output.strip().splitlines()[-1] if output.strip() else ""
    found = {
        kind.rstrip("s") if kind.startswith("error") else kind: int(n)
        for n, kind in OUTCOME.findall(tail)
    }
    return ", ".join(f"{n} {kind}" for kind, n in found.items()) or tail[:80]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"the earlier revision (default {BEFORE})")
    parser.add_argument("--after", default="HEAD", help="the later revision (default HEAD)")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    parser.add_argument(
        "--setup-only", action="store_true", help="make the clones (with --keep) and stop"
    )
    args = parser.parse_args(argv)
    if args.setup_only and args.keep is None:
        parser.error("--setup-only needs --keep (the clones would be deleted)")
    after = sh(["git", "rev-parse", "--short", args.after], REPO, dict(os.environ)).strip()
    before = sh(["git", "rev-parse", "--short", args.before], REPO, dict(os.environ)).strip()
    # Beside ../shared, as the clones CI makes: the workflow tests (left out) and hooks look there.
    work = args.keep or Path(tempfile.mkdtemp(prefix=".suite-bench-", dir=REPO.parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    rows: list[tuple[str, str, float, str, int, str]] = []
    try:
        print(f"setting up clones of {before} and {after} in {work} (untimed) ...", flush=True)
        old = clone(before, work / "before", env, data=True)
        new = clone(after, work / "after", env, data=True)
        bare = clone(after, work / "after-no-data", env, data=False)
        if args.setup_only:
            print(f"clones ready in {work}; time them with the same --keep")
            return 0
        runs = [
            ("before", before, old, suite_command(old)),
            ("after", after, new, suite_command(new)),
            ("after: make test-fast", after, bare, ["make", "test-fast"]),
        ]
        slowest = {**env, "PYTEST_ADDOPTS": DURATIONS}  # make test-fast's pytest lists them too
        for name, rev, where, command in runs:
            load = f"{os.getloadavg()[0]:.1f}"
            print(f"timing {name} ({rev}): {' '.join(command)}", flush=True)
            took, output, rc = timed(command, where, slowest if command[0] == "make" else env)
            log = name.replace(":", "").replace(" ", "-")  # before, after, after-make-test-fast
            (work / f"{log}-{rev}.log").write_text(output)
            rows.append((name, rev, took, counts(output), rc, load))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'run':<24} {'rev':<9} {'wall':>9}  {'rc':>2}  {'load':>4}  tests")
    for name, rev, took, tally, rc, load in rows:
        print(f"{name:<24} {rev:<9} {took / 60:6.2f} min  {rc:>2}  {load:>4}  {tally}")
    print(f"\n{os.cpu_count()} cores; tests/workflows left out of both suites ({WORKFLOWS}).")
    return 0 if all(rc == 0 for *_, rc, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
