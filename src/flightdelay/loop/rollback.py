"""``flightdelay rollback``: put the previous version back in prod, in one step.

"Previous" is read from ``gto history``: the version of the newest prod assignment that is not
the version prod holds now. Rolling back twice therefore returns to where you started, like
``kubectl rollout undo``. The re-assignment is an ordinary GTO tag (``flight-delay#prod#N``,
``--force`` because that version was in prod before), so the release workflow deploys it like
any promotion, and the history keeps both the mistake and the rollback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from flightdelay import MODEL_NAME
from flightdelay.core import gitops

STAGE = "prod"


class RollbackError(ValueError):
    """There is nothing to roll back to."""


def previous_version(events: Sequence[dict[str, Any]], stage: str = STAGE) -> tuple[str, str]:
    """(current version, version to roll back to) of ``stage`` from ``gto history`` events."""
    assignments = sorted(
        (e for e in events if e.get("event") == "assignment" and e.get("stage") == stage),
        key=gitops.assignment_order,
    )
    if not assignments:
        raise RollbackError(f"{stage} has never been assigned: nothing to roll back")
    current = str(assignments[-1]["version"])
    for event in reversed(assignments):
        if event["version"] != current:
            return current, str(event["version"])
    raise RollbackError(
        f"{stage} has only ever held {current}: there is no previous version to roll back to"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay rollback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stage", default=STAGE, help="default prod")
    args = parser.parse_args(argv)
    try:
        current, previous = previous_version(gitops.history(MODEL_NAME), args.stage)
        tag = gitops.assign(MODEL_NAME, previous, args.stage, force=True)
    except (RollbackError, gitops.GitOpsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        gitops.step_summary(f"### Rollback refused\n\n{exc}\n")
        return 1
    gitops.github_output({"tag": tag, "version": previous, "replaced": current})
    gitops.step_summary(
        f"### Rollback of {MODEL_NAME} {args.stage}\n\n{current} → **{previous}** (`{tag}`); "
        "the release workflow deploys it.\n"
    )
    print(
        f"rollback: {MODEL_NAME} {args.stage} {current} -> {previous} ({tag}); "
        f"push the tag: git push origin '{tag}'"
    )
    return 0
