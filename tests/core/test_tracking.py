from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightdelay.core import tracking
from flightdelay.core.model_io import read_provenance
from flightdelay.core.tracking import EXPERIMENT
from flightdelay.loop import mlflow_alias
from flightdelay.loop.release import Release
from flightdelay.pipeline import featurize as featurize_stage
from flightdelay.pipeline import train as train_stage
from ports import free_port
from synthetic import work_tree


def _train_with_mlflow(root: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """model.json of a training logged to $MLFLOW_TRACKING_URI, plus its sidecar's provenance."""
    root.mkdir(exist_ok=True)
    monkeypatch.chdir(work_tree(root, repo_root, months=(1, 2)))
    assert featurize_stage.main([]) == 0
    assert train_stage.main([]) == 0
    metadata = json.loads(Path("outputs/model/model.json").read_text())
    provenance = read_provenance(Path("outputs/model"), metadata["sha256"])
    assert provenance is not None
    return metadata | provenance.model_dump(exclude={"sha256"})


def _assert_run_logged(metadata: dict) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [metadata["mlflow_run_id"]]
    run = runs[0]
    assert tracking.find_run(metadata["sha256"]) == run.info.run_id
    assert run.data.tags["data_md5"] == metadata["data_md5"]
    assert run.data.tags["git_commit"] == metadata["git_commit"]
    assert run.data.params["train.seed"] == "42"
    assert run.data.params["featurize.lead_minutes"] == "60"
    assert run.data.metrics["threshold"] == pytest.approx(metadata["threshold"])
    model = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")  # skops, not pickle
    info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    assert [c["name"] for c in info.signature.inputs.to_dict()] == [
        c["name"] for c in metadata["input_schema"]
    ]
    assert hasattr(model, "predict_proba")
    assert info.flavors["sklearn"]["serialization_format"] == "skops"


@pytest.mark.slow  # MLflow import, migrations and log_model: ~15 s
def test_train_logs_params_metrics_tags_and_skops_model(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata = _train_with_mlflow(tmp_path, repo_root, monkeypatch)
    assert os.environ["MLFLOW_TRACKING_URI"].startswith("sqlite:///")
    _assert_run_logged(metadata)


@contextlib.contextmanager
def _mlflow_server(backend_uri: str, artifacts: Path) -> Iterator[str]:
    """``mlflow server`` on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            backend_uri,
            "--artifacts-destination",
            str(artifacts),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, f"mlflow server exited: {server.stderr.read()}"
            assert time.monotonic() < deadline, "mlflow server did not become healthy in 120 s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_train_logs_to_a_real_tracking_server(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    backend = f"sqlite:///{server_dir / 'backend.db'}"
    with _mlflow_server(backend, server_dir / "artifacts") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        metadata = _train_with_mlflow(tmp_path / "repo", repo_root, monkeypatch)
        _assert_run_logged(metadata)
        assert any((server_dir / "artifacts").rglob("model.skops"))


# ---------------------------------------------------------------- PostgreSQL

PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/local/bin"), Path("/usr/bin"))


def _pg_tool(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    pytest.skip(f"PostgreSQL's {name} not found in {', '.join(map(str, PG_BIN_DIRS))}")


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields a SQLAlchemy URL.

    initdb refuses to run as root (CI's containers are root), so as root the cluster belongs to
    ``nobody`` (runuser); its directory is a fresh one under /tmp, since pytest's tmp_path lies
    below a directory only root may enter.
    """
    initdb, pg_ctl, createdb = _pg_tool("initdb"), _pg_tool("pg_ctl"), _pg_tool("createdb")
    as_owner: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: initdb refuses root, cannot drop it")
        as_owner = [runuser, "-u", "nobody", "--"]
    root = Path(tempfile.mkdtemp(prefix="flightdelay-pg-"))
    data = root / "data"
    if as_owner:
        shutil.chown(root, "nobody")
    port = free_port()

    def run(*argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/")
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stdout}{done.stderr}"

    try:
        run(*as_owner, initdb, "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        run(
            *as_owner,
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        )
        try:
            run(createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
            yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
        finally:
            run(*as_owner, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow  # initdb, MLflow's migrations on PostgreSQL, a training and a mirror: ~60 s
def test_train_and_mirror_a_stage_alias_on_a_postgresql_backed_server(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the README tells a team to run: mlflow server on PostgreSQL, training logged to it,
    the released stage mirrored as a registry alias (``flightdelay mlflow-alias``)."""
    pytest.importorskip("psycopg", reason="psycopg[binary] (a pyproject dev dependency) missing")
    with _postgres() as backend, _mlflow_server(backend, tmp_path / "artifacts") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        metadata = _train_with_mlflow(tmp_path / "repo", repo_root, monkeypatch)
        _assert_run_logged(metadata)
        release = Release(
            artifact="flight-delay",
            version="v0.1.0",
            stage="staging",
            tag="flight-delay#staging#1",
            version_tag="flight-delay@v0.1.0",
            commit="c" * 40,
            model_path="outputs/model",
            model_md5="1" * 32 + ".dir",
            data_md5=metadata["data_md5"],
            mlflow_run_id=metadata["mlflow_run_id"],
        )
        out = tmp_path / "release"
        shutil.copytree("outputs/model", out / "model")
        (out / "release.json").write_text(json.dumps(release.to_json()))
        assert mlflow_alias.main(["--release", str(out)]) == 0
        import mlflow

        version = mlflow.MlflowClient(url).get_model_version_by_alias("flight-delay", "staging")
        assert version.tags["training_run_id"] == metadata["mlflow_run_id"]
        assert version.tags["git_commit"] == "c" * 40
