"""``flightdelay mlflow-alias``: mirror a released stage into the MLflow model registry.

Git tags are the registry of record; MLflow mirrors them so people who browse MLflow see the same
thing. For the release in ``outputs/release`` (``flightdelay release``): the model version of
registered model ``flight-delay`` whose tag ``gto_version`` is the release's version is reused,
or created from the verified model directory (logged as artifacts of a run in the experiment
``flight-delay-releases``); it carries the tags git_commit, gto_version, gto_version_tag,
data_md5, model_md5, training_run_id and, per stage, ``gto_tag_<stage>`` (the assignment tag).
Then the alias named like the stage (``staging``, ``prod``) is pointed at it. The store is
``$MLFLOW_TRACKING_URI`` (default ``sqlite:///mlflow.db``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flightdelay.core.io import DataFileError
from flightdelay.loop.release import DEFAULT_OUT, Release, load_release

EXPERIMENT = "flight-delay-releases"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def version_tags(release: Release) -> dict[str, str]:
    """The tags a model version carries: provenance plus the assignment tag of its stage."""
    tags = {
        "git_commit": release.commit,
        "gto_version": release.version,
        "gto_version_tag": release.version_tag,
        "model_md5": release.model_md5,
        f"gto_tag_{release.stage}": release.tag,
        "data_md5": release.data_md5 or "unknown",
        "training_run_id": release.mlflow_run_id or "none",
    }
    return tags


def mirror(release: Release, model_dir: Path, client: Any) -> str:
    """Point alias ``release.stage`` at the model version of ``release``; return its number."""
    import mlflow

    name = release.artifact
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(
            name, description="Mirror of the GTO registry (git tags are the record)."
        )
    found = client.search_model_versions(
        f"name = '{name}' and tag.gto_version = '{release.version}'"
    )
    same = [v for v in found if v.tags.get("model_md5") == release.model_md5]
    if same:
        version = max(same, key=lambda v: int(v.version)).version
    else:
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name=f"{name} {release.version}") as run:
            mlflow.set_tags({"git_commit": release.commit, "gto_version": release.version})
            mlflow.log_artifacts(str(model_dir), "model")
        version = client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            description=f"{release.version_tag} at {release.commit[:12]}",
        ).version
    for key, value in version_tags(release).items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, release.stage, version)
    return str(version)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay mlflow-alias",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--release",
        type=Path,
        default=DEFAULT_OUT,
        help="what `flightdelay release` wrote (default outputs/release)",
    )
    args = parser.parse_args(argv)
    try:
        release = load_release(args.release)
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import mlflow
    from mlflow.exceptions import MlflowException

    from flightdelay.core import tracking

    uri = tracking.configure()
    try:
        version = mirror(release, args.release / "model", mlflow.MlflowClient())
    except MlflowException as exc:
        print(f"error: MLflow at {uri} refused the mirror: {exc.message}", file=sys.stderr)
        return 1
    print(
        f"mlflow-alias: {release.artifact}@{release.stage} -> model version {version} "
        f"({release.version}, {release.tag})"
    )
    return 0
