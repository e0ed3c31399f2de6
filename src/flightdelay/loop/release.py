"""``flightdelay release --ref TAG``: turn a GTO stage tag into a release bundle.

Resolves the tag (``gto check-ref``), refuses one that is not a stage assignment or that a newer
assignment of the same stage has superseded, materialises the exact model the tagged commit's
``dvc.lock`` records (from the DVC cache or remote), checks its signature (the promotion signed
the model it approved; :mod:`flightdelay.core.signing`, signer expected from the environment) and
its
DVC hash, and gathers what the GitHub release attaches: model card, metrics, report, model
metadata and the signature, as found at that commit, plus the version's own card
(``<model>@vX.Y.Z.md``: :mod:`flightdelay.pipeline.card` rendered from that commit's outputs with
the
version, its tag, the commit and the signature filled in). Writes into ``--out`` (default
``outputs/release``)::

    release.json   artifact, version, stage, tags, commit, hashes, signer: what deploy and
                   MLflow read
    model/         the verified model directory (what the image bakes in, what serve loads)
    signature/     model.sig, its signature (empty only for an --allow-unsigned release)
    assets/        files for the GitHub release (only those that exist at the commit)
    notes.md       the GitHub release notes

In GitHub Actions it also writes the step outputs (version, stage, tag, version_tag, commit,
environment) and a job summary. A model without a signature (a version promoted before signing
existed) is refused unless ``--allow-unsigned REASON`` is given; the reason is printed, put in
the job summary, the notes and release.json. ``--resolve-only`` stops after the tag checks (no
DVC, no files): the release workflow's first job uses it to pick the GitHub environment. Exit
status 1 with a message naming the problem otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flightdelay import MODEL_NAME
from flightdelay.core import artifacts, gitops, model_io, signing, tracking
from flightdelay.core.drift_summary import DRIFT_JSON
from flightdelay.core.io import DataFileError
from flightdelay.core.outputs import EvaluateMetrics, Release
from flightdelay.core.params import Params, ParamsError, Paths, load_params
from flightdelay.pipeline import card

DEFAULT_OUT = Path("outputs/release")
RELEASE_FILE = "release.json"
SIGNATURE_DIR = "signature"
SIGNATURE_FILE = "model.sig"
HEADLINE_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "log_loss", "n")


class ReleaseError(ValueError):
    """The ref cannot be released; the message says why."""


def step_outputs(found: Mapping[str, Any]) -> dict[str, str]:
    """$GITHUB_OUTPUT values of a resolved tag; the stage is also the GitHub environment."""
    return {
        "version": str(found["version"]),
        "stage": str(found["stage"]),
        "environment": str(found["stage"]),
        "tag": str(found["tag"]),
        "version_tag": f"{found['artifact']}@{found['version']}",
        "commit": str(found["commit"]),
    }


def resolve(
    found: Mapping[str, Any] | None,
    ref: str,
    current: Mapping[str, str | None],
    name: str = MODEL_NAME,
) -> dict[str, str]:
    """Check what ``gto check-ref`` found for ``ref`` against the stages now assigned.

    Returns artifact, version, stage, tag and commit of a current stage assignment of ``name``;
    raises ReleaseError for anything else (not a GTO tag, a registration, another artifact,
    an assignment a newer one has superseded).
    """
    if not found:
        raise ReleaseError(
            f"{ref!r} is not a GTO tag of this repository (expected {name}#<stage>#<n>, "
            f"e.g. {name}#staging#1; is the tag fetched? `git fetch --tags`)"
        )
    if found.get("artifact") != name:
        raise ReleaseError(f"{ref!r} is a tag of artifact {found.get('artifact')!r}, not {name!r}")
    stage, version = found.get("stage"), found.get("version")
    if found.get("event") != "assignment" or not stage:
        raise ReleaseError(
            f"{ref!r} registers {version} but assigns no stage: releases deploy stage tags; "
            f"assign one with `gto assign {name} --version {version} --stage staging`"
        )
    now = current.get(str(stage))
    if now != version:
        raise ReleaseError(
            f"{ref!r} assigned {version} to {stage}, but {stage} is now "
            f"{now or 'unassigned'}: refusing to deploy a superseded assignment"
        )
    return {
        "artifact": name,
        "version": str(version),
        "stage": str(stage),
        "tag": str(found.get("tag") or ref),
        "commit": str(found["commit_hexsha"]),
    }


def notes(
    release: Release,
    metrics: EvaluateMetrics | None,
    assets: Sequence[str],
    missing: Sequence[str],
    card_problem: str | None = None,
) -> str:
    """Markdown release notes: what is deployed where, its headline metrics, its provenance.

    ``metrics`` is the commit's evaluate.json (None: it has none); ``card_problem`` says why the
    version's own card could not be made (None: it is attached).
    """
    lines = [
        f"# {release.artifact} {release.version} → {release.stage}",
        "",
        f"`{release.tag}` assigns **{release.version}** (`{release.version_tag}`, commit "
        f"`{release.commit[:12]}`) to **{release.stage}**.",
        "",
    ]
    found = [(k, metrics.metric(k)) for k in HEADLINE_METRICS] if metrics else []
    shown = [(k, v) for k, v in found if v is not None]
    if metrics and shown:
        lines += [
            f"## Metrics (evaluation month {metrics.eval_month})",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:,.0f} |" if k == "n" else f"| {k} | {v:.4f} |" for k, v in shown]
        lines.append("")
    lines += [
        "## Provenance",
        "",
        f"- model: `{release.model_path}`, DVC hash `{release.model_md5}`",
        f"- data: DVC hash `{release.data_md5 or 'unknown'}`",
        f"- MLflow training run: `{release.mlflow_run_id or 'not logged'}`",
        f"- reproduce: `git checkout {release.version_tag} && dvc pull {release.model_path}`",
        f"- signature: {signature_line(release)}",
        "",
    ]
    if assets:
        lines += ["## Attached", "", *[f"- `{a}`" for a in assets], ""]
    if missing:
        lines += [
            "Not found at this commit, so not attached: " + ", ".join(f"`{m}`" for m in missing),
            "",
        ]
    if card_problem:
        lines += [f"No model card of {release.version_tag}: {card_problem}", ""]
    return "\n".join(lines)


def signature_line(release: Release) -> str:
    """Who signed the released model, for the notes and the card."""
    if release.signature is not None:
        return signing.SignatureInfo.model_validate(release.signature).line()
    return f"none: released unsigned by override ({release.unsigned_override})"


def refusal(release: Release, problem: str, expected: signing.Expected | None) -> str:
    """The one line that stops a release: model hash, version, the problem, what was expected."""
    wanted = expected.describe() if expected else "a configured signer"
    line = f"model {release.model_md5} ({release.version_tag}): {problem}; expected {wanted}"
    if problem.startswith("no signature"):
        line += (
            "; a version promoted before signing existed is released only with "
            "--allow-unsigned REASON"
        )
    return line


def verify_model(
    release: Release,
    model_dir: Path,
    signature: Path,
    expected: signing.Expected | None,
    allow_unsigned: str | None,
) -> Release:
    """``release`` with its signer filled in once ``model_dir`` verifies against ``signature``.

    No signature: ReleaseError, or with ``allow_unsigned`` (the operator's reason) the release
    marked as overridden and a warning printed. Any other problem: ReleaseError, always.
    """
    if expected is None:
        raise ReleaseError(
            refusal(
                release,
                f"no signer is expected: set {signing.PUBKEY_ENV} or {signing.IDENTITY_ENV} "
                "(README: Signed models)",
                None,
            )
        )
    try:
        info = signing.verify(model_dir, signature, expected)
    except signing.UnsignedError:
        if not (allow_unsigned or "").strip():
            raise ReleaseError(
                refusal(release, "no signature in the DVC remote", expected)
            ) from None
        print(
            f"warning: releasing model {release.model_md5} ({release.version_tag}) UNSIGNED "
            f"by override: {allow_unsigned}",
            file=sys.stderr,
        )
        gitops.step_summary(
            f"> **Unsigned model released by override**: `{release.model_md5}` "
            f"({release.version_tag}): {allow_unsigned}\n"
        )
        return release.model_copy(update={"unsigned_override": str(allow_unsigned).strip()})
    except signing.SignatureError as exc:
        raise ReleaseError(refusal(release, str(exc), expected)) from None
    return release.model_copy(update={"signature": info.model_dump()})


def asset_paths(paths: Paths, model_path: str) -> list[str]:
    """Repository paths a release attaches when they exist at the commit."""
    return [
        paths.cards.as_posix(),
        paths.evaluation.as_posix(),
        paths.backtest.as_posix(),
        paths.slices.as_posix(),
        (paths.drift / DRIFT_JSON).as_posix(),
        f"{paths.report.as_posix()}/report.md",
        f"{paths.report.as_posix()}/report.html",
        f"{model_path}/{model_io.METADATA_FILE}",
    ]


# ---------------------------------------------------------------- I/O edge


def write_version_card(
    params: Any, release: Release, dest: Path, files: artifacts.RevisionFiles | None = None
) -> tuple[str | None, str | None]:
    """Render the card of ``release.version`` from its commit's outputs (via DVC) into ``dest``.

    Returns (file name, None), or (None, why) when that commit's outputs cannot make a card (e.g.
    a version older than the card stage): the release still deploys, its notes say why.
    ``files``: the commit's files when the caller has them open (:meth:`artifacts.At.files`).
    """
    try:
        markdown = card.version_card(
            params,
            release.version,
            release.commit,
            release.commit,
            signature_line(release),
            release.mlflow_run_id,
            find_run=False,
            files=files,
        )
    except (card.CardError, DataFileError) as exc:
        return None, str(exc)
    path = dest / card.card_path(params, release.version).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown, encoding="utf-8")
    return path.name, None


def build(
    ref: str,
    out: Path,
    expected: signing.Expected | None = None,
    allow_unsigned: str | None = None,
) -> Release:
    """Resolve ``ref``, materialise its model, check its signature, gather assets into ``out``.

    The signature is checked before the DVC hash, so a model swapped in the remote is refused
    by its signature (sha256 of every file) whatever md5 it claims. Nothing of a refused
    release is left in ``out``.
    """
    params = load_params()
    found = resolve(gitops.check_ref(ref), ref, gitops.stages(MODEL_NAME))
    with artifacts.At(found["commit"]) as at:  # one DVC index of the commit for all it gives
        return _build(params, found, at, out, expected, allow_unsigned)


def _build(
    params: Params,
    found: Mapping[str, Any],
    at: artifacts.At,
    out: Path,
    expected: signing.Expected | None,
    allow_unsigned: str | None,
) -> Release:
    """:func:`build` once the commit's DVC view ``at`` is open."""
    recorded = at.recorded(MODEL_NAME)
    if out.exists():
        shutil.rmtree(out)
    try:
        release = _verified_model(found, recorded, at, out, expected, allow_unsigned)
    except (ReleaseError, artifacts.ArtifactError, DataFileError):
        shutil.rmtree(out, ignore_errors=True)
        raise
    # /version of the deployed service reads these (model.json holds no run id or commit); the
    # sidecar is beside the model directory, outside what was signed and hashed.
    model_io.write_provenance(
        out / "model",
        model_io.Provenance(
            sha256=model_io.read_metadata(out / "model").sha256,
            git_commit=release.commit,
            mlflow_run_id=release.mlflow_run_id,
        ),
    )
    paths = asset_paths(params.paths, recorded.path)
    attached, missing = at.copy_files(paths, out / "assets")
    signature = out / SIGNATURE_DIR / SIGNATURE_FILE
    if signature.is_file():  # anyone can check it: `model_signing verify` (README)
        shutil.copyfile(signature, out / "assets" / f"{release.version_tag}.sig")
        attached = sorted({*attached, f"{release.version_tag}.sig"})
    # After the fetch: the version card made now wins over a same-named one committed earlier.
    version_card, card_problem = write_version_card(params, release, out / "assets", at.files())
    if version_card is None:
        print(f"warning: no model card of {release.version_tag}: {card_problem}", file=sys.stderr)
    else:
        attached = sorted({*attached, version_card})
    evaluate_json = out / "assets" / params.paths.evaluation.name
    metrics = EvaluateMetrics.read(evaluate_json) if evaluate_json.is_file() else None
    release.write(out / RELEASE_FILE)
    (out / "notes.md").write_text(
        notes(release, metrics, attached, missing, card_problem), encoding="utf-8"
    )
    return release


def _verified_model(
    found: Mapping[str, Any],
    recorded: artifacts.Recorded,
    at: artifacts.At,
    out: Path,
    expected: signing.Expected | None,
    allow_unsigned: str | None,
) -> Release:
    """Download the model and its signature into ``out``; verify the signature, then the hash."""
    model_dir = at.download(recorded, out / "model")
    signature = out / SIGNATURE_DIR / SIGNATURE_FILE
    signature.parent.mkdir(parents=True, exist_ok=True)
    artifacts.fetch_signature(MODEL_NAME, recorded.md5, signature)
    release = Release(
        **found,
        version_tag=f"{MODEL_NAME}@{found['version']}",
        model_path=recorded.path,
        model_md5=recorded.md5,
    )
    release = verify_model(release, model_dir, signature, expected, allow_unsigned)
    artifacts.check_hash(recorded, model_dir)
    metadata = model_io.read_metadata(model_dir)
    return release.model_copy(
        update={
            "data_md5": metadata.data_md5,
            "mlflow_run_id": tracking.find_run(metadata.sha256),  # tagged by train
        }
    )


def verify_release_dir(
    out: Path, expected: signing.Expected | None, allow_unsigned: str | None
) -> Release:
    """What ``flightdelay deploy`` checks before it starts anything: the release in ``out``, its
    model verified against its signature again (the directory may have changed since)."""
    release = load_release(out)
    return verify_model(
        release, out / "model", out / SIGNATURE_DIR / SIGNATURE_FILE, expected, allow_unsigned
    )


def load_release(out: Path = DEFAULT_OUT) -> Release:
    """The Release that ``flightdelay release`` wrote into ``out``."""
    return Release.read(out / RELEASE_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flightdelay release",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ref", required=True, help=f"a stage tag, e.g. {MODEL_NAME}#prod#3")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--allow-unsigned",
        metavar="REASON",
        help="release a model that has no signature (a version promoted before signing "
        "existed); the reason is logged in the job summary, the notes and release.json",
    )
    parser.add_argument(
        "--resolve-only",
        action="store_true",
        help="only check the tag and print/output its stage and version (no DVC, no files)",
    )
    args = parser.parse_args(argv)
    try:
        if args.resolve_only:
            found = resolve(gitops.check_ref(args.ref), args.ref, gitops.stages(MODEL_NAME))
            gitops.github_output(step_outputs(found))
            print(
                f"release: {found['tag']} assigns {found['version']} to {found['stage']} "
                f"(commit {found['commit'][:12]})"
            )
            return 0
        release = build(args.ref, args.out, signing.expected_from_env(), args.allow_unsigned)
    except (
        ReleaseError,
        artifacts.ArtifactError,
        gitops.GitOpsError,
        ParamsError,
        DataFileError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        gitops.step_summary(f"### Release of `{args.ref}` refused\n\n{exc}\n")
        return 1
    gitops.github_output(step_outputs(release.to_json()))
    gitops.step_summary((args.out / "notes.md").read_text(encoding="utf-8"))
    print(
        f"release: {release.tag} = {release.artifact} {release.version} at "
        f"{release.commit[:12]}, model {release.model_md5} verified, signature: "
        f"{signature_line(release)} -> {args.out}"
    )
    return 0
