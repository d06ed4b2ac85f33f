"""``python -m aios_core`` is the ``aios`` command."""

from aios_core.cli import main

main(prog_name="aios")
