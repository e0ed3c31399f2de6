"""``flightdelay <command>``: one entry point; each command is a module's ``main(argv)``.

Modules are imported only when their command runs, so ``flightdelay serve`` never imports DVC,
Great Expectations or MLflow.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("flightdelay.data", "get, rebuild or extend the versioned raw data"),
    "validate": ("flightdelay.validate", "validate every batch with Great Expectations"),
    "drift": ("flightdelay.drift", "newest batch vs training data: features, label, scores"),
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
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
