"""artifacts: the model a commit records, fetched from the DVC remote and verified."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flightdelay.core import artifacts
from flightdelay.core.artifacts import ArtifactError
from registry_repo import RegistryRepo, build_base

NAME = "flight-delay"


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> tuple[RegistryRepo, dict[str, str]]:
    return build_base(tmp_path_factory.mktemp("artifacts"), repo_root, ("a", "b"))


@pytest.fixture
def repo(
    base: tuple[RegistryRepo, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RegistryRepo:
    repo = base[0].copy(tmp_path / "repo")
    monkeypatch.chdir(repo.root)
    return repo


def lock_md5(repo: RegistryRepo, commit: str) -> str:
    import yaml

    lock = yaml.safe_load(repo.git("show", f"{commit}:dvc.lock"))
    return str(lock["stages"]["train"]["outs"][0]["md5"])


def test_directory_md5_matches_what_dvc_records(repo: RegistryRepo) -> None:
    head = repo.git("rev-parse", "HEAD").strip()
    assert artifacts.directory_md5(repo.root / "outputs/model") == lock_md5(repo, head)


def test_recorded_reads_path_and_hash_of_each_commit(
    repo: RegistryRepo, base: tuple[RegistryRepo, dict[str, str]]
) -> None:
    commits = base[1]
    first, second = (artifacts.recorded(NAME, commits[n]) for n in ("a", "b"))
    assert first.path == second.path == "outputs/model"
    assert first.md5 == lock_md5(repo, commits["a"]) != second.md5


def test_materialise_fetches_an_older_commit_from_the_remote(
    repo: RegistryRepo, base: tuple[RegistryRepo, dict[str, str]], tmp_path: Path
) -> None:
    shutil.rmtree(repo.root / ".dvc" / "cache")  # only the remote has it now
    dest = artifacts.materialise(artifacts.recorded(NAME, base[1]["a"]), tmp_path / "got")
    assert json.loads((dest / "model.json").read_text())["name"] == "a"
    assert (repo.root / "outputs/model/model.json").read_text().count('"b"') == 1  # untouched


def test_materialise_refuses_bytes_that_differ_from_dvc_lock(
    repo: RegistryRepo, base: tuple[RegistryRepo, dict[str, str]], tmp_path: Path
) -> None:
    recorded = artifacts.recorded(NAME, base[1]["b"])
    forged = artifacts.Recorded(NAME, recorded.commit, recorded.path, "0" * 32 + ".dir")
    with pytest.raises(ArtifactError, match=r"differs from 0{32}\.dir, which dvc.lock records"):
        artifacts.materialise(forged, tmp_path / "got")


def test_materialise_of_a_model_never_pushed_says_so(repo: RegistryRepo, tmp_path: Path) -> None:
    (repo.root / "model_spec.json").write_text(json.dumps({"name": "unpushed"}))
    repo.dvc("repro", "--quiet")
    repo.git("commit", "--quiet", "--all", "--message", "not pushed")
    shutil.rmtree(repo.root / ".dvc" / "cache")
    head = repo.git("rev-parse", "HEAD").strip()
    with pytest.raises(ArtifactError, match=r"neither in the DVC cache nor in the remote"):
        artifacts.materialise(artifacts.recorded(NAME, head), tmp_path / "got")


def test_recorded_without_the_artifact_declaration_names_it(repo: RegistryRepo) -> None:
    import yaml

    pipeline = yaml.safe_load((repo.root / "dvc.yaml").read_text())
    del pipeline["artifacts"]
    (repo.root / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    repo.git("commit", "--quiet", "--all", "--message", "undeclared")
    head = repo.git("rev-parse", "HEAD").strip()
    with pytest.raises(ArtifactError, match=r"dvc\.yaml declares no artifact 'flight-delay'"):
        artifacts.recorded(NAME, head)


def test_recorded_at_a_commit_without_dvc_lock_says_it_was_never_reproduced(
    repo: RegistryRepo,
) -> None:
    repo.git("rm", "--quiet", "dvc.lock")
    repo.git("commit", "--quiet", "--message", "no lock")
    head = repo.git("rev-parse", "HEAD").strip()
    with pytest.raises(ArtifactError, match=r"dvc\.lock records no hash for outputs/model"):
        artifacts.recorded(NAME, head)


def test_pipeline_changes_of_a_reproduced_tree_is_empty(repo: RegistryRepo) -> None:
    assert artifacts.pipeline_changes(["train"]) == {}


def test_pipeline_changes_names_the_stage_and_the_changed_dependency(repo: RegistryRepo) -> None:
    (repo.root / "model_spec.json").write_text(json.dumps({"name": "edited"}))
    assert artifacts.pipeline_changes(["train"]) == {
        "train": ["changed deps: model_spec.json modified"]
    }


def _lock(path: str, md5: str) -> artifacts.DvcLock:
    raw = {
        "schema": "2.0",
        "stages": {"train": {"cmd": "train", "outs": [{"path": path, "hash": "md5", "md5": md5}]}},
    }
    return artifacts.DvcLock.parse(raw, "dvc.lock")


def test_dvc_lock_hashes_of_outputs_and_dependencies_by_path() -> None:
    lock = artifacts.DvcLock.parse(
        {
            "schema": "2.0",
            "stages": {
                "train": {
                    "cmd": ["flightdelay train"],
                    "deps": [{"path": "data", "md5": "d" * 32 + ".dir"}, {"path": "p.yaml"}],
                    "outs": [{"path": "outputs/model", "hash": "md5", "md5": "m" * 32 + ".dir"}],
                },
                "card": {
                    "cmd": "flightdelay card",
                    "deps": [{"path": "data", "md5": "d" * 32 + ".dir"}],
                },
            },
        },
        "dvc.lock",
    )
    assert lock.outs() == {"outputs/model": "m" * 32 + ".dir"}
    assert lock.deps() == {"data": "d" * 32 + ".dir"}  # an entry without a hash records none
    assert set(lock.stages) == {"train", "card"}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, "expected a dictionary"),
        ({"stages": {}}, "required key not provided @ data['schema']"),
        ({"schema": "1.0"}, "invalid schema version"),
        ({"schema": "2.0", "stages": {"train": {"outs": []}}}, "data['stages']['train']['cmd']"),
        ({"schema": "2.0", "stages": {"t": {"cmd": "x", "outs": [{"md5": "0" * 32}]}}}, "['path']"),
    ],
)
def test_dvc_lock_that_dvc_would_refuse_is_refused_naming_the_file(
    raw: object, problem: str
) -> None:
    with pytest.raises(ArtifactError) as caught:
        artifacts.DvcLock.parse(raw, "some/dvc.lock")
    message = str(caught.value)
    assert message.startswith("some/dvc.lock is not a DVC lock file (")
    assert problem in message
    assert "\n" not in message


def test_check_reproduced_accepts_the_recorded_bytes_whatever_the_sidecar(tmp_path: Path) -> None:
    from flightdelay.core.model_io import Provenance, write_provenance

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{}")
    recorded = artifacts.directory_md5(model)
    write_provenance(model, Provenance(sha256="a" * 64, mlflow_run_id="differs every run"))
    artifacts.check_reproduced("outputs/model", model, _lock("outputs/model", recorded), "c" * 40)


def test_check_reproduced_names_the_output_whose_hash_differs(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text('{"other": "bytes"}')
    lock = _lock("outputs/model", "0" * 32 + ".dir")
    with pytest.raises(
        ArtifactError,
        match=r"outputs/model reproduced at cccccccccccc hashes \w+\.dir, but its dvc\.lock "
        r"records 0{32}\.dir",
    ):
        artifacts.check_reproduced("outputs/model", model, lock, "c" * 40)
    with pytest.raises(ArtifactError, match=r"outputs/other: the dvc\.lock of cccccccccccc"):
        artifacts.check_reproduced("outputs/other", model, lock, "c" * 40)
