"""The ``aios`` group and what its commands share: --debug, exit codes, failing, common options."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from aios_core import HOOK_API_VERSION, __version__
from aios_core.vocabulary import CORE_DISTRIBUTION

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def debug_enabled() -> bool:
    """--debug was given, or AIOS_DEBUG is set (and not 0)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug")) or os.environ.get("AIOS_DEBUG", "") not in ("", "0")


def fail(lines: str | list[str], code: int) -> NoReturn:
    """Print one line per problem to stderr and exit; re-raise instead with --debug."""
    if debug_enabled() and sys.exc_info()[0] is not None:
        raise
    for line in [lines] if isinstance(lines, str) else lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def runs_root(runs_dir: str | None) -> Path:
    """Where runs live: --runs-dir, else $AIOS_RUNS_DIR, else ./runs."""
    return Path(runs_dir or os.environ.get("AIOS_RUNS_DIR") or "runs")


def read_index(location: str | None) -> Any:
    """The index for a command (``--index`` or the resolution order); a bad one is a usage error."""
    from aios_core import catalog
    from aios_core.settings import SettingsError

    try:
        return catalog.read_index(location)
    except (catalog.CatalogError, SettingsError) as error:
        fail(str(error), EXIT_USAGE)


runs_dir_option = click.option("--runs-dir", metavar="DIR", help="Where runs live (default: $AIOS_RUNS_DIR or ./runs).")
set_option = click.option("--set", "overrides", multiple=True, metavar="FIELD.PATH=VALUE",
                          help="Override a stack field, e.g. --set trainer.epochs=3 (repeatable).")
stack_argument = click.argument("stack", required=False, type=click.Path())
"""STACK, a plain path (the stack reader reports a directory in one line, not click's usage block); none: the
bundled digits stack."""

_Command = TypeVar("_Command", bound=Callable[..., Any])


def stack_options(*, runs_dir: bool) -> Callable[[_Command], _Command]:
    """STACK and ``--set`` (and ``--runs-dir`` for a command that writes runs), declared once for ``aios run`` and
    ``aios pipeline compile|run``, so both read a stack the same way."""

    def declare(command: _Command) -> _Command:
        command = runs_dir_option(command) if runs_dir else command
        return stack_argument(set_option(command))

    return declare


def load_stack_or_fail(path: str, overrides: tuple[str, ...] = (), locked: bool = False) -> Any:
    """The stack at ``path`` with ``overrides``, loaded and checked; its problems, one line each, exit 2."""
    from aios_core.stack import StackError, load_stack

    try:
        return load_stack(path, overrides, locked=locked)
    except StackError as error:
        fail([str(p) for p in error.problems], EXIT_USAGE)


index_option = click.option("--index", "index_location", metavar="PATH_OR_URL",
                            help="The plugin index to read (default: the plugins.index setting or $AIOS_INDEX, "
                                 "then the cache aios plugins update-index wrote, then the bundled snapshot).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version",
                      message=f"{CORE_DISTRIBUTION} %(version)s (hook API {HOOK_API_VERSION})")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """AIOS: an ML stack in one YAML file, every part a plugin.

    \b
    aios run                      run the bundled default stack (digits -> CNN -> ONNX -> int8)
    aios run STACK.yaml           run a stack
    aios plugins list             the installed components, by kind
    aios runs show RUN            what a run did
    """
