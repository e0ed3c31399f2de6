"""Stage ``card``: the model card, generated from the pipeline's outputs, never written by hand.

Sections follow "Model Cards for Model Reporting" (Mitchell et al., 2019): model details,
intended use, factors, metrics, evaluation data, training data, quantitative analyses, ethical
considerations, caveats and recommendations. Every number comes from a pipeline output:
model.json (provenance, threshold, training months), evaluate/backtest/slices/importance.json,
drift.json, predictions.parquet (percentile-bootstrap intervals) and data.dvc (rows per batch).

``flightdelay card`` writes the card of the working tree (``${paths.cards}/flight-delay.md``, the
``card`` stage, committed to git); ``--version vX.Y.Z`` writes ``<model>@vX.Y.Z.md`` (called when a
version is registered or released; ``--rev`` reads the outputs of another git revision through
DVC). The card records, in a comment, the hashes of the outputs it was made from; ``--check``
fails when they no longer match dvc.lock, so a stale card cannot be merged
(:mod:`flightdelay.pipeline.card_check`, which also diffs two cards for a reviewer).

The stage gathers (:mod:`~flightdelay.pipeline.card_inputs`), formats
(:mod:`~flightdelay.pipeline.card_view`) and fills ``templates/card.md.j2``, which holds the words.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightdelay.core.io import DataFileError
from flightdelay.core.templates import markdown_environment
from flightdelay.pipeline.card_check import card_diff, check
from flightdelay.pipeline.card_inputs import (
    CardError,
    CardInputs,
    CardSpec,
    card_path,
    load_inputs,
    open_revision,
    provenance,
)
from flightdelay.pipeline.card_view import build_view

if TYPE_CHECKING:
    import jinja2

    from flightdelay.core.artifacts import RevisionFiles

#: The sections of Mitchell et al. (2019), in order.
SECTIONS: tuple[str, ...] = (
    "Model details",
    "Intended use",
    "Factors",
    "Metrics",
    "Evaluation data",
    "Training data",
    "Quantitative analyses",
    "Ethical considerations",
    "Caveats and recommendations",
)
VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


@cache
def environment() -> jinja2.Environment:
    return markdown_environment(cell=lambda value: str(value).replace("|", "\\|"))


def render_card(inputs: CardInputs, spec: CardSpec) -> str:
    """The card as Markdown (deterministic: the same inputs give the same bytes)."""
    text = environment().get_template("card.md.j2").render(v=build_view(inputs, spec))
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def version_card(
    params: Any,
    version: str,
    rev: str | None,
    commit: str | None,
    signature: str | None = None,
    mlflow_run_id: str | None = None,
    *,
    find_run: bool = True,
    files: RevisionFiles | None = None,
) -> str:
    """The card of registered ``version`` from the outputs of ``rev`` (None: the work tree) with
    its provenance: the one place a version's card is made (``card --version`` and the release).
    ``find_run``: the MLflow run is the one tracking tags with the model's sha256, else
    ``mlflow_run_id`` as given (the release records its own). ``files``: ``rev``'s files when
    the caller has them open already (the release's :class:`~flightdelay.core.artifacts.At`)."""
    files = files or open_revision(rev)
    inputs = load_inputs(params, files, files.lock() if rev else None)
    trained, found_run = provenance(inputs, rev or "HEAD", find_run=find_run)
    run_id = found_run if find_run else mlflow_run_id
    return render_card(inputs, CardSpec.of(params, version, commit, signature, trained, run_id))


def _git_show(rev: str, path: Path) -> str:
    from flightdelay.core import gitops

    try:
        return gitops.show_at(rev, path.as_posix())
    except gitops.GitOpsError as exc:
        raise CardError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    from flightdelay.core.params import ParamsError, load_params

    parser = argparse.ArgumentParser(
        prog="flightdelay card",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--version", help="write the card of a registered version, e.g. v1.2.0")
    mode.add_argument("--check", action="store_true", help="fail if the card is stale")
    mode.add_argument("--diff", metavar="REV", help="print what changed since the card at REV")
    parser.add_argument("--rev", help="with --version: read the outputs of this git revision")
    parser.add_argument("--commit", help="with --version: the registered commit (default: HEAD)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        if args.check:
            reasons = check(params)
            for reason in reasons:
                print(f"stale model card: {reason}", file=sys.stderr)
            if not reasons:
                print(f"{card_path(params)} is up to date with dvc.lock")
            return 1 if reasons else 0
        if args.diff:
            path = card_path(params)
            new = path.read_text() if path.is_file() else ""
            print(card_diff(_git_show(args.diff, path), new), end="")
            return 0
        if (args.rev or args.commit) and not args.version:
            raise CardError("--rev and --commit go with --version")
        if args.version and not VERSION.match(args.version):
            raise CardError(f"version {args.version!r} is not of the form vX.Y.Z")
        if args.version:
            commit = args.commit
            if commit is None:
                from flightdelay.core.gitops import GitOpsError, commit_of

                try:  # the commit, not an annotated GTO tag's own hash
                    commit = commit_of(args.rev or "HEAD")
                except GitOpsError:
                    commit = None
            markdown = version_card(params, args.version, args.rev, commit)
        else:
            inputs = load_inputs(params, open_revision(None), None)
            markdown = render_card(inputs, CardSpec.of(params, None, None))
    except (ParamsError, DataFileError, CardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = card_path(params, args.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown)
    print(f"card: {path} ({len(markdown.splitlines())} lines)")
    return 0
