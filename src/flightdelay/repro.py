"""``flightdelay repro [dvc repro args]``: ``dvc repro`` that, when it fails, leaves git's files
as it found them (``make run``, ``make repro`` and ``make validate`` call it).

A failed run is not a result, but DVC writes as it goes: it re-records a changed data/ in data.dvc
before running ``validate`` (a data source is "verified" by saving it, frozen or not: a failed
validation left data.dvc's hash rewritten and its manifest not), it deletes a stage's outputs
before running its command (a stage that fails leaves a committed metric or the model card
deleted), records each stage that succeeded in dvc.lock (a run that fails at ``card`` leaves
dvc.lock half-updated), and ``core.autostage`` stages what it wrote. So before the run, every file
git tracks that the pipeline may write is read: dvc.lock, the ``.dvc`` files, the ``.gitignore``
files DVC keeps beside outputs and the outputs with ``cache: false``, with their git index entries.
If ``dvc repro`` fails (or is interrupted), each is put back byte for byte, or removed if it did
not exist. Cached outputs are git-ignored: they stay, and DVC's run cache reuses them next time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flightdelay import gitops

LOCK_FILE = "dvc.lock"


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
            subprocess.run(
                ["git", "update-index", "--index-info"],
                cwd=snapshot.root,
                input=entries,
                text=True,
                capture_output=True,
                check=True,
            )
        added = [rel for rel in snapshot.files if rel not in snapshot.index]
        if added:
            gitops.run(
                "git", "rm", "--cached", "--quiet", "--ignore-unmatch", "--", *added,
                cwd=snapshot.root,
            )  # fmt: skip
    except (gitops.GitOpsError, subprocess.CalledProcessError, FileNotFoundError):
        pass  # not a git work tree
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    root = Path.cwd()
    snapshot = take(root, pipeline_files(root))
    code = 1
    try:
        code = subprocess.run([sys.executable, "-m", "dvc", "repro", *args], check=False).returncode
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
