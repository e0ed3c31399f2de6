"""git and GTO at the edge: the only module that runs ``git`` and ``gto``.

Git is the model registry. ``gto register`` creates an annotated tag ``flight-delay@vX.Y.Z`` on
the commit whose ``dvc.lock`` records the model; ``gto assign`` creates ``flight-delay#<stage>#N``
(N counts every assignment of the artifact, across stages). The newest assignment of a stage wins,
so a stage holds one version at a time. Every function here shells out to the same commands a
person would type, so the registry a test sees is the one ``gto show`` prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIRST_VERSION = "v0.1.0"  # what the first `gto register` creates


class GitOpsError(RuntimeError):
    """A git or gto command failed; the message holds the command and its output."""


def _program(name: str) -> str:
    """The venv's copy of a console script when there is one, else whatever PATH finds."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def run(program: str, *args: str, cwd: Path | None = None) -> str:
    """Run ``program args`` and return its stdout; raise GitOpsError naming the command."""
    argv = [_program(program), *args]
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise GitOpsError(f"`{program}` is not installed (run `make venv`)") from None
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).replace("❌ ", "")
        raise GitOpsError(f"`{program} {' '.join(args)}` failed: {output}")
    return done.stdout


def gto_json(*args: str, cwd: Path | None = None) -> Any:
    """``gto <args> --json`` parsed; an empty answer (unknown ref) is None."""
    out = run("gto", *args, "--json", cwd=cwd).strip()
    if not out:
        return None
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise GitOpsError(f"`gto {' '.join(args)} --json` printed no JSON: {out[:200]!r}") from None


def check_ref(ref: str, cwd: Path | None = None) -> dict[str, Any] | None:
    """What a GTO tag registers or assigns (``gto check-ref``), or None if it is not one."""
    found = gto_json("check-ref", ref, cwd=cwd)
    return found if isinstance(found, dict) and found else None


def history(name: str, cwd: Path | None = None) -> list[dict[str, Any]]:
    """Every registration and assignment of an artifact (``gto history``), newest first."""
    found = gto_json("history", name, cwd=cwd)
    return list(found) if isinstance(found, list) else []


def stages(name: str, cwd: Path | None = None) -> dict[str, str | None]:
    """{stage: version currently assigned, or None} for every allowed stage (``gto show``)."""
    found = gto_json("show", cwd=cwd) or {}
    return dict((found.get(name) or {}).get("stage") or {})


def latest_version(name: str, cwd: Path | None = None) -> str | None:
    """The greatest registered version of an artifact, or None before the first registration."""
    found = gto_json("show", cwd=cwd) or {}
    version = (found.get(name) or {}).get("version")
    return str(version) if version else None


def register(
    name: str, commit: str, bump: str | None, message: str, cwd: Path | None = None
) -> str:
    """Register ``commit`` as a new version and return it.

    ``bump`` (major, minor, patch) applies to the latest version; None registers FIRST_VERSION,
    which is only allowed before the first registration (GTO refuses to bump nothing).
    """
    versioning = ["--version", FIRST_VERSION] if bump is None else [f"--bump-{bump}"]
    run("gto", "register", name, commit, *versioning, "--message", message, cwd=cwd)
    version = latest_version(name, cwd)
    if version is None:
        raise GitOpsError(f"`gto register {name} {commit}` left no registered version")
    return version


def assign(
    name: str, version: str, stage: str, force: bool = False, cwd: Path | None = None
) -> str:
    """Assign ``stage`` to ``version``; return the tag created (``name#stage#N``)."""
    args = ["assign", name, "--version", version, "--stage", stage]
    run("gto", *args, *(["--force"] if force else []), cwd=cwd)
    current = [
        e for e in history(name, cwd) if e.get("event") == "assignment" and e.get("stage") == stage
    ]
    newest = max(current, key=assignment_order, default=None)
    if newest is None or newest.get("version") != version:
        raise GitOpsError(f"`gto assign` did not leave {name} {version} in {stage}")
    return str(newest["ref"])


def assignment_order(event: dict[str, Any]) -> tuple[str, int]:
    """Sort key of assignment events: time, then the tag's counter (same-second tags)."""
    ref = str(event.get("ref", ""))
    counter = ref.rsplit("#", 1)[-1]
    return str(event.get("timestamp", "")), int(counter) if counter.isdigit() else -1


def commit_of(ref: str, cwd: Path | None = None) -> str:
    """The full SHA of the commit a ref (tag, branch, SHA) points to."""
    try:
        return run("git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd).strip()
    except GitOpsError:
        raise GitOpsError(f"{ref!r} is not a commit, branch or tag of this repository") from None


def file_at(commit: str, path: str, cwd: Path | None = None) -> str | None:
    """A file's text as ``commit`` records it, or None when that commit has no such file."""
    done = subprocess.run(
        [_program("git"), "show", f"{commit}:{path}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def first_parent(commit: str, cwd: Path | None = None) -> str | None:
    """The first parent of ``commit`` (main before a merge), or None for a root commit."""
    done = subprocess.run(
        [_program("git"), "rev-parse", "--verify", "--quiet", f"{commit}^1^{{commit}}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def first_commit_recording(
    md5: str, rev: str = "HEAD", lock: str = "dvc.lock", cwd: Path | None = None
) -> str | None:
    """The oldest commit reachable from ``rev`` whose ``lock`` gained ``md5``: the commit a model
    with that DVC hash was trained at (a model no longer records the commit inside it)."""
    out = run("git", "log", "--format=%H", "--reverse", f"-S{md5}", rev, "--", lock, cwd=cwd)
    commits = out.split()
    return commits[0] if commits else None


def head_is_clean(paths: Sequence[str], cwd: Path | None = None) -> bool:
    """True when ``paths`` in the work tree are exactly what HEAD commits."""
    done = subprocess.run(
        [_program("git"), "diff", "--quiet", "HEAD", "--", *paths],
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def github_output(values: dict[str, str]) -> None:
    """Append ``key=value`` lines to $GITHUB_OUTPUT when running in GitHub Actions."""
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.writelines(f"{key}={value}\n" for key, value in values.items())


def step_summary(markdown: str) -> None:
    """Append to the job summary ($GITHUB_STEP_SUMMARY) when running in GitHub Actions."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip() + "\n")
