"""``python -m flightdelay``: the same CLI as the ``flightdelay`` command."""

from flightdelay.cli import main

raise SystemExit(main())
