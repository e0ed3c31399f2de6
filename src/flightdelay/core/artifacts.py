"""The pipeline's outputs at a commit, through DVC: the model artifact (where it lives, its hash,
its exact bytes), any repository file at a revision, and dvc.lock (:class:`DvcLock`, read
through DVC's lock-file schema: the one place it is parsed).

The artifact is declared once, in ``dvc.yaml`` (``artifacts: flight-delay: path: ${paths.model}``);
its hash is what that commit's ``dvc.lock`` records for the stage output at that path. Files come
from the DVC cache or remote (``.dvc/config`` plus ``config.local``) without touching the work
tree, and are re-hashed here: a release ships only the bytes the commit recorded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightdelay.core.data import dir_md5
from flightdelay.core.io import DataFileError, md5_file


class ArtifactError(RuntimeError):
    """The artifact is undeclared, unrecorded, unavailable, or not the recorded bytes."""


@dataclass(frozen=True)
class Recorded:
    """An artifact as a commit records it."""

    name: str
    commit: str
    path: str  # relative to the repository root, e.g. outputs/model
    md5: str  # DVC's hash: ``<md5>.dir`` for a directory


def directory_md5(directory: Path) -> str:
    """The hash DVC 3 records for a directory (or plain md5 for a file)."""
    if directory.is_file():
        return md5_file(directory)
    files = {
        p.relative_to(directory).as_posix(): {"md5": md5_file(p)}
        for p in directory.rglob("*")
        if p.is_file()
    }
    return dir_md5(files)


def check_reproduced(path: str, produced: Path, lock: DvcLock, commit: str) -> None:
    """Raise ArtifactError unless ``produced`` (``path`` rebuilt at ``commit``) hashes as that
    commit's dvc.lock (``lock``) records: a rebuilt baseline must be the recorded one."""
    want = lock.outs().get(path)
    if want is None:
        raise ArtifactError(f"{path}: the dvc.lock of {commit[:12]} records no such output")
    got = directory_md5(produced)
    if got != want:
        raise ArtifactError(
            f"{path} reproduced at {commit[:12]} hashes {got}, but its dvc.lock records {want}: "
            "that commit's pipeline does not rebuild its own outputs; refusing a model that is "
            "not the recorded one"
        )


class At:
    """DVC's view of one commit, opened once (``with At(commit) as at:``): the artifacts it
    records, their bytes, its files. Each DVC Repo at a revision builds its index (~0.4 s); a
    release asks one commit four things (with its version card's inputs), so it opens it once."""

    def __init__(self, commit: str, repo: Path = Path(".")) -> None:
        self.commit, self.repo = commit, repo
        self._dvc: Any = None

    def __enter__(self) -> At:
        from dvc.exceptions import DvcException
        from dvc.repo import Repo

        try:
            self._dvc = Repo(str(self.repo), rev=self.commit)
        except DvcException as exc:
            raise ArtifactError(
                f"{self.commit[:12]}: DVC cannot read the pipeline: {exc}"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._dvc is not None:
            self._dvc.close()
            self._dvc = None

    @property
    def dvc(self) -> Any:
        assert self._dvc is not None, "use At(commit) as a context manager"
        return self._dvc

    def recorded(self, name: str) -> Recorded:
        """Path and hash of artifact ``name`` as the commit's dvc.yaml and dvc.lock record them."""
        from dvc.exceptions import DvcException

        commit = self.commit
        try:
            try:
                path = self.dvc.artifacts.get_path(name)
            except DvcException:
                raise ArtifactError(
                    f"{commit[:12]}: dvc.yaml declares no artifact {name!r} (artifacts: section)"
                ) from None
            hashes = [
                out.hash_info.value
                for stage in self.dvc.index.stages
                for out in stage.outs
                if out.def_path == path
            ]
        except DvcException as exc:
            raise ArtifactError(f"{commit[:12]}: DVC cannot read the pipeline: {exc}") from None
        if not hashes or not hashes[0]:
            raise ArtifactError(
                f"{commit[:12]}: dvc.lock records no hash for {path} (artifact {name!r}): "
                "the model was never reproduced and committed at that commit"
            )
        return Recorded(name, commit, path, str(hashes[0]))

    def download(self, artifact: Recorded, dest: Path) -> Path:
        """Download the artifact into ``dest`` (replaced), unchecked: call :func:`check_hash`
        next."""
        from dvc.exceptions import DvcException
        from dvc_data.index.index import DataIndexError  # a directory missing from cache and remote

        assert artifact.commit == self.commit, f"{artifact} is not of {self.commit}"
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.dvc.dvcfs.get(artifact.path, str(dest), recursive=True)
        except (DvcException, DataIndexError, OSError) as exc:
            raise ArtifactError(
                f"{artifact.path} at {artifact.commit[:12]} is neither in the DVC cache nor in "
                f"the remote (was `dvc push` run after `dvc repro`?): {exc}"
            ) from None
        return dest

    def materialise(self, artifact: Recorded, dest: Path) -> Path:
        """Download the artifact's recorded bytes into ``dest`` (replaced), verify their hash."""
        self.download(artifact, dest)
        check_hash(artifact, dest)
        return dest

    def files(self) -> RevisionFiles:
        """The commit's repository files, read through this view's DVC filesystem."""
        return RevisionFiles(self.commit, fs=self.dvc.dvcfs)

    def copy_files(self, paths: Sequence[str], dest: Path) -> tuple[list[str], list[str]]:
        """Copy each path (git- or DVC-tracked) as of the commit into ``dest``, flattened by
        name. Returns (attached file names, paths not found at the commit): a release's assets."""
        dest.mkdir(parents=True, exist_ok=True)
        attached, missing = [], []
        fs = self.dvc.dvcfs
        for path in paths:
            if not fs.exists(path):
                missing.append(path)
                continue
            files = [f for f in fs.find(path)] if fs.isdir(path) else [path]
            for file in files:
                name = Path(file).name
                fs.get(file, str(dest / name))
                attached.append(name)
        return sorted(set(attached)), missing


def recorded(name: str, commit: str, repo: Path = Path(".")) -> Recorded:
    """Path and hash of artifact ``name`` as ``commit``'s dvc.yaml and dvc.lock record them."""
    with At(commit, repo) as at:
        return at.recorded(name)


def materialise(artifact: Recorded, dest: Path, repo: Path = Path(".")) -> Path:
    """Download the artifact's recorded bytes into ``dest`` (replaced) and verify their hash."""
    with At(artifact.commit, repo) as at:
        return at.materialise(artifact, dest)


def copy_files_at(commit: str, paths: Sequence[str], dest: Path) -> tuple[list[str], list[str]]:
    """:meth:`At.copy_files` of ``commit`` in this repository."""
    with At(commit) as at:
        return at.copy_files(paths, dest)


def check_hash(artifact: Recorded, dest: Path) -> None:
    """Raise ArtifactError unless ``dest`` holds the bytes dvc.lock records for the artifact."""
    actual = directory_md5(dest)
    if actual != artifact.md5:
        raise ArtifactError(
            f"{dest}: hash {actual} differs from {artifact.md5}, which dvc.lock records for "
            f"{artifact.path} at {artifact.commit[:12]}; refusing to release other bytes"
        )


SIGNATURES_DIR = "signatures"


def _signature_location(repo: Path, name: str, md5: str) -> tuple[Any, str]:
    """(remote filesystem, path) of the signature of the model ``md5`` in the default remote."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo)) as dvc_repo:
            remote = dvc_repo.cloud.get_remote(command="push")
    except DvcException as exc:
        raise ArtifactError(f"no DVC remote for the model signature: {exc}") from None
    return remote.fs, remote.fs.join(remote.path, SIGNATURES_DIR, name, f"{md5}.sig")


def push_signature(signature: Path, name: str, md5: str, repo: Path = Path(".")) -> str:
    """Upload the signature of model ``md5`` to the default DVC remote; return where it went."""
    fs, path = _signature_location(repo, name, md5)
    try:
        fs.makedirs(fs.parent(path), exist_ok=True)
        fs.put_file(str(signature), path)
    except OSError as exc:
        raise ArtifactError(f"cannot upload the signature to {path}: {exc}") from None
    return str(path)


def fetch_signature(name: str, md5: str, dest: Path, repo: Path = Path(".")) -> str | None:
    """Download the signature of model ``md5`` into ``dest``; return its remote path, or None
    when the remote holds none (a model promoted before signing, or never approved)."""
    fs, path = _signature_location(repo, name, md5)
    dest.unlink(missing_ok=True)
    try:
        if not fs.exists(path):
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(dest))
    except OSError as exc:
        raise ArtifactError(f"cannot download the signature {path}: {exc}") from None
    return str(path)


def pipeline_changes(targets: list[str], repo: Path = Path(".")) -> dict[str, list[str]]:
    """``dvc status`` of ``targets`` and their upstream stages: {stage: what changed}, empty when
    the work tree holds exactly the outputs dvc.lock records for the current code and params."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo)) as dvc_repo:
            status = dvc_repo.status(targets=targets, with_deps=True)
    except DvcException as exc:
        raise ArtifactError(f"`dvc status {' '.join(targets)}` failed: {exc}") from None
    changes: dict[str, list[str]] = {}
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, dict):
                for kind, paths in entry.items():
                    what = (
                        ", ".join(f"{p} {s}" for p, s in paths.items())
                        if isinstance(paths, dict)
                        else str(paths)
                    )
                    changes.setdefault(stage.split(":")[-1], []).append(f"{kind}: {what}")
            else:
                changes.setdefault(stage.split(":")[-1], []).append(str(entry))
    return changes


# ---------------------------------------------------------------- files and hashes at a revision


class RevisionFiles:
    """Repository files of the work tree (``rev`` None), or of a git revision through DVC's
    filesystem: tracked outputs from the DVC cache or remote, the rest from git."""

    def __init__(self, rev: str | None, fs: Any = None) -> None:
        """``fs``: a DVC filesystem of ``rev`` already open (:meth:`At.files`), else one is."""
        self.rev = rev
        self._fs: Any = fs
        if rev is not None and fs is None:
            from dvc.api import DVCFileSystem

            try:
                self._fs = DVCFileSystem(url=".", rev=rev)
            except Exception as exc:  # DVC raises many types for a bad revision
                raise ArtifactError(f"cannot read revision {rev!r}: {exc}") from None

    def bytes(self, path: Path, what: str) -> bytes:
        if self._fs is None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                raise DataFileError(f"{path}: {what} not found (run `dvc repro`)") from None
        try:
            return bytes(self._fs.read_bytes(path.as_posix()))
        except FileNotFoundError:
            raise DataFileError(f"{path}: {what} not found at {self.rev}") from None
        except Exception as exc:  # not in the DVC cache nor on the remote
            raise DataFileError(
                f"{path} at {self.rev}: {what} cannot be read ({exc}); it is in neither the DVC "
                f"cache nor the remote: `dvc fetch --rev {self.rev}` where it was built"
            ) from None

    def json(self, path: Path, what: str) -> Any:
        try:
            return json.loads(self.bytes(path, what))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataFileError(f"{path}: {what} is not valid JSON: {exc}") from None

    def yaml(self, path: Path, what: str) -> Any:
        from flightdelay.core import yamltext

        try:
            return yamltext.load(self.bytes(path, what))
        except yamltext.Error as exc:
            raise DataFileError(f"{path}: {what} is not valid YAML: {exc}") from None

    def lock(self) -> DvcLock:
        """dvc.lock as of this revision (or the work tree)."""
        where = LOCK if self.rev is None else f"{LOCK} at {self.rev}"
        return DvcLock.parse(self.yaml(LOCK, "dvc.lock"), where)


LOCK = Path("dvc.lock")


@dataclass(frozen=True)
class LockStage:
    """One stage of dvc.lock: the md5 it records per output and per dependency path."""

    outs: Mapping[str, str]
    deps: Mapping[str, str]


@dataclass(frozen=True)
class DvcLock:
    """A dvc.lock, checked against DVC's own lock-file schema (``dvc.schema``) where it is read,
    so a missing ``stages``, a stage without ``cmd`` or a path that is not a string fails there,
    naming the file, instead of reading as "records nothing" downstream."""

    stages: Mapping[str, LockStage]

    @classmethod
    def parse(cls, raw: Any, source: str | Path) -> DvcLock:
        from dvc.schema import COMPILED_LOCKFILE_SCHEMA
        from voluptuous import Invalid

        try:
            lock = COMPILED_LOCKFILE_SCHEMA(raw)
        except Invalid as exc:
            raise ArtifactError(
                f"{source} is not a DVC lock file ({exc}): regenerate it with `dvc repro`"
            ) from None

        def hashes(entries: Any) -> dict[str, str]:
            return {str(e["path"]): str(e["md5"]) for e in entries or [] if "md5" in e}

        return cls(
            {
                name: LockStage(hashes(stage.get("outs")), hashes(stage.get("deps")))
                for name, stage in (lock.get("stages") or {}).items()
            }
        )

    def outs(self) -> dict[str, str]:
        """Path -> md5 of every stage output."""
        return {path: md5 for stage in self.stages.values() for path, md5 in stage.outs.items()}

    def deps(self) -> dict[str, str]:
        """Path -> md5 of every stage dependency (a path several stages read: one md5)."""
        return {path: md5 for stage in self.stages.values() for path, md5 in stage.deps.items()}


def read_lock(path: Path = LOCK) -> DvcLock:
    """The work tree's dvc.lock; ArtifactError says how to make it when it is missing or bad."""
    from flightdelay.core import yamltext

    try:
        raw = yamltext.load(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found: run `dvc repro` and commit it") from None
    except yamltext.Error as exc:
        raise ArtifactError(f"{path} is not valid YAML: {exc}") from None
    return DvcLock.parse(raw, path)
