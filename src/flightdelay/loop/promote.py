"""``flightdelay promote``: after a merge to main, register the model and put it in staging.

Run from a work tree whose pipeline outputs are the ones HEAD's ``dvc.lock`` records (after
``dvc pull``); a stale ``dvc.lock`` (the pull request changed code or params without committing
the reproduced lock file) or missing outputs are refused with the stages named. In order:

1. The model HEAD records (``dvc.lock``) is compared with the latest registered version's: if it
   is the same model (a docs or CI change), nothing is registered.
2. :func:`approve`, the one place a model is approved: it fetches the candidate by the hash
   HEAD's ``dvc.lock`` records and the champion (the version in prod) by its commit's, verifies
   both, re-scores both on the evaluation month built from the DVC-tracked raw data
   (:mod:`flightdelay.loop.rescore`) and applies the promotion rule
   (:func:`flightdelay.loop.gate.decide`)
   of the commit before the merge (HEAD's first parent), never the merged params.yaml's. The
   committed metrics are for the report; nothing the branch wrote as an output decides. If the
   gate refuses, no tag is created and the reasons go to the job summary; the exit status is 1.
3. :func:`sign_approved`: the approved model directory is signed (OpenSSF model-signing, the
   signer from the environment: :mod:`flightdelay.core.signing`) and the signature uploaded to the
   DVC
   remote keyed by the model's hash, where the release looks for it. No signature, no tag.
4. ``gto register`` (bump from the merged PR's labels: ``major``, ``minor`` or ``patch``,
   default minor; the very first version is v0.1.0) and ``gto assign --stage staging``.

Tags are created locally; pushing them (``git push origin <tags>``) is the caller's step, after
``dvc push`` has put the model where the release can pull it. In GitHub Actions the step outputs
are promoted (true/false), version, version_tag and tag.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flightdelay import MODEL_NAME
from flightdelay.core import artifacts, gitops, signing
from flightdelay.core.io import DataFileError, write_json
from flightdelay.core.params import ParamsError, load_params

BUMPS = ("major", "minor", "patch")
DEFAULT_BUMP = "minor"
STAGE = "staging"
PIPELINE_FILES = ("dvc.lock", "dvc.yaml", "params.yaml")
GATED_STAGE = "evaluate"  # dvc.lock must record the outputs of HEAD's code and params up to here
APPROVED_DIR = Path(".dvc/tmp/flightdelay/approved")  # <commit>/{model,champion}: verified copies


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


def verdict_lines(verdict: Any) -> Verdict:
    """(would promote, reasons, one line per check) of a :class:`flightdelay.loop.gate.Verdict`."""
    checks = [f"{'pass' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in verdict.checks]
    return bool(verdict.promote), list(verdict.reasons), checks


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


@dataclass(frozen=True)
class Approved:
    """A model the gate approved: the directory holds the verified bytes ``dvc.lock`` records,
    the very bytes that were scored (and that the release will fetch by the same hash)."""

    commit: str
    model_dir: Path
    md5: str
    verdict: Any  # flightdelay.loop.gate.Verdict


class RefusedError(PromoteError):
    """The gate refused the model; ``verdict`` says why."""

    def __init__(self, verdict: Any) -> None:
        super().__init__("; ".join(verdict.reasons) or "refused by the promotion gate")
        self.verdict = verdict


def fetch_verified(commit: str, dest: Path, what: str) -> tuple[Path, str]:
    """The model directory ``commit``'s dvc.lock records, downloaded into ``dest`` and re-hashed;
    (directory, md5). A loud error naming the output when the bytes are not the recorded ones."""
    with artifacts.At(commit) as at:  # one DVC index of the commit for both
        recorded = at.recorded(MODEL_NAME)
        try:
            at.materialise(recorded, dest)
        except artifacts.ArtifactError as exc:
            raise PromoteError(
                f"cannot approve the {what} ({recorded.path} at {commit[:12]}, as its dvc.lock "
                f"records it): {exc}"
            ) from None
    return dest, recorded.md5


def approve(commit: str, params: Any, params_file: Path) -> Approved:
    """THE place a model is approved for promotion; raise RefusedError (with the verdict) if not.

    Fetches the candidate by the hash ``commit``'s dvc.lock records and the champion (GTO's prod
    version) by its commit's, verifies both, re-scores both on the evaluation month built from
    the raw data (flightdelay.loop.rescore) and decides by the rule of ``commit``'s first parent
    (main
    before the merge). Returns the verified model directory it approved.
    """
    from flightdelay.core import revisions
    from flightdelay.loop import compare, gate, rescore

    root = APPROVED_DIR / commit
    model_dir, md5 = fetch_verified(commit, root / "model", "candidate")
    rule = gate.rule_at(gitops.first_parent(commit), "main", params, params_file)
    judged = rule.apply(params)
    champion = None
    try:
        found = revisions.prod_version()
    except compare.CompareError as exc:
        raise PromoteError(f"cannot approve: {exc}") from None
    if found is not None:
        champion_commit, version = found
        champion_dir, _ = fetch_verified(champion_commit, root / "champion", "champion")
        champion = rescore.Candidate(
            champion_dir, f"prod ({MODEL_NAME}@{version})", champion_commit
        )
    try:
        challenger, comparison = rescore.evidence(
            rescore.Candidate(model_dir, "candidate", commit), champion, judged
        )
    except compare.CompareError as exc:
        raise PromoteError(f"cannot approve, so do not promote: {exc}") from None
    verdict = gate.judged_by(gate.decide(challenger, comparison, rule.gate), rule)
    write_json(params.paths.gate, verdict.to_json())
    if not verdict.promote:
        raise RefusedError(verdict)
    return Approved(commit, model_dir, md5, verdict)


def sign_approved(model_dir: Path, md5: str) -> signing.SignatureInfo:
    """Sign the directory the gate approved (it must hold the model ``md5``, which is registered)
    and store the signature in the DVC remote under that hash; say who signed."""
    import tempfile

    if artifacts.directory_md5(model_dir) != md5:
        raise PromoteError(f"{model_dir} is not the approved model {md5}: refusing to sign it")
    with tempfile.TemporaryDirectory(prefix="flightdelay-sign-") as tmp:
        signature = Path(tmp) / "model.sig"
        info = signing.sign(model_dir, signature, signing.signer_from_env())
        where = artifacts.push_signature(signature, MODEL_NAME, md5)
    print(f"promote: signed model {md5}: {info.line()} -> {where}")
    gitops.step_summary(f"Signed model `{md5}`: {info.line()}; signature at `{where}`.\n\n")
    return info


def latest_registered(name: str) -> tuple[str, str] | None:
    """(version, model md5) of the latest registered version, or None before the first."""
    version = gitops.latest_version(name)
    if version is None:
        return None
    commit = gitops.commit_of(f"{name}@{version}")
    return version, artifacts.recorded(name, commit).md5


def promote(
    labels: Sequence[str], params: Any, params_file: Path
) -> tuple[Decision, str, str | None, list[str]]:
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
    try:
        approved = approve(head, params, params_file)
    except RefusedError as refused:
        return decide(head_md5, latest, verdict_lines(refused.verdict)), head, None, []
    decision = decide(head_md5, latest, verdict_lines(approved.verdict))
    sign_approved(approved.model_dir, approved.md5)  # what was approved; before any tag
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
        params = load_params(args.params)
        decision, head, version, tags = promote(
            parse_labels(args.labels), params, Path(args.params)
        )
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
