from flightdelay.cli import main

raise SystemExit(main())
