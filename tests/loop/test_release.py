"""release: a stage tag resolved into a verified model, assets and notes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from card_fixtures import (
    BACKTEST_JSON,
    DRIFT,
    EVALUATE,
    IMPORTANCE,
    MODEL,
    SLICES,
    scored,
)
from flightdelay.core import signing
from flightdelay.core.data import dir_md5
from flightdelay.core.outputs import EvaluateMetrics
from flightdelay.loop import release
from flightdelay.loop.release import Release, ReleaseError, notes, resolve
from registry_repo import RegistryRepo
from signing_keys import KeyPair

MODEL_A_SHA256 = "a1" * 32

COMMIT = "c" * 40
ASSIGNED = {
    "artifact": "flight-delay",
    "event": "assignment",
    "stage": "prod",
    "version": "v0.2.0",
    "tag": "flight-delay#prod#4",
    "commit_hexsha": COMMIT,
}


def test_resolve_a_current_assignment() -> None:
    assert resolve(ASSIGNED, "flight-delay#prod#4", {"prod": "v0.2.0", "staging": None}) == {
        "artifact": "flight-delay",
        "version": "v0.2.0",
        "stage": "prod",
        "tag": "flight-delay#prod#4",
        "commit": COMMIT,
    }


def test_resolve_an_unknown_ref_says_what_is_expected() -> None:
    with pytest.raises(ReleaseError, match=r"'v1' is not a GTO tag .*flight-delay#staging#1"):
        resolve(None, "v1", {})


def test_resolve_a_registration_says_to_assign_a_stage() -> None:
    registration = {**ASSIGNED, "event": "registration", "stage": None}
    with pytest.raises(ReleaseError, match=r"registers v0\.2\.0 but assigns no stage"):
        resolve(registration, "flight-delay@v0.2.0", {"prod": "v0.2.0"})


def test_resolve_another_artifact_is_refused() -> None:
    with pytest.raises(ReleaseError, match=r"is a tag of artifact 'other', not 'flight-delay'"):
        resolve({**ASSIGNED, "artifact": "other"}, "other#prod#1", {})


def test_resolve_a_superseded_assignment_is_refused() -> None:
    with pytest.raises(
        ReleaseError, match=r"prod is now v0\.1\.0: refusing to deploy a superseded"
    ):
        resolve(ASSIGNED, "flight-delay#prod#4", {"prod": "v0.1.0"})


def test_notes_show_metrics_provenance_and_what_is_missing() -> None:
    rel = Release(
        artifact="flight-delay",
        version="v0.2.0",
        stage="prod",
        tag="flight-delay#prod#4",
        version_tag="flight-delay@v0.2.0",
        commit=COMMIT,
        model_path="outputs/model",
        model_md5="m" * 32 + ".dir",
        data_md5="d" * 32 + ".dir",
        mlflow_run_id="run1",
    )
    text = notes(
        rel,
        EvaluateMetrics.parse(
            {**EVALUATE, "roc_auc": 0.81234, "n": 27574.0, "eval_month": "2013-09"},
            "evaluate.json",
        ),
        ["evaluate.json"],
        ["outputs/report/report.md"],
    )
    assert text.startswith("# flight-delay v0.2.0 → prod\n")
    assert "## Metrics (evaluation month 2013-09)" in text
    assert "| roc_auc | 0.8123 |" in text
    assert "| n | 27,574 |" in text
    assert "git checkout flight-delay@v0.2.0 && dvc pull outputs/model" in text
    assert "- `evaluate.json`" in text
    assert "so not attached: `outputs/report/report.md`" in text


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path, keys: dict[str, KeyPair]
) -> RegistryRepo:
    """v0.1.0 (with a model card) in prod, then v0.2.0 (without) in staging, both signed by
    the "promotion" key as the promotion signs them."""
    repo = RegistryRepo.create(
        tmp_path_factory.mktemp("release") / "base",
        tmp_path_factory.mktemp("release-remote"),
        repo_root,
    )
    (repo.root / "model-cards").mkdir()
    (repo.root / "model-cards/flight-delay.md").write_text("# card\n")
    first = repo.commit_model("a", sha256=MODEL_A_SHA256)
    repo.sign_model(keys["promotion"].private)
    repo.git("rm", "--quiet", "-r", "model-cards")
    second = repo.commit_model("b", roc_auc=0.85)
    repo.sign_model(keys["promotion"].private)
    for version, commit, stage in (("v0.1.0", first, "prod"), ("v0.2.0", second, "staging")):
        repo.gto("register", "flight-delay", commit, "--version", version)
        repo.gto("assign", "flight-delay", "--version", version, "--stage", stage)
    return repo


@pytest.fixture
def repo(
    base: RegistryRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: dict[str, KeyPair]
) -> RegistryRepo:
    repo = base.copy(tmp_path / "repo")
    shutil.rmtree(repo.root / ".dvc" / "cache")  # as on a fresh runner: only the remote has it
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "GITHUB_OUTPUT"))
    monkeypatch.setenv("FLIGHTDELAY_MODEL_PUBKEY", str(keys["promotion"].public))
    return repo


@pytest.fixture
def own_remote(repo: RegistryRepo, tmp_path: Path) -> Path:
    """A copy of the shared DVC remote for this test alone (it tampers with it)."""
    remote = tmp_path / "remote"
    shutil.copytree(repo.remote(), remote)
    repo.use_remote(remote)
    return remote


def log_training_run(sha256: str) -> str:
    """A training run in the test's MLflow store, tagged as flightdelay.pipeline.train tags one."""
    import mlflow

    from flightdelay.core import tracking

    tracking.configure()
    mlflow.set_experiment(tracking.EXPERIMENT)
    with mlflow.start_run() as run:
        mlflow.set_tag(tracking.SHA256_TAG, sha256)
    return str(run.info.run_id)


def test_main_materialises_the_tagged_model_and_assets(repo: RegistryRepo, tmp_path: Path) -> None:
    run_id = log_training_run(MODEL_A_SHA256)
    assert release.main(["--ref", "flight-delay#prod#1"]) == 0
    out = repo.root / "outputs/release"
    described = json.loads((out / "release.json").read_text())
    assert (described["version"], described["stage"], described["mlflow_run_id"]) == (
        "v0.1.0",
        "prod",
        run_id,
    )
    # /version of the released service reads the sidecar: commit and run, not in model.json
    sidecar = json.loads((out / "model.provenance.json").read_text())
    assert (sidecar["git_commit"], sidecar["mlflow_run_id"]) == (described["commit"], run_id)
    assert described["commit"] == repo.git("rev-parse", "flight-delay@v0.1.0^{commit}").strip()
    assert json.loads((out / "model/model.json").read_text())["name"] == "a"
    assert sorted(p.name for p in (out / "assets").iterdir()) == [
        "evaluate.json",
        "flight-delay.md",
        "flight-delay@v0.1.0.sig",  # the signature, for anyone to verify
        "model.json",
    ]
    assert (out / "signature/model.sig").read_bytes() == (
        out / "assets/flight-delay@v0.1.0.sig"
    ).read_bytes()
    text = (out / "notes.md").read_text()
    assert "| roc_auc | 0.8000 |" in text
    # v0.1.0's commit predates the card's inputs: it still deploys, the notes say why
    assert (
        "No model card of flight-delay@v0.1.0: outputs/metrics/backtest.json: backtest metrics "
        "not found at " in text
    )
    outputs = (tmp_path / "GITHUB_OUTPUT").read_text()
    assert "version=v0.1.0\nstage=prod\nenvironment=prod\ntag=flight-delay#prod#1\n" in outputs
    # the work tree still holds the newer model: the release never touched it
    assert json.loads((repo.root / "outputs/model/model.json").read_text())["name"] == "b"


def test_main_release_of_staging_loads_as_a_release(repo: RegistryRepo) -> None:
    assert release.main(["--ref", "flight-delay#staging#2"]) == 0
    notes = (repo.root / "outputs/release/notes.md").read_text()
    assert "| roc_auc | 0.8500 |" in notes
    assert "so not attached: `model-cards`" in notes
    loaded = release.load_release(repo.root / "outputs/release")
    assert (loaded.version, loaded.stage, loaded.version_tag) == (
        "v0.2.0",
        "staging",
        "flight-delay@v0.2.0",
    )


def commit_card_inputs(repo: RegistryRepo) -> str:
    """Commit a model and every output the card reads (small ones, as in test_card); its SHA."""
    repo.commit_model("c", **MODEL)
    root = repo.root
    for path, payload in {
        "outputs/metrics/evaluate.json": EVALUATE,
        "outputs/metrics/backtest.json": BACKTEST_JSON,
        "outputs/metrics/slices.json": SLICES,
        "outputs/metrics/importance.json": {"features": IMPORTANCE},
        "outputs/drift/drift.json": DRIFT,
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(payload))
    y, s = scored(400, seed=3)
    pd.DataFrame(
        {"y_true": y, "score": s, "carrier": ["UA"] * 250 + ["ZZ"] * 150, "origin": "EWR"}
    ).to_parquet(root / "outputs/predictions.parquet")
    files = {f"flights/2013-0{m}.csv": {"md5": f"{m}" * 32, "rows": 1000 * m} for m in (1, 2, 3)}
    (root / "data.dvc").write_text(
        yaml.safe_dump(
            {"outs": [{"md5": dir_md5(files), "path": "data"}], "meta": {"files": files}}
        )
    )
    repo.git("add", "--all")
    repo.git("commit", "--quiet", "--message", "card inputs")
    return repo.git("rev-parse", "HEAD").strip()


def test_main_reads_the_released_commit_through_one_dvc_view(
    repo: RegistryRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's record, its bytes, the assets and the version card's inputs come from one DVC
    Repo at the commit (each opening builds the commit's index again), not one per question."""
    import dvc.api

    opened: list[str] = []
    enter = release.artifacts.At.__enter__

    def counting(self: release.artifacts.At) -> release.artifacts.At:
        opened.append(self.commit)
        return enter(self)

    filesystems: list[object] = []
    real_filesystem = dvc.api.DVCFileSystem

    def filesystem(*args: object, **kwargs: object) -> object:
        filesystems.append(kwargs.get("rev"))
        return real_filesystem(*args, **kwargs)

    monkeypatch.setattr(release.artifacts.At, "__enter__", counting)
    monkeypatch.setattr(dvc.api, "DVCFileSystem", filesystem)
    assert release.main(["--ref", "flight-delay#staging#2"]) == 0
    assert opened == [repo.git("rev-parse", "flight-delay@v0.2.0^{commit}").strip()]
    assert filesystems == []  # the version card reads through the same view
    assert sorted(p.name for p in (repo.root / "outputs/release/assets").iterdir())


def test_main_attaches_the_card_of_the_released_version(
    repo: RegistryRepo, keys: dict[str, KeyPair]
) -> None:
    commit = commit_card_inputs(repo)
    md5 = repo.sign_model(keys["promotion"].private)
    repo.gto("register", "flight-delay", commit, "--version", "v0.3.0")
    before = repo.tags()
    repo.gto("assign", "flight-delay", "--version", "v0.3.0", "--stage", "staging")
    (tag,) = repo.tags() - before
    run_id = log_training_run(MODEL["sha256"])
    assert release.main(["--ref", tag]) == 0
    out = repo.root / "outputs/release"
    assert "flight-delay@v0.3.0.md" in {p.name for p in (out / "assets").iterdir()}
    markdown = (out / "assets/flight-delay@v0.3.0.md").read_text()
    assert markdown.startswith("<!-- Generated by `flightdelay card`")
    assert "# Model card: flight-delay@v0.3.0" in markdown
    assert "| Version | v0.3.0 (git tag `flight-delay@v0.3.0`) |" in markdown
    assert f"| Registered commit | `{commit}` |" in markdown
    assert f"| MLflow run | `{run_id}` |" in markdown  # the run tagged with the model's sha256
    # the oldest commit whose dvc.lock records this model: commit_model's, before the outputs
    assert f"| Trained at commit | `{repo.git('rev-parse', commit + '^').strip()}` |" in markdown
    signed = json.loads((out / "release.json").read_text())["signature"]
    fingerprint = signing.key_fingerprint(keys["promotion"].public)
    assert signed["signer"] == f"key {fingerprint}"
    assert (
        f"| Signature | key {fingerprint}; manifest digest {signed['digest']} over 2 files |"
        in markdown
    )
    assert f"- signature: key {fingerprint}; manifest digest" in (out / "notes.md").read_text()
    assert md5 == json.loads((out / "release.json").read_text())["model_md5"]
    text = (out / "notes.md").read_text()
    assert "- `flight-delay@v0.3.0.md`" in text
    assert "No model card" not in text


def test_main_refuses_a_registration_tag(repo: RegistryRepo, capsys) -> None:
    assert release.main(["--ref", "flight-delay@v0.2.0"]) == 1
    assert "registers v0.2.0 but assigns no stage" in capsys.readouterr().err
    assert not (repo.root / "outputs/release").exists()


def test_load_release_of_a_foreign_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "release.json").write_text(json.dumps({"version": "v1"}))
    with pytest.raises(
        release.DataFileError,
        match=r"release\.json: not a valid release description \(artifact: Field required",
    ):
        release.load_release(tmp_path)


def test_main_resolve_only_outputs_the_stage_without_fetching(
    repo: RegistryRepo, tmp_path: Path, capsys
) -> None:
    assert release.main(["--ref", "flight-delay#staging#2", "--resolve-only"]) == 0
    assert "flight-delay#staging#2 assigns v0.2.0 to staging" in capsys.readouterr().out
    assert (
        (tmp_path / "GITHUB_OUTPUT")
        .read_text()
        .startswith(
            "version=v0.2.0\nstage=staging\nenvironment=staging\ntag=flight-delay#staging#2\n"
            "version_tag=flight-delay@v0.2.0\n"
        )
    )
    assert not (repo.root / "outputs/release").exists()


# ---------------------------------------------------------------- signatures: what is refused


def remote_object(remote: Path, md5: str) -> Path:
    """The file of the DVC remote that holds the object ``md5`` (DVC 3 layout)."""
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def refusal_of(ref: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the release of ``ref``, which must fail; return its one error line."""
    assert release.main(["--ref", ref]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: model ")
    assert not Path("outputs/release").exists()  # nothing half-written
    return line


def test_main_refuses_a_model_swapped_in_the_remote_after_promotion(
    repo: RegistryRepo, own_remote: Path, capsys
) -> None:
    """Acceptance: overwrite the prod model's files in the DVC remote, then release."""
    md5 = release.artifacts.recorded("flight-delay", "flight-delay@v0.1.0").md5
    manifest = json.loads(remote_object(own_remote, md5).read_text())
    for entry in manifest:
        target = remote_object(own_remote, entry["md5"])
        target.chmod(0o644)
        target.write_bytes(
            b"swapped " + target.read_bytes()
        )  # what someone with write access could do
    line = refusal_of("flight-delay#prod#1", capsys)
    assert line.startswith(f"error: model {md5} (flight-delay@v0.1.0): the files of ")
    assert "differ from what was signed: model.json sha256" in line
    assert "weights.bin sha256" in line
    assert "; expected a signature by the key " in line


def test_main_refuses_a_model_re_signed_with_another_key(
    repo: RegistryRepo, own_remote: Path, keys: dict[str, KeyPair], tmp_path: Path, capsys
) -> None:
    recorded = release.artifacts.recorded("flight-delay", "flight-delay@v0.1.0")
    md5 = recorded.md5
    model = release.artifacts.materialise(recorded, tmp_path / "model")
    signing.sign(model, tmp_path / "other.sig", signing.Signer(keys["other"].private))
    release.artifacts.push_signature(tmp_path / "other.sig", "flight-delay", md5)  # overwrites
    line = refusal_of("flight-delay#prod#1", capsys)
    assert line.startswith(f"error: model {md5} (flight-delay@v0.1.0): signature ")
    assert "was not made by the expected signer: ValueError: Key mismatch" in line
    assert f"expected a signature by the key {keys['promotion'].public}" in line


def test_main_refuses_a_truncated_signature(repo: RegistryRepo, own_remote: Path, capsys) -> None:
    md5 = release.artifacts.recorded("flight-delay", "flight-delay@v0.2.0").md5
    stored = own_remote / "signatures" / "flight-delay" / f"{md5}.sig"
    stored.write_bytes(stored.read_bytes()[:300])
    line = refusal_of("flight-delay#staging#2", capsys)
    assert line.startswith(f"error: model {md5} (flight-delay@v0.2.0): signature ")
    assert "is unreadable (truncated, or not a model-signing bundle: JSONDecodeError)" in line


def register_unsigned(repo: RegistryRepo) -> tuple[str, str]:
    """v0.3.0 in staging, tagged by hand on a commit no promotion approved; (tag, model md5)."""
    commit = repo.commit_model("unsigned")
    repo.gto("register", "flight-delay", commit, "--version", "v0.3.0")
    before = repo.tags()
    repo.gto("assign", "flight-delay", "--version", "v0.3.0", "--stage", "staging")
    (tag,) = repo.tags() - before
    return tag, release.artifacts.recorded("flight-delay", commit).md5


def test_main_refuses_an_unsigned_version_and_names_the_override(
    repo: RegistryRepo, capsys
) -> None:
    tag, md5 = register_unsigned(repo)
    line = refusal_of(tag, capsys)
    assert line == (
        f"error: model {md5} (flight-delay@v0.3.0): no signature in the DVC remote; expected a "
        f"signature by the key {os.environ['FLIGHTDELAY_MODEL_PUBKEY']} "
        f"({signing.key_fingerprint(Path(os.environ['FLIGHTDELAY_MODEL_PUBKEY']))}); a version "
        "promoted before signing existed is released only with --allow-unsigned REASON"
    )


def test_main_allow_unsigned_releases_and_logs_the_reason(
    repo: RegistryRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    tag, md5 = register_unsigned(repo)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    reason = "v0.3.0 predates signing (ticket OPS-12)"
    assert release.main(["--ref", tag, "--allow-unsigned", reason]) == 0
    out = repo.root / "outputs/release"
    assert f"releasing model {md5} (flight-delay@v0.3.0) UNSIGNED by override: {reason}" in (
        capsys.readouterr().err
    )
    described = json.loads((out / "release.json").read_text())
    assert (described["signature"], described["unsigned_override"]) == (None, reason)
    assert f"- signature: none: released unsigned by override ({reason})" in (
        (out / "notes.md").read_text()
    )
    assert "Unsigned model released by override" in (tmp_path / "summary.md").read_text()
    assert list((out / "signature").iterdir()) == []


def test_main_allow_unsigned_never_excuses_a_bad_signature(
    repo: RegistryRepo, own_remote: Path, capsys
) -> None:
    md5 = release.artifacts.recorded("flight-delay", "flight-delay@v0.2.0").md5
    (own_remote / "signatures" / "flight-delay" / f"{md5}.sig").write_text("{}")
    assert release.main(["--ref", "flight-delay#staging#2", "--allow-unsigned", "why not"]) == 1
    assert "is unreadable" in capsys.readouterr().err


def test_main_without_an_expected_signer_refuses(
    repo: RegistryRepo, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv("FLIGHTDELAY_MODEL_PUBKEY")
    line = refusal_of("flight-delay#prod#1", capsys)
    assert "no signer is expected: set FLIGHTDELAY_MODEL_PUBKEY or FLIGHTDELAY_MODEL_IDENTITY" in (
        line
    )


# ---------------------------------------------------------------- make image, make github-release


def fake(bin_dir: Path, name: str, script: str) -> None:
    """A stand-in command that appends its arguments to calls.log (docker and gh need GitHub)."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{bin_dir}/calls.log"\n{script}\n')
    path.chmod(0o755)


def run_make(repo_root: Path, bin_dir: Path, *args: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(repo_root), *args],
        env={**clean, "PATH": f"{bin_dir}{os.pathsep}{clean['PATH']}", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    out = tmp_path / "release"
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.json").write_text("{}")
    (out / "signature").mkdir()
    (out / "signature" / "model.sig").write_text("{}")
    (out / "assets").mkdir()
    for name in ("evaluate.json", "flight-delay.md", "flight-delay@v0.2.0.md"):
        (out / "assets" / name).write_text("x")
    (out / "notes.md").write_text("# notes\n")
    return out


def test_make_image_logs_in_builds_with_the_model_and_pushes(
    repo_root: Path, tmp_path: Path, release_dir: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "docker", "cat > /dev/null")
    calls = run_make(
        repo_root,
        bin_dir,
        f"RELEASE_DIR={release_dir}",
        "image",
        VERSION="v0.2.0",
        GITHUB_REPOSITORY="Owner/Flight-Delay",
        REGISTRY_USER="bot",
        REGISTRY_TOKEN="t0ken",
        FLIGHTDELAY_MODEL_IDENTITY="https://github.com/Owner/Flight-Delay/.github/workflows/"
        "promote.yml@refs/heads/main",
    )
    image = "ghcr.io/owner/flight-delay:v0.2.0"  # GHCR wants lower case
    assert calls == [
        "docker login ghcr.io --username bot --password-stdin",
        f"docker build --build-arg MODEL_DIR={release_dir}/model --build-arg SIGNATURE_DIR="
        f"{release_dir}/signature --build-arg MODEL_VERSION=v0.2.0 --build-arg MODEL_IDENTITY="
        "https://github.com/Owner/Flight-Delay/.github/workflows/promote.yml@refs/heads/main"
        f" --tag {image} .",
        f"docker push {image}",
    ]


ASSETS = ("evaluate.json", "flight-delay.md", "flight-delay@v0.2.0.md")


@pytest.mark.parametrize(
    ("stage", "gh", "expected"),
    [
        pytest.param(
            "staging",
            'case "$1 $2" in "release view") exit 1;; esac',
            [
                "gh release create flight-delay@v0.2.0 --verify-tag --title flight-delay@v0.2.0 "
                "--notes-file {notes} --prerelease {assets}"
            ],
            id="staging-creates-a-prerelease",
        ),
        pytest.param(
            "prod",
            "exit 0",
            [
                "gh release upload flight-delay@v0.2.0 {assets} --clobber",
                "gh release edit flight-delay@v0.2.0 --notes-file {notes} "
                "--prerelease=false --latest",
            ],
            id="prod-updates-and-marks-latest",
        ),
    ],
)
def test_make_github_release_of_a_stage(
    repo_root: Path, tmp_path: Path, release_dir: Path, stage: str, gh: str, expected: list[str]
) -> None:
    """staging: a new prerelease (the release does not exist yet); prod: the existing release's
    assets and notes updated, marked latest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "gh", gh)
    calls = run_make(
        repo_root,
        bin_dir,
        f"RELEASE_DIR={release_dir}",
        "github-release",
        VERSION_TAG="flight-delay@v0.2.0",
        STAGE=stage,
    )
    assets = " ".join(f"{release_dir}/assets/{name}" for name in ASSETS)
    notes = f"{release_dir}/notes.md"
    assert calls == [
        "gh release view flight-delay@v0.2.0",
        *(line.format(notes=notes, assets=assets) for line in expected),
    ]
