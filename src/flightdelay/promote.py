"""``flightdelay promote``: after a merge to main, register the model and put it in staging.

Run from a work tree whose pipeline outputs are the ones HEAD's ``dvc.lock`` records (after
``dvc pull``); a stale ``dvc.lock`` (the pull request changed code or params without committing
the reproduced lock file) or missing outputs are refused with the stages named. In order:

1. The model HEAD records (``dvc.lock``) is compared with the latest registered version's: if it
   is the same model (a docs or CI change), nothing is registered.
2. The promotion gate (``flightdelay gate``, the same code as the PR report's verdict) compares
   it with the model now in prod. If it refuses, no tag is created and the reasons go to the
   job summary; the exit status is 1.
3. ``gto register`` (bump from the merged PR's labels: ``major``, ``minor`` or ``patch``,
   default minor; the very first version is v0.1.0) and ``gto assign --stage staging``.

Tags are created locally; pushing them (``git push origin <tags>``) is the caller's step, after
``dvc push`` has put the model where the release can pull it. In GitHub Actions the step outputs
are promoted (true/false), version, version_tag and tag.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flightdelay import MODEL_NAME, artifacts, gitops
from flightdelay.io import DataFileError, read_json
from flightdelay.params import ParamsError, load_params

BUMPS = ("major", "minor", "patch")
DEFAULT_BUMP = "minor"
STAGE = "staging"
PIPELINE_FILES = ("dvc.lock", "dvc.yaml", "params.yaml")
GATED_STAGE = "evaluate"  # what the gate reads, with every stage upstream of it


class PromoteError(ValueError):
    """Promotion cannot be decided (bad labels, stale pipeline, no gate verdict)."""


@dataclass(frozen=True)
class Decision:
    action: Literal["register", "unchanged", "refused"]
    reasons: tuple[str, ...] = field(default=())
    checks: tuple[str, ...] = field(default=())  # the gate's checks, one line each


def parse_labels(text: str) -> list[str]:
    """PR label names from a comma- or newline-separated list (as the workflow passes them)."""
    return [label.strip() for label in re.split(r"[,\n]", text) if label.strip()]


def bump_from_labels(labels: Iterable[str]) -> str:
    """The semver bump the merged PR's labels ask for; DEFAULT_BUMP without a bump label."""
    asked = sorted({lb.lower() for lb in labels} & set(BUMPS), key=BUMPS.index)
    if len(asked) > 1:
        raise PromoteError(
            f"the pull request has labels {asked}: keep exactly one of major, minor, patch"
        )
    return asked[0] if asked else DEFAULT_BUMP


Verdict = tuple[bool, list[str], list[str]]  # (would promote, reasons, check lines)


def gate_verdict(payload: Any, source: str) -> Verdict:
    """(would promote, reasons, one line per check) from the gate's JSON result."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("promote"), bool):
        raise PromoteError(f"{source}: not a gate result (no boolean 'promote')")
    reasons = [str(r) for r in payload.get("reasons") or []]
    checks = [
        f"{'pass' if c.get('passed') else 'FAIL'} {c.get('name')}: {c.get('detail')}"
        for c in payload.get("checks") or []
        if isinstance(c, Mapping)
    ]
    return bool(payload["promote"]), reasons, checks


def decide(head_md5: str, latest: tuple[str, str] | None, verdict: Verdict | None) -> Decision:
    """What to do with HEAD's model given the latest version (version, md5) and the verdict.

    ``verdict`` may be None only when the model is unchanged (the gate is not run then).
    """
    if latest is not None and latest[1] == head_md5:
        return Decision(
            "unchanged",
            (f"the model is the one registered as {latest[0]} ({head_md5}): nothing to promote",),
        )
    if verdict is None:
        raise PromoteError("the model changed but the gate gave no verdict")
    passed, reasons, checks = verdict
    return Decision("register" if passed else "refused", tuple(reasons), tuple(checks))


def summary(
    decision: Decision, head: str, version: str | None = None, tags: Sequence[str] = ()
) -> str:
    """The job summary: promoted where, or why not."""
    title = {
        "register": f"### {MODEL_NAME} {version} promoted to {STAGE}",
        "unchanged": f"### {MODEL_NAME}: model unchanged, nothing promoted",
        "refused": f"### {MODEL_NAME}: the promotion gate refused the model of `{head[:12]}`",
    }[decision.action]
    lines = [title, ""]
    if tags:
        lines += [f"Tags: {', '.join(f'`{t}`' for t in tags)} on `{head[:12]}`.", ""]
    lines += [f"- {reason}" for reason in decision.reasons]
    if decision.checks:
        lines += ["", "Promotion gate checks:", "", "```", *decision.checks, "```"]
    if decision.action == "refused":
        lines += [
            "",
            "No tag was created. Fix the model in a new pull request; the report on "
            "it shows the same verdict before merge.",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- I/O edge


def run_gate(gate_file: Path) -> Verdict:
    """Run ``flightdelay gate`` (champion: the version in prod) and read its fresh verdict."""
    from flightdelay import cli

    gate_file.unlink(missing_ok=True)
    status = cli.main(["gate"])
    if not gate_file.is_file():
        raise PromoteError(f"`flightdelay gate` exited {status} without writing {gate_file}")
    verdict = gate_verdict(read_json(gate_file, "gate result"), str(gate_file))
    if verdict[0] != (status == 0):
        raise PromoteError(
            f"`flightdelay gate` exited {status} but {gate_file} says promote={verdict[0]}"
        )
    return verdict


def latest_registered(name: str) -> tuple[str, str] | None:
    """(version, model md5) of the latest registered version, or None before the first."""
    version = gitops.latest_version(name)
    if version is None:
        return None
    commit = gitops.commit_of(f"{name}@{version}")
    return version, artifacts.recorded(name, commit).md5


def promote(labels: Sequence[str], gate_file: Path) -> tuple[Decision, str, str | None, list[str]]:
    """Decide and act; return (decision, HEAD commit, version, tags created)."""
    bump = bump_from_labels(labels)
    if not gitops.head_is_clean(PIPELINE_FILES):
        raise PromoteError(
            f"{', '.join(PIPELINE_FILES)} differ from HEAD: the merged commit does not record "
            "the pipeline it runs (run `dvc repro` and commit dvc.lock in the pull request)"
        )
    stale = artifacts.pipeline_changes([GATED_STAGE])
    if stale:
        detail = "; ".join(f"{stage}: {', '.join(what)}" for stage, what in stale.items())
        raise PromoteError(
            f"the work tree does not hold the pipeline outputs HEAD's dvc.lock records ({detail}). "
            "Run `dvc pull`; if stages changed, the merged pull request did not commit the "
            "dvc.lock of its own code and params (run `dvc repro`, commit dvc.lock, `dvc push`)"
        )
    head = gitops.commit_of("HEAD")
    head_md5 = artifacts.recorded(MODEL_NAME, head).md5
    latest = latest_registered(MODEL_NAME)
    if latest is not None and latest[1] == head_md5:
        return decide(head_md5, latest, None), head, None, []
    verdict = run_gate(gate_file)
    decision = decide(head_md5, latest, verdict)
    if decision.action != "register":
        return decision, head, None, []
    version = gitops.register(
        MODEL_NAME,
        head,
        None if latest is None else bump,
        message=f"Registering {MODEL_NAME}: promotion gate passed at {head[:12]}",
    )
    stage_tag = gitops.assign(MODEL_NAME, version, STAGE)
    return decision, head, version, [f"{MODEL_NAME}@{version}", stage_tag]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay promote",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--labels",
        default="",
        help="the merged PR's labels, comma-separated (bump: major|minor|patch)",
    )
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        gate_file = load_params(args.params).paths.gate
        decision, head, version, tags = promote(parse_labels(args.labels), gate_file)
    except (
        PromoteError,
        artifacts.ArtifactError,
        gitops.GitOpsError,
        DataFileError,
        ParamsError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        gitops.step_summary(f"### {MODEL_NAME}: promotion failed\n\n{exc}\n")
        gitops.github_output({"promoted": "false"})
        return 1
    gitops.step_summary(summary(decision, head, version, tags))
    promoted = decision.action == "register"
    gitops.github_output(
        {
            "promoted": str(promoted).lower(),
            "version": version or "",
            "version_tag": tags[0] if tags else "",
            "tag": tags[1] if tags else "",
        }
    )
    if decision.action == "refused":
        print(
            "promote: refused, no tag created:\n  " + "\n  ".join(decision.reasons), file=sys.stderr
        )
        return 1
    if promoted:
        print(f"promote: {MODEL_NAME} {version} -> {STAGE} ({', '.join(tags)}); push the tags")
    else:
        print(f"promote: {decision.reasons[0]}")
    return 0
