"""``python -m aios_serve PATH...``: the aios-serve command."""

from aios_serve.server import main

raise SystemExit(main())
