from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flightdelay import featurize as featurize_stage
from flightdelay import train as train_stage
from flightdelay.tracking import EXPERIMENT
from synthetic import work_tree


def _train_with_mlflow(root: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    root.mkdir(exist_ok=True)
    monkeypatch.chdir(work_tree(root, repo_root, months=(1, 2)))
    assert featurize_stage.main([]) == 0
    assert train_stage.main([]) == 0
    return json.loads(Path("outputs/model/model.json").read_text())


def _assert_run_logged(metadata: dict) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [metadata["mlflow_run_id"]]
    run = runs[0]
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_train_logs_to_a_real_tracking_server(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    server_dir = tmp_path / "server"
    server_dir.mkdir()
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
            f"sqlite:///{server_dir / 'backend.db'}",
            "--artifacts-destination",
            str(server_dir / "artifacts"),
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
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, f"mlflow server exited: {server.stderr.read()}"
            assert time.monotonic() < deadline, "mlflow server did not become healthy in 90 s"
            time.sleep(0.5)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        metadata = _train_with_mlflow(tmp_path / "repo", repo_root, monkeypatch)
        _assert_run_logged(metadata)
        assert any((server_dir / "artifacts").rglob("model.skops"))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
