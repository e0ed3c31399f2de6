"""A tiny git + DVC + GTO repository for the promotion, release and rollback tests.

It carries the real ``.gto``, ``params.yaml`` and the real ``artifacts:`` declaration of
``dvc.yaml``, and a two-stage pipeline: ``train`` writes the model directory (``paths.model``, a
small model.json whose content the test chooses, so each commit can record a different model)
and ``evaluate`` its ``evaluate.json`` (git-tracked, like the real metrics).
Real git, DVC (a local remote beside it) and GTO. Building one costs seconds (a dozen git and DVC
commands), so each is built once per session (per pytest-xdist worker, :class:`_Templates`) and
handed out as copies; tests build a module-wide one and work on cheap copies of it
(:meth:`RegistryRepo.copy`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from flightdelay.core import gitops
from output_fixtures import EVALUATION, MODEL_METADATA

MAKE_MODEL = """\
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
spec = json.loads(pathlib.Path("model_spec.json").read_text())
(out / "model.json").write_text(json.dumps(spec, sort_keys=True))
(out / "weights.bin").write_bytes(spec["name"].encode() * 10)
"""
EVALUATE = """\
import json, pathlib, sys
assert (pathlib.Path(sys.argv[1]) / "model.json").is_file()
out = pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
(out / "evaluate.json").write_text(pathlib.Path("evaluate_spec.json").read_text())
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
    }


class RegistryRepo:
    """A repository at ``root``; its DVC remote (``config.local``) is ``remote``."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    @classmethod
    def create(cls, root: Path, remote: Path, repo_root: Path) -> RegistryRepo:
        """A repository without commits at ``root`` (a copy of the session's template)."""
        return _templates(repo_root).restore((), root, remote)[0]

    @classmethod
    def build(cls, root: Path, remote: Path, repo_root: Path) -> RegistryRepo:
        """A repository without commits at ``root``, built with git and DVC."""
        repo = cls(root, _env())
        root.mkdir(parents=True)
        repo.git("init", "--quiet", "--initial-branch", "main")
        repo.git("config", "user.name", "Test")
        repo.git("config", "user.email", "test@example.com")
        for name in (".gto", "params.yaml"):
            (root / name).write_text((repo_root / name).read_text())
        declared = yaml.safe_load((repo_root / "dvc.yaml").read_text())["artifacts"]
        pipeline = {
            "artifacts": declared,
            "stages": {
                "train": {
                    "cmd": "python make_model.py ${paths.model}",
                    "deps": ["make_model.py", "model_spec.json"],
                    "outs": ["${paths.model}"],
                },
                "evaluate": {  # the gate reads its metrics
                    "cmd": "python evaluate.py ${paths.model} ${paths.metrics}",
                    "deps": ["evaluate.py", "evaluate_spec.json", "${paths.model}"],
                    "outs": [{"${paths.metrics}/evaluate.json": {"cache": False}}],
                },
            },
        }
        (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
        (root / "make_model.py").write_text(MAKE_MODEL)
        (root / "evaluate.py").write_text(EVALUATE)
        repo.dvc("init", "--quiet")
        repo.dvc("remote", "add", "--default", "--local", "store", str(remote))
        return repo

    def copy(self, root: Path) -> RegistryRepo:
        """An independent copy (work tree, git, DVC cache) that shares the DVC remote."""
        shutil.copytree(self.root, root, symlinks=True)
        return RegistryRepo(root, _env())

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args, cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done

    def git(self, *args: str) -> str:
        return self.run("git", *args).stdout

    def dvc(self, *args: str) -> str:
        return self.run(sys.executable, "-m", "dvc", *args).stdout

    def remote(self) -> Path:
        """The DVC remote ``store``'s directory (``dvc config --local remote.store.url``), read
        through DVC's config API in this process."""
        from dvc.config import Config

        return Path(Config(dvc_dir=str(self.root / ".dvc"))["remote"]["store"]["url"])

    def use_remote(self, remote: Path) -> None:
        """``dvc remote modify --local store url <remote>`` through DVC's config API in this
        process: the same .dvc/config.local, without an interpreter start (0.3 s) per call."""
        from dvc.config import Config

        with Config(dvc_dir=str(self.root / ".dvc")).edit("local") as conf:
            conf["remote"]["store"]["url"] = str(remote)

    def gto(self, *args: str) -> str:
        """``gto args`` as typed in the repository: GTO's own command line, run in this process
        with ``--repo`` (a ``gto`` process costs half a second of imports per call). An assignment
        waits for a whole second past the artifact's newest one first, as gitops.assign does:
        GTO orders a stage's assignments by their tags' whole-second times alone."""
        from click.testing import CliRunner
        from gto.cli import app

        command, *rest = args
        if command == "assign":  # as flightdelay's own assignments do: newest by time, not luck
            gitops.wait_past_assignments(rest[0], self.root)
        done = CliRunner().invoke(app, [command, "--repo", str(self.root), *rest])
        assert done.exit_code == 0, f"gto {' '.join(args)} failed:\n{done.output}{done.exception}"
        return done.stdout

    def commit_model(self, name: str, roc_auc: float = 0.8, **metadata: Any) -> str:
        """Reproduce a model called ``name`` (a whole model.json, ``metadata`` overriding keys)
        with a whole evaluate.json of ``roc_auc``, push it to the remote, commit; the SHA."""
        spec = {
            **MODEL_METADATA,
            "name": name,
            "data_md5": "d" * 32 + ".dir",
            "mlflow_run_id": None,
            **metadata,
        }
        evaluation = {
            **EVALUATION,
            "eval_month": spec["eval_month"],
            "threshold": spec["threshold"],
            "roc_auc": roc_auc,
        }
        (self.root / "model_spec.json").write_text(json.dumps(spec))
        (self.root / "evaluate_spec.json").write_text(json.dumps(evaluation, sort_keys=True))
        self._repro_and_push()
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", f"model {name}")
        return self.git("rev-parse", "HEAD").strip()

    def _repro_and_push(self) -> None:
        """``dvc repro`` then ``dvc push`` through DVC's API in this process: the same lock, cache
        and remote as the commands, without two interpreter starts (seconds each) per model."""
        from dvc.repo import Repo

        said = io.StringIO()
        path = os.environ.get("PATH")
        os.environ["PATH"] = self.env["PATH"]  # the stages run `python`: this interpreter's
        try:
            with (
                contextlib.chdir(self.root),
                contextlib.redirect_stdout(said),
                contextlib.redirect_stderr(said),
                Repo(str(self.root)) as repo,
            ):
                repo.reproduce()
                repo.push()
        except Exception as error:
            raise AssertionError(f"dvc repro/push failed: {error}\n{said.getvalue()}") from error
        finally:
            if path is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = path

    def sign_model(self, private_key: Path) -> str:
        """Sign the work tree's model as the promotion does and store the signature in the DVC
        remote under the hash dvc.lock records; return that hash."""
        from flightdelay.core import artifacts, signing

        md5 = artifacts.recorded("flight-delay", "HEAD", self.root).md5
        signature = self.root.parent / f"{md5}.sig"
        signing.sign(self.root / "outputs/model", signature, signing.Signer(private_key))
        artifacts.push_signature(signature, "flight-delay", md5, self.root)
        signature.unlink()
        return md5

    def tags(self) -> set[str]:
        return set(self.git("tag", "--list").split())

    def show(self) -> dict[str, Any]:
        """``gto show --json`` of the artifact: {version, stage: {...}, ...}."""
        found: dict[str, Any] = json.loads(self.gto("show", "--json"))
        return found.get("flight-delay", {})


def build_base(
    workspace: Path, repo_root: Path, models: tuple[str, ...]
) -> tuple[RegistryRepo, dict[str, str]]:
    """A repository with one commit per model name; returns it and {name: commit SHA}."""
    return _templates(repo_root).restore(models, workspace / "base", workspace / "remote")


class _Templates:
    """The registries of one session, built once and copied out. Every repository the tests ask
    for (none, ``("a",)``, ``("a", "b")``, ...) is a prefix of one chain of model commits, so one
    builder commits them in turn and each step is kept as a snapshot: its work tree, git, DVC
    cache and remote. A copy is the repository the commands would have built (the same commits,
    the remote holding what was pushed up to then), with ``config.local`` naming its own remote."""

    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root
        self.directory = Path(tempfile.mkdtemp(prefix="flightdelay-registry-"))
        atexit.register(shutil.rmtree, self.directory, ignore_errors=True)
        self.snapshots: dict[tuple[str, ...], tuple[Path, Path, dict[str, str]]] = {}
        self.builder: RegistryRepo | None = None
        self.remote = self.directory
        self.built: dict[str, str] = {}

    def restore(
        self, models: tuple[str, ...], root: Path, remote: Path
    ) -> tuple[RegistryRepo, dict[str, str]]:
        if models not in self.snapshots:
            self._build(models)
        snapshot, built_remote, commits = self.snapshots[models]
        shutil.copytree(snapshot / "repo", root, symlinks=True)
        if (snapshot / "remote").is_dir():
            shutil.copytree(snapshot / "remote", remote, symlinks=True, dirs_exist_ok=True)
        config = root / ".dvc" / "config.local"
        assert str(built_remote) in config.read_text(), config.read_text()
        config.write_text(config.read_text().replace(str(built_remote), str(remote)))
        return RegistryRepo(root, _env()), dict(commits)

    def _build(self, models: tuple[str, ...]) -> None:
        if self.builder is None or models[: len(self.built)] != tuple(self.built):
            chain = Path(tempfile.mkdtemp(dir=self.directory, prefix="chain-"))
            self.remote = chain / "remote"
            self.builder = RegistryRepo.build(chain / "repo", self.remote, self.repo_root)
            self.built = {}
            self._snapshot()
        for name in models[len(self.built) :]:
            self.built[name] = self.builder.commit_model(name)
            self._snapshot()

    def _snapshot(self) -> None:
        assert self.builder is not None
        key = tuple(self.built)
        if key in self.snapshots:
            return
        snapshot = Path(tempfile.mkdtemp(dir=self.directory, prefix="snapshot-"))
        shutil.copytree(self.builder.root, snapshot / "repo", symlinks=True)
        if self.remote.is_dir():
            shutil.copytree(self.remote, snapshot / "remote", symlinks=True)
        self.snapshots[key] = (snapshot, self.remote, dict(self.built))


_TEMPLATES: dict[Path, _Templates] = {}


def _templates(repo_root: Path) -> _Templates:
    key = repo_root.resolve()
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _Templates(key)
    return _TEMPLATES[key]
