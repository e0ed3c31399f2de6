"""``flightdelay repro [--push] [stage ...]``: the main job's pipeline step, unattended, and a
failed run leaves git's files as it found them (``make run``, ``make repro`` and ``make validate``
call it).

1. Check out every output ``dvc.lock`` records that the DVC cache or the default remote holds;
   the others are not an error (a fresh machine's remote holds none): ``dvc repro`` rebuilds
   them. Every output is a deterministic function of code, params and data, so rebuilding main's
   outputs gives the hashes main's dvc.lock records, and ``git status`` stays clean.
2. ``dvc repro [stage ...]``: runs the stages whose outputs are missing or whose inputs changed.
3. With ``--push``, push what the run made to the default remote. Not by default: a pull
   request's job (pr-report.yml runs ``make repro``) may hold read-only credentials, and pushes
   nothing a merge has not accepted.

DVC runs with stdin closed: no step of the main job can stop at a ``[y/n]`` prompt (DVC asks one,
when stdin is a terminal, for a directory output whose cache is missing). Why not ``dvc repro
--pull``: for each stage it pulls first and, on a remote that lacks the output, prints the
missing objects as ``WARNING`` lines and may prompt.

A failed run is not a result, but DVC writes as it goes: it re-records a changed data/ in data.dvc
before running ``validate`` (a failed validation left data.dvc's hash rewritten and its manifest
not), it deletes a stage's outputs before running its command (a stage that fails leaves a
committed metric or the model card deleted), records each stage that succeeded in dvc.lock, and
``core.autostage`` stages what it wrote. So before step 2, every file git tracks that the pipeline
may write is read: dvc.lock, the ``.dvc`` files, the ``.gitignore`` files DVC keeps beside outputs
and the outputs with ``cache: false``, with their git index entries. If ``dvc repro`` fails (or is
interrupted), each is put back byte for byte, or removed if it did not exist. Cached outputs are
git-ignored: they stay, and DVC's run cache reuses them next time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flightdelay.core import gitops

LOCK_FILE = "dvc.lock"


class ReproError(RuntimeError):
    """A DVC step of the main job failed; the message names the command."""


# ---------------------------------------------------------------- DVC, never interactive


def dvc(*args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``dvc args`` with stdin closed (never a prompt); output streams unless ``quiet``."""
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
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


# ---------------------------------------------------------------- put git's files back on failure


@dataclass(frozen=True)
class Snapshot:
    """The bytes (None: absent) and git index entries of the files a run may write."""

    root: Path
    files: dict[str, bytes | None]  # path relative to root -> content
    index: dict[str, str]  # path -> its `git ls-files -s` line ("mode sha stage\tpath")

    def changed(self) -> list[str]:
        return [rel for rel, content in self.files.items() if _read(self.root / rel) != content]


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def pipeline_files(root: Path) -> list[str]:
    """Files (relative to ``root``) that git tracks and ``dvc repro`` may write or delete."""
    from dvc.repo import Repo

    paths = {LOCK_FILE}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            paths.add(Path(stage.path).relative_to(root).as_posix())
            for out in stage.outs:
                path = Path(out.fs_path).relative_to(root)
                if out.use_cache:
                    paths.add((path.parent / ".gitignore").as_posix())
                elif (root / path).is_dir():
                    paths.update(p.relative_to(root).as_posix() for p in (root / path).rglob("*"))
                else:
                    paths.add(path.as_posix())
    return sorted(p for p in paths if not (root / p).is_dir())


def take(root: Path, paths: Sequence[str]) -> Snapshot:
    try:
        listed = gitops.run("git", "ls-files", "--stage", "-z", "--", *paths, cwd=root)
    except gitops.GitOpsError:  # not a git work tree: only the files can be restored
        listed = ""
    index = {line.split("\t", 1)[1]: line for line in listed.split("\0") if line}
    return Snapshot(root, {rel: _read(root / rel) for rel in paths}, index)


def restore(snapshot: Snapshot) -> list[str]:
    """Put back every file and index entry of ``snapshot``; the paths whose bytes differed."""
    changed = snapshot.changed()
    for rel in changed:
        path, content = snapshot.root / rel, snapshot.files[rel]
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    try:
        if snapshot.index:
            entries = "".join(f"{line}\n" for line in snapshot.index.values())
            gitops.git_input(entries, "update-index", "--index-info", cwd=snapshot.root)
        added = [rel for rel in snapshot.files if rel not in snapshot.index]
        if added:
            gitops.run(
                "git", "rm", "--cached", "--quiet", "--ignore-unmatch", "--", *added,
                cwd=snapshot.root,
            )  # fmt: skip
    except gitops.GitOpsError:
        pass  # not a git work tree
    return changed


def run_restoring(root: Path, targets: Sequence[str]) -> int:
    """Step 2: ``dvc repro targets``; when it fails, git's files are put back and listed."""
    snapshot = take(root, pipeline_files(root))
    code = 1
    try:
        code = dvc("repro", *targets).returncode
    finally:
        if code != 0:
            restored = restore(snapshot)
            listed = "".join(f"\n  {rel}" for rel in restored)
            print(
                f"dvc repro failed: {len(restored)} file(s) git tracks put back as they were "
                f"before the run{':' if restored else ''}{listed}",
                file=sys.stderr,
            )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay repro", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--push", action="store_true", help="push the outputs to the remote")
    parser.add_argument("targets", nargs="*", help="stages to reproduce (default: all)")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if not (root / "dvc.yaml").is_file():
        print("error: no dvc.yaml here: run from the repository root", file=sys.stderr)
        return 1
    started = time.perf_counter()
    remote = remote_url()
    try:
        print(checkout_recorded(remote), flush=True)
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    code = run_restoring(root, args.targets)
    if code != 0:
        return code
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
