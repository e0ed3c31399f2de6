"""What was at revision X: commits of refs, files at a commit, the version GTO puts in prod, and the
model directory of another commit, got without touching the work tree.

:func:`materialise` gets the model directory (``paths.model``) of another commit: from the DVC
cache or remote at that revision (``DVCFileSystem``), else by reproducing ``train`` at that commit
in a temporary ``git worktree`` that shares the DVC cache (so DVC's run cache makes a repeat
instant). Materialised models are kept under ``.dvc/tmp/flightdelay/baselines/<commit>/`` and
verified (sha256) every time they are loaded. git and GTO are run by :mod:`flightdelay.core.gitops`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightdelay import MODEL_NAME
from flightdelay.core import gitops

if TYPE_CHECKING:
    from flightdelay.core import artifacts

BASELINE_CACHE = Path(".dvc/tmp/flightdelay/baselines")
PROD_STAGE = "prod"


class RevisionError(RuntimeError):
    """A revision, or the model it records, cannot be found or materialised (the message: why)."""


# ---------------------------------------------------------------- I/O edge: git refs


def resolve(ref: str, cwd: Path | str = ".") -> str | None:
    """The commit of ``ref`` or None (:func:`flightdelay.core.gitops.resolve`)."""
    return gitops.resolve(ref, cwd)


def show(commit: str, path: str, cwd: Path | str = ".") -> str | None:
    """A file's text at a commit, or None when the commit has no such file."""
    return gitops.file_at(commit, path, cwd)


def prod_version(cwd: Path | str = ".", name: str = MODEL_NAME) -> tuple[str, str] | None:
    """(commit, version) of the model GTO says is in ``prod``, or None; RevisionError when the
    registry cannot be read."""
    try:
        return gitops.prod_version(name, PROD_STAGE, cwd)
    except gitops.GitOpsError as exc:
        raise RevisionError(str(exc)) from None


def champion_ref(ref: str | None, cwd: Path | str = ".") -> tuple[str, str] | None:
    """(commit, label) of the champion: ``prod`` (or None) means GTO's prod version, any other
    value a git ref. None when there is no champion."""
    if ref in (None, PROD_STAGE):
        found = prod_version(cwd)
        return None if found is None else (found[0], f"prod ({MODEL_NAME}@{found[1]})")
    commit = resolve(ref, cwd)
    if commit is None:
        raise RevisionError(f"champion ref {ref!r} does not exist in this repository")
    return commit, ref


# ---------------------------------------------------------------- I/O edge: materialise


@dataclass(frozen=True)
class Baseline:
    """A model directory of another commit, materialised outside the work tree."""

    commit: str
    model_dir: Path
    source: str  # "DVC cache", "DVC cache or remote", "reproduced in a git worktree"


def yaml_at(commit: str, path: str, cwd: Path | str = ".") -> Any:
    """A YAML file's values at a commit, or None when the commit has no such file."""
    from flightdelay.core import yamltext

    text = show(commit, path, cwd)
    return None if text is None else yamltext.load(text)


def _lock_at(commit: str, cwd: Path) -> artifacts.DvcLock:
    """``commit``'s dvc.lock (an empty one where it has none); RevisionError if it is not one."""
    from flightdelay.core import artifacts

    raw = yaml_at(commit, "dvc.lock", cwd)
    if raw is None:  # no dvc.lock (or an empty one) at that commit: it records nothing
        return artifacts.DvcLock({})
    try:
        return artifacts.DvcLock.parse(raw, f"dvc.lock at {commit[:12]}")
    except artifacts.ArtifactError as exc:
        raise RevisionError(str(exc)) from None


def model_path_at(commit: str, cwd: Path) -> str:
    """``paths.model`` as params.yaml says at that commit; RevisionError if its dvc.lock records
    no such output (no pipeline run was committed there)."""
    params = yaml_at(commit, "params.yaml", cwd) or {}
    model = str((params.get("paths") or {}).get("model", "outputs/model"))
    if model not in _lock_at(commit, cwd).outs():
        raise RevisionError(
            f"commit {commit[:12]} has no model: its dvc.lock records no "
            f"{model!r} (no pipeline run was committed there)"
        )
    return model


def _sub_env(worktree: Path, tmp: Path) -> dict[str, str]:
    """The environment of commands run in the worktree: its own code, no parent DVC stage."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env["PYTHONPATH"] = str(worktree / "src")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _run(argv: Sequence[str], cwd: Path, env: Mapping[str, str], what: str) -> None:
    done = subprocess.run(
        list(argv), cwd=cwd, env=dict(env), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-5:])
        raise RevisionError(f"{what} failed: {tail}")


def reproduce(commit: str, model_path: str, repo: Path, dest: Path) -> None:
    """Reproduce ``train`` at ``commit`` in a temporary git worktree sharing the DVC cache; copy
    its model directory to ``dest``. The work tree of ``repo`` is not touched."""
    with tempfile.TemporaryDirectory(prefix="flightdelay-baseline-") as tmp_name:
        tmp = Path(tmp_name)
        worktree = tmp / "worktree"
        try:
            gitops.worktree_add(worktree, commit, repo)
        except gitops.GitOpsError as exc:
            raise RevisionError(str(exc)) from None
        try:
            env = _sub_env(worktree, tmp)
            local = repo / ".dvc" / "config.local"
            if local.is_file():  # the remote's credentials and URL overrides
                shutil.copy2(local, worktree / ".dvc" / "config.local")
            cache = subprocess.run(
                [sys.executable, "-m", "dvc", "cache", "dir"],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if cache.returncode == 0 and cache.stdout.strip():
                _run(
                    [
                        sys.executable,
                        "-m",
                        "dvc",
                        "cache",
                        "dir",
                        "--local",
                        str(Path(repo, cache.stdout.strip()).resolve()),
                    ],
                    worktree,
                    env,
                    "sharing the DVC cache with the worktree",
                )
            _run(
                [sys.executable, "-m", "flightdelay", "data", "pull", "--no-push"],
                worktree,
                env,
                f"getting the data of {commit[:12]}",
            )
            _run(
                [sys.executable, "-m", "dvc", "repro", "--quiet", "train"],
                worktree,
                env,
                f"reproducing train at {commit[:12]}",
            )
            _check_reproduced(commit, model_path, worktree / model_path, repo)
            shutil.copytree(worktree / model_path, dest)
        finally:
            gitops.worktree_remove(worktree, repo)


def _check_reproduced(commit: str, model_path: str, produced: Path, repo: Path) -> None:
    """RevisionError unless the rebuilt model is the one ``commit``'s dvc.lock records."""
    from flightdelay.core import artifacts

    try:
        artifacts.check_reproduced(model_path, produced, _lock_at(commit, repo), commit)
    except artifacts.ArtifactError as exc:
        raise RevisionError(str(exc)) from None


def materialise(
    commit: str, repo: Path = Path("."), cache: Path | None = None, allow_reproduce: bool = True
) -> Baseline:
    """The model directory of ``commit``: cached, else from DVC at that revision, else
    reproduced in a temporary worktree (``allow_reproduce``)."""
    from flightdelay.core.model_io import METADATA_FILE

    repo = repo.resolve()
    root = (cache or repo / BASELINE_CACHE) / commit
    model_dir = root / "model"
    if (model_dir / METADATA_FILE).is_file():
        return Baseline(commit, model_dir, "cached")
    model_path = model_path_at(commit, repo)
    staging = root / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    try:
        from dvc.api import DVCFileSystem

        fs = DVCFileSystem(url=str(repo), rev=commit)
        fs.get(model_path, str(staging), recursive=True)
        source = "DVC cache or remote"
    except Exception as exc:  # any DVC failure means: not in the cache or the remote
        shutil.rmtree(staging, ignore_errors=True)
        problems.append(f"DVC: {first_line(exc)}")
        if not allow_reproduce:
            raise RevisionError(
                f"the model of {commit[:12]} is in neither the DVC cache nor the "
                f"remote ({problems[0]})"
            ) from None
        try:
            reproduce(commit, model_path, repo, staging)
        except RevisionError as again:
            raise RevisionError(
                f"the model of {commit[:12]} could not be materialised: {problems[0]}; {again}"
            ) from None
        source = "reproduced in a git worktree"
    if not (staging / METADATA_FILE).is_file():
        raise RevisionError(f"the model of {commit[:12]} ({model_path}) holds no {METADATA_FILE}")
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    return Baseline(commit, model_dir, source)
