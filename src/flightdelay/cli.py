"""``flightdelay <command>``: one entry point; each command is a module's ``main(argv)``.

Modules are imported only when their command runs, so ``flightdelay serve`` never imports DVC,
Great Expectations or MLflow.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("flightdelay.core.data", "get, rebuild or extend the versioned raw data"),
    "repro": (
        "flightdelay.loop.repro",
        "pull what exists, dvc repro (git files put back on failure)",
    ),
    "validate": ("flightdelay.pipeline.validate", "validate every batch with Great Expectations"),
    "featurize": (
        "flightdelay.pipeline.featurize",
        "build pre-departure features, target and context",
    ),
    "audit": (
        "flightdelay.pipeline.audit",
        "leakage audit: features that tell the label, time travel",
    ),
    "train": ("flightdelay.pipeline.train", "fit the model on all months before the newest"),
    "evaluate": (
        "flightdelay.pipeline.evaluate",
        "score the newest month, backtest, slices, plots",
    ),
    "drift": (
        "flightdelay.pipeline.drift",
        "newest batch vs training data: features, label, scores",
    ),
    "report": ("flightdelay.loop.report", "the pull-request report: verdict, deltas, diffs, drift"),
    "gate": ("flightdelay.loop.gate", "the promotion rule: exit 0 to promote, 1 not, with reasons"),
    "compare": (
        "flightdelay.loop.compare",
        "another ref's model on this evaluation set, paired CIs",
    ),
    "card": (
        "flightdelay.pipeline.card",
        "model card from the pipeline outputs; --check, --version",
    ),
    "monitor": (
        "flightdelay.loop.monitor",
        "next upstream month vs prod model: drift, retrain branch",
    ),
    "serve": ("flightdelay.serving.serve", "serve the model over HTTP (FastAPI under uvicorn)"),
    "compile-scorer": ("flightdelay.serving.compiled", "compile the scorer library once"),
    "smoke": ("flightdelay.serving.smoke", "check a running service: /health, /version, /predict"),
    "promote": ("flightdelay.loop.promote", "after a merge: gate, gto register, assign staging"),
    "release": ("flightdelay.loop.release", "resolve a stage tag: verified model, assets, notes"),
    "deploy": ("flightdelay.loop.deploy", "run the release for its stage (local or kubernetes)"),
    "mlflow-alias": (
        "flightdelay.loop.mlflow_alias",
        "mirror the released stage as an MLflow alias",
    ),
    "rollback": (
        "flightdelay.loop.rollback",
        "re-assign prod to the previous version (gto history)",
    ),
    "canary": (
        "flightdelay.loop.canary",
        "prod release to a share via nginx; promote or roll back",
    ),
    "shadow-report": ("flightdelay.loop.shadow", "candidate vs prod on mirrored prod requests"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: flightdelay <command> [args]\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"flightdelay: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    # OpenMP threads (HistGradientBoosting) busy-wait by default; on a shared 2-core runner that
    # made training 5x slower. Must be set before sklearn loads libgomp; a caller's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
