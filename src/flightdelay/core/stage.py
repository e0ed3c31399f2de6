"""The opening every stage CLI shares: ``--params``, params loaded, a known failure printed as one
``error:`` line with exit 1 (never a traceback for a problem the user can fix)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from flightdelay.core.params import Params, ParamsError, load_params

Run = Callable[[Params, argparse.Namespace], int]


def stage_main(
    name: str,
    doc: str | None,
    argv: Sequence[str] | None,
    run: Run,
    errors: tuple[type[BaseException], ...] = (),
    arguments: Callable[[argparse.ArgumentParser], Any] | None = None,
) -> int:
    """Parse ``flightdelay <name> [--params FILE] ...`` (``arguments`` adds a stage's own), load
    the params and return ``run(params, args)``; ParamsError and ``errors`` become one line on
    stderr and exit 1."""
    parser = argparse.ArgumentParser(
        prog=f"flightdelay {name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml")
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(argv)
    caught: tuple[type[BaseException], ...] = (ParamsError, *errors)
    try:
        return run(load_params(args.params), args)
    except caught as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
