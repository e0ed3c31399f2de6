"""Time the main job's pipeline from a fresh clone: the speed targets of issues 2 and 3.

    python benchmarks/pipeline.py [--keep DIR]

Packages are cached (this venv); everything else starts fresh in a temporary directory: a clone
of this repository's committed state with its own empty DVC remote, so ``make data`` rebuilds
the batches from the upstream package. Then, timed:

1. every stage from clean, one ``dvc repro --force --single-item`` at a time in pipeline order
   (validate -> featurize -> train -> evaluate -> drift -> card -> report), each timed with
   DVC's own start-up included (target: validate..evaluate under 60 s);
2. the Great Expectations suites alone on all nine months (target: under 2 s), as the stage
   prints it;
3. a second ``make run`` with nothing changed (target: under 5 s, "up to date");
4. a change of one training parameter: which stages re-run (target: none before ``train``).

Prints one table; the machine's load average is printed beside it, since 2 shared cores make
every wall time depend on what else runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNNING = re.compile(r"^Running stage '([\w-]+)'", re.MULTILINE)
SUITE = re.compile(r"validation passed: .* in (\d+\.\d+) s")


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"`{' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return took, done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="flightdelay-bench-"))
    clone = work / "clone"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(work)}
    env.pop("MLFLOW_TRACKING_URI", None)
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        sh(["dvc", "remote", "modify", "--local", "local", "url", str(work / "remote")], clone, env)
        data_s, _ = sh([sys.executable, "-m", "flightdelay", "data", "pull"], clone, env)
        order = list(yaml.safe_load((clone / "dvc.yaml").read_text())["stages"])  # in DAG order
        stages, log = [], ""
        for stage in order:  # one at a time, so each stage's wall time is its own
            took, out = sh(["dvc", "repro", "--force", "--single-item", stage], clone, env)
            stages.append((stage, took))
            log += out
        clean_s = sum(t for _, t in stages)
        suite = SUITE.search(log)
        # This venv (VENV=...) so make finds it installed, as on a second run on a laptop.
        # -o: the clone's files are newer than the venv's stamp; never reinstall into this venv.
        stamp = str(BIN.parent / ".installed-dev")
        noop_s, noop_log = sh(["make", "-s", "run", f"VENV={BIN.parent}", "-o", stamp], clone, env)
        params = clone / "params.yaml"
        text = params.read_text()
        train_seed = re.compile(r"(\ntrain:\n(?:[ #].*\n)*?  seed: )(\d+)")
        params.write_text(train_seed.sub(lambda m: f"{m[1]}{int(m[2]) + 1}", text, count=1))
        _, change_log = sh(["dvc", "repro"], clone, env)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    upto = sum(t for name, t in stages if name in {"validate", "featurize", "train", "evaluate"})
    rerun = RUNNING.findall(change_log)
    rows = [
        ("get data (rebuild from upstream, verify)", f"{data_s:.1f} s", ""),
        *((f"  stage {s}", f"{t:.1f} s", "") for s, t in stages),
        ("pipeline from clean, all stages", f"{clean_s:.1f} s", ""),
        ("validate .. evaluate (sum of stages)", f"{upto:.1f} s", "< 60 s"),
        ("GX suites on all batches", f"{suite.group(1)} s" if suite else "n/a", "< 2 s"),
        ("second `make run`, nothing changed", f"{noop_s:.1f} s", "< 5 s"),
        ("  says up to date", str("up to date" in noop_log), "True"),
        ("train.seed changed: stages re-run", ", ".join(rerun), "train and after only"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"flight-delay pipeline from a fresh clone (load average {load}, {os.cpu_count()} cores)")
    print(f"{'':{width}}  {'measured':>12}  target")
    for name, value, target in rows:
        print(f"{name:{width}}  {value:>12}  {target}")
    return 0 if {"validate", "featurize"}.isdisjoint(rerun) else 1


if __name__ == "__main__":
    raise SystemExit(main())
