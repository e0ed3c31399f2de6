"""git and GTO at the edge: the only module that runs ``git`` and ``gto`` (and uses ``gto.api``).

Every failure is a :class:`GitOpsError` naming the command; callers translate it into their own
one-line message. A test (tests/core/test_gitops.py) greps ``src/`` for git run anywhere else.

Git is the model registry. ``gto register`` creates an annotated tag ``flight-delay@vX.Y.Z`` on
the commit whose ``dvc.lock`` records the model; ``gto assign`` creates ``flight-delay#<stage>#N``
(N counts every assignment of the artifact, across stages). The newest assignment of a stage wins,
so a stage holds one version at a time. GTO runs in process through ``gto.api``, the functions its
commands call, and answers in the shapes ``gto <command> --json`` prints (so the registry a test
sees is the one ``gto show`` prints): a ``gto`` process would cost an interpreter start and GTO's
imports (about half a second) on each of the half-dozen look-ups of one promotion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIRST_VERSION = "v0.1.0"  # what the first `gto register` creates


class GitOpsError(RuntimeError):
    """A git or gto command failed; the message holds the command and its output."""


def _program(name: str) -> str:
    """The venv's copy of a console script when there is one, else whatever PATH finds."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def run(program: str, *args: str, cwd: Path | str | None = None) -> str:
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


def git(*args: str, cwd: Path | str | None = None) -> str:
    """stdout of ``git args``; GitOpsError naming the command when it fails."""
    return run("git", *args, cwd=cwd)


def git_succeeds(*args: str, cwd: Path | str | None = None) -> bool:
    """Whether ``git args`` exits 0 (a question git answers with its exit code)."""
    try:
        done = subprocess.run(
            [_program("git"), *args], cwd=cwd, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise GitOpsError("`git` is not installed") from None
    return done.returncode == 0


def git_input(stdin: str, *args: str, cwd: Path | str | None = None) -> str:
    """``git args`` fed ``stdin`` (e.g. ``update-index --index-info``); GitOpsError on failure."""
    argv = [_program("git"), *args]
    try:
        done = subprocess.run(
            argv, cwd=cwd, input=stdin, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise GitOpsError("`git` is not installed") from None
    if done.returncode != 0:
        raise GitOpsError(f"`git {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def _gto(command: str, call: Callable[[], Any]) -> Any:
    """``call()`` (a ``gto.api`` call) as plain JSON data, the shape ``gto <command> --json``
    prints; a GTO refusal or failure is a GitOpsError naming the command, as its exit would be."""
    from gto.exceptions import GTOException
    from gto.utils import make_ready_to_serialize

    try:
        found = call()
    except GTOException as exc:
        raise GitOpsError(f"`gto {command}` failed: {exc}") from None
    except Exception as exc:  # what the gto command reports as "Unexpected error" and exit 1
        raise GitOpsError(f"`gto {command}` failed: {type(exc).__name__}: {exc}") from None
    return json.loads(json.dumps(make_ready_to_serialize(found)))


def _repo(cwd: Path | str | None) -> str:
    return str(cwd) if cwd is not None else "."


def check_ref(ref: str, cwd: Path | str | None = None) -> dict[str, Any] | None:
    """What a GTO tag registers or assigns (``gto check-ref``), or None if it is not one."""
    import gto.api

    events = _gto(
        f"check-ref {ref}",
        lambda: [
            event.dict_state(exclude={"priority", "addition"})
            for event in gto.api.check_ref(_repo(cwd), ref)
        ],
    )
    if len(events) > 1:
        raise GitOpsError(f"`gto check-ref {ref}` failed: the ref creates {len(events)} events")
    return events[0] if events and events[0] else None


def history(name: str, cwd: Path | str | None = None) -> list[dict[str, Any]]:
    """Every registration and assignment of an artifact (``gto history``), newest first."""
    import gto.api

    found = _gto(f"history {name}", lambda: gto.api.history(_repo(cwd), name, table=False))
    return list(found) if isinstance(found, list) else []


def _show(cwd: Path | str | None) -> dict[str, Any]:
    import gto.api

    found = _gto("show", lambda: gto.api.show(_repo(cwd), table=False))
    return found if isinstance(found, dict) else {}


def stages(name: str, cwd: Path | str | None = None) -> dict[str, str | None]:
    """{stage: version currently assigned, or None} for every allowed stage (``gto show``)."""
    return dict((_show(cwd).get(name) or {}).get("stage") or {})


def latest_version(name: str, cwd: Path | str | None = None) -> str | None:
    """The greatest registered version of an artifact, or None before the first registration."""
    version = (_show(cwd).get(name) or {}).get("version")
    return str(version) if version else None


def register(
    name: str, commit: str, bump: str | None, message: str, cwd: Path | str | None = None
) -> str:
    """Register ``commit`` as a new version and return it (``gto register``).

    ``bump`` (major, minor, patch) applies to the latest version; None registers FIRST_VERSION,
    which is only allowed before the first registration (GTO refuses to bump nothing).
    """
    import gto.api

    bumps = {f"bump_{bump}": True} if bump is not None else {"version": FIRST_VERSION}
    _gto(
        f"register {name} {commit}",
        lambda: gto.api.register(_repo(cwd), name, commit, message=message, simple=None, **bumps),
    )
    version = latest_version(name, cwd)
    if version is None:
        raise GitOpsError(f"`gto register {name} {commit}` left no registered version")
    return version


def assign(
    name: str, version: str, stage: str, force: bool = False, cwd: Path | str | None = None
) -> str:
    """Assign ``stage`` to ``version`` (``gto assign``); return the new tag ``name#stage#N``."""
    import gto.api

    wait_past_assignments(name, cwd)
    _gto(
        f"assign {name} --version {version} --stage {stage}",
        lambda: gto.api.assign(_repo(cwd), name, stage, version=version, simple=None, force=force),
    )
    current = [
        e for e in history(name, cwd) if e.get("event") == "assignment" and e.get("stage") == stage
    ]
    newest = max(current, key=assignment_order, default=None)
    if newest is None or newest.get("version") != version:
        raise GitOpsError(f"`gto assign` did not leave {name} {version} in {stage}")
    return str(newest["ref"])


def wait_past_assignments(name: str, cwd: Path | str | None = None) -> None:
    """Return once the clock's whole second is later than every assignment of ``name``.

    A tag's time has whole seconds and GTO decides what a stage holds by the assignments' times
    alone (a tie keeps GTO's own listing order), so an assignment made within the same second as
    an earlier one could lose to it: seen when a promotion and a rollback ran in one second.
    Waiting (at most a second, and only then) makes every assignment this module makes the
    newest by time, not by luck.
    """
    times = [
        datetime.fromisoformat(str(e["timestamp"]))
        for e in history(name, cwd)
        if e.get("event") == "assignment" and e.get("timestamp")
    ]
    due = max(times, default=None)
    if due is None:
        return
    due = (due if due.tzinfo else due.replace(tzinfo=UTC)) + timedelta(seconds=1)
    # A tag dated further ahead comes from a skewed clock that waiting cannot fix; assign's own
    # check then reports the stage it failed to move.
    while 0 < (left := (due - datetime.now(UTC)).total_seconds()) <= 1:
        time.sleep(left)


def assignment_order(event: dict[str, Any]) -> tuple[str, int]:
    """Sort key of assignment events: time, then the tag's counter (same-second tags)."""
    ref = str(event.get("ref", ""))
    counter = ref.rsplit("#", 1)[-1]
    return str(event.get("timestamp", "")), int(counter) if counter.isdigit() else -1


def commit_of(ref: str, cwd: Path | str | None = None) -> str:
    """The full SHA of the commit a ref (tag, branch, SHA) points to."""
    try:
        return run("git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd).strip()
    except GitOpsError:
        raise GitOpsError(f"{ref!r} is not a commit, branch or tag of this repository") from None


def resolve(ref: str, cwd: Path | str | None = None) -> str | None:
    """The commit of ``ref`` (a branch, tag or SHA; ``origin/<ref>`` when only the remote-tracking
    branch exists, as in a CI checkout), or None when neither exists."""
    for candidate in (ref, f"origin/{ref}", f"refs/remotes/origin/{ref}"):
        argv = [_program("git"), "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"]
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def head_description(cwd: Path | str | None = None) -> str:
    """HEAD's commit (with ``-dirty`` if tracked files changed), or ``unknown`` outside git."""
    try:
        head = git("rev-parse", "HEAD", cwd=cwd).strip()
        dirty = git("status", "--porcelain", "--untracked-files=no", cwd=cwd).strip()
    except GitOpsError:
        return "unknown"
    return f"{head}-dirty" if dirty else head


def prod_version(name: str, stage: str = "prod", cwd: Path | str = ".") -> tuple[str, str] | None:
    """(commit, version) of the version GTO says is in ``stage`` (tags ``<name>#<stage>#N``), or
    None when no version is (or was ever) assigned to it. Uses ``gto.api`` in process: the
    command would cost a second interpreter start on every report and monitor run."""
    from gto.api import find_versions_in_stage
    from gto.exceptions import ArtifactNotFound, GTOException

    if resolve("HEAD", cwd) is None:
        return None  # not a git repository, or no commit yet: no tag can exist
    try:
        found = find_versions_in_stage(str(cwd), name, stage)
    except ArtifactNotFound:
        return None  # no tag of the artifact at all
    except GTOException as exc:
        raise GitOpsError(f"gto cannot read the registry: {exc}") from None
    if not found:
        return None
    vstage = found[0] if isinstance(found, list) else found
    return str(vstage.commit_hexsha), str(vstage.version)


def worktree_add(path: Path, commit: str, cwd: Path) -> None:
    """A detached ``git worktree`` of ``commit`` at ``path``."""
    git("worktree", "add", "--detach", "--quiet", str(path), commit, cwd=cwd)


def worktree_remove(path: Path, cwd: Path) -> None:
    """Remove a worktree and prune its record; best effort (used in ``finally`` blocks)."""
    for args in (("worktree", "remove", "--force", str(path)), ("worktree", "prune")):
        subprocess.run([_program("git"), *args], cwd=cwd, capture_output=True, check=False)


def show_at(rev: str, path: str, cwd: Path | str | None = None) -> str:
    """A file's text at ``rev``; "" when ``rev`` has no such file; GitOpsError otherwise (a bad
    revision, not a repository)."""
    argv = [_program("git"), "show", f"{rev}:{path}"]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if "does not exist" in done.stderr or "exists on disk, but not in" in done.stderr:
            return ""
        raise GitOpsError(f"`git show {rev}:{path}` failed: {done.stderr.strip()}")
    return done.stdout


def file_at(commit: str, path: str, cwd: Path | str | None = None) -> str | None:
    """A file's text as ``commit`` records it, or None when that commit has no such file."""
    done = subprocess.run(
        [_program("git"), "show", f"{commit}:{path}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def first_parent(commit: str, cwd: Path | str | None = None) -> str | None:
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
    md5: str, rev: str = "HEAD", lock: str = "dvc.lock", cwd: Path | str | None = None
) -> str | None:
    """The oldest commit reachable from ``rev`` whose ``lock`` gained ``md5``: the commit a model
    with that DVC hash was trained at (a model no longer records the commit inside it)."""
    out = run("git", "log", "--format=%H", "--reverse", f"-S{md5}", rev, "--", lock, cwd=cwd)
    commits = out.split()
    return commits[0] if commits else None


def head_is_clean(paths: Sequence[str], cwd: Path | str | None = None) -> bool:
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
