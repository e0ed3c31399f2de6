"""``flightdelay repro``: the main job's pipeline step, for a reader of its log and unattended.

1. Check out every output ``dvc.lock`` records that the DVC cache or the default remote holds;
   the others are not an error (a fresh machine's remote holds none), they are rebuilt.
2. ``dvc repro``: runs the stages whose outputs are missing or whose inputs changed. Every output
   is a deterministic function of code, params and data, so rebuilding main's outputs gives the
   hashes main's dvc.lock records, and ``git status`` stays clean.
3. ``flightdelay report`` when the report stage was up to date but no report exists (a fresh
   clone): the report depends on git history (commits, main's and prod's models), so it is no
   hashed DVC output (dvc.yaml) and cannot be pulled.
4. With ``--push``, push what the run made to the default remote. Not by default: a pull
   request's job (pr-report.yml runs ``make repro``) may hold read-only credentials, and pushes
   nothing a merge has not accepted.

One line per step says what it did. DVC runs with stdin closed: no step of the main job can stop
at a ``[y/n]`` prompt (DVC asks one, when stdin is a terminal, for a directory output whose
cache is missing). Why not ``dvc repro --pull``: for each stage it pulls first and, on a remote
that lacks the output, prints the missing objects as ``WARNING`` lines and may prompt.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from flightdelay.gitops import _program


class ReproError(RuntimeError):
    """A DVC step of the main job failed; the message names the command."""


def dvc(*args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``dvc args`` with stdin closed (never a prompt); output streams unless ``quiet``."""
    return subprocess.run(
        [_program("dvc"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=quiet,
        text=True,
        check=False,
    )


def remote_url() -> str:
    """The default remote as ``name (url)``, or ``no default remote``."""
    name = dvc("remote", "default", quiet=True).stdout.strip()
    if not name:
        return "no default remote"
    for line in dvc("remote", "list", quiet=True).stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == name and len(fields) > 1:
            return f"{name} ({fields[1]})"
    return name


def missing_outputs() -> list[str]:
    """Outputs dvc.lock records that the work tree does not hold (as ``dvc status`` sees them)."""
    import json

    done = dvc("status", "--json", quiet=True)
    if done.returncode != 0:
        raise ReproError(f"`dvc status` failed: {(done.stderr or done.stdout).strip()}")
    missing = set()
    for entries in (json.loads(done.stdout or "{}") or {}).values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                for path, state in (entry.get("changed outs") or {}).items():
                    if state in ("deleted", "not in cache", "modified"):
                        missing.add(path)
    return sorted(missing)


def report_path() -> Path | None:
    """``${paths.report}/report.md`` when dvc.yaml has a report stage, else None."""
    import yaml

    from flightdelay.params import load_params

    stages = (yaml.safe_load(Path("dvc.yaml").read_text()) or {}).get("stages") or {}
    if "report" not in stages:
        return None
    return Path(load_params("params.yaml").paths.report) / "report.md"


def checkout_recorded(remote: str) -> str:
    """Step 1: pull what the cache or remote has; return the log line."""
    before = missing_outputs()
    if not before:
        return "outputs: the work tree holds every output dvc.lock records"
    # -q: the objects the remote lacks are the expected case here, not a warning to show.
    dvc("pull", "--allow-missing", "-q", quiet=True)
    after = missing_outputs()
    pulled = len(before) - len(after)
    line = f"outputs: {pulled} of {len(before)} missing outputs pulled from {remote}"
    return line + (f"; dvc repro rebuilds {len(after)}" if after else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flightdelay repro", description=__doc__)
    parser.add_argument("--push", action="store_true", help="push the outputs to the remote")
    args = parser.parse_args(argv)
    if not Path("dvc.yaml").is_file():
        print("error: no dvc.yaml here: run from the repository root", file=sys.stderr)
        return 1
    started = time.perf_counter()
    remote = remote_url()
    try:
        print(checkout_recorded(remote), flush=True)
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if dvc("repro").returncode != 0:
        print("error: `dvc repro` failed (its output is above)", file=sys.stderr)
        return 1
    report = report_path()
    if report is not None and not report.is_file():
        print(
            f"report: {report} missing (the stage's inputs are unchanged); writing it", flush=True
        )
        done = subprocess.run(
            [sys.executable, "-m", "flightdelay", "report"], stdin=subprocess.DEVNULL, check=False
        )
        if done.returncode != 0:
            print("error: `flightdelay report` failed (its output is above)", file=sys.stderr)
            return 1
    if not args.push:
        print(f"pipeline: up to date ({time.perf_counter() - started:.0f}s)")
        return 0
    pushed = dvc("push", "-q", quiet=True)
    if pushed.returncode != 0:
        print(
            f"error: the pipeline ran, but `dvc push` to {remote} failed: "
            f"{(pushed.stderr or pushed.stdout).strip()}",
            file=sys.stderr,
        )
        return 1
    elapsed = time.perf_counter() - started
    print(f"pipeline: up to date ({elapsed:.0f}s); outputs pushed to {remote}")
    return 0
