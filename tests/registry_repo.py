"""A tiny git + DVC + GTO repository for the promotion, release and rollback tests.

It carries the real ``.gto``, ``params.yaml`` and the real ``artifacts:`` declaration of
``dvc.yaml``, and a two-stage pipeline: ``train`` writes the model directory (``paths.model``, a
small model.json whose content the test chooses, so each commit can record a different model)
and ``evaluate`` its ``evaluate.json`` (git-tracked, like the real metrics).
Real git, DVC (a local remote beside it) and GTO. Building one costs seconds, so tests build a
module-wide one and work on cheap copies of it (:meth:`RegistryRepo.copy`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

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
spec = json.loads((pathlib.Path(sys.argv[1]) / "model.json").read_text())
out = pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
(out / "evaluate.json").write_text(json.dumps({"roc_auc": spec.get("roc_auc", 0.8)}))
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
                    "deps": ["evaluate.py", "${paths.model}"],
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

    def gto(self, *args: str) -> str:
        return self.run(str(Path(sys.executable).with_name("gto")), *args).stdout

    def commit_model(self, name: str, **metadata: Any) -> str:
        """Reproduce a model called ``name``, push it to the remote, commit; return the SHA."""
        spec = {"name": name, "data_md5": "d" * 32 + ".dir", "mlflow_run_id": None, **metadata}
        (self.root / "model_spec.json").write_text(json.dumps(spec))
        self.dvc("repro", "--quiet")
        self.dvc("push", "--quiet")
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", f"model {name}")
        return self.git("rev-parse", "HEAD").strip()

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
    repo = RegistryRepo.create(workspace / "base", workspace / "remote", repo_root)
    commits = {name: repo.commit_model(name) for name in models}
    return repo, commits
