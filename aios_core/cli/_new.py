"""``aios new``: projects from AIOS templates (a plugin distribution, with cookiecutter)."""

from __future__ import annotations

from pathlib import Path

import click

from aios_core.cli._app import EXIT_USAGE, debug_enabled, fail, main


def plugin_template() -> Path:
    """The cookiecutter plugin template: packaged in the wheel, or the repository's copy."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "plugin_template"
    return packaged if packaged.is_dir() else package.parent / "cookiecutter-plugin"


@main.group()
def new() -> None:
    """Create projects from AIOS templates."""


@new.command("plugin")
@click.argument("answers", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--output-dir", "-o", default=".", type=click.Path(file_okay=False), show_default=True)
@click.option("--no-input", is_flag=True, help="Use the defaults and KEY=VALUE answers without asking.")
def new_plugin(answers: tuple[str, ...], output_dir: str, no_input: bool) -> None:
    """Create a plugin distribution from the template (asks for its name, kinds and author)."""
    try:
        from cookiecutter.exceptions import CookiecutterException, FailedHookException
        from cookiecutter.main import cookiecutter
    except ImportError:
        # not "pip install aios-kernel[new]": that would look the kernel up by name on the package index
        fail("aios new plugin needs cookiecutter (the kernel's [new] extra): pip install 'cookiecutter>=2.5'",
             EXIT_USAGE)
    import json
    import logging

    template = plugin_template()
    questions = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    context = {}
    for answer in answers:
        key, sep, value = answer.partition("=")
        if not sep:
            fail(f"{answer}: expected KEY=VALUE, e.g. plugin_name=hello kinds=monitor", EXIT_USAGE)
        if key not in questions or key.startswith("_"):
            import difflib

            known = [q for q in questions if not q.startswith("_")]
            close = difflib.get_close_matches(key, known, n=1)
            fail(f"{answer}: the template asks no '{key}'" + (f"; did you mean '{close[0]}'?" if close else "")
                 + f" (it asks: {', '.join(known)})", EXIT_USAGE)
        context[key] = value
    if not debug_enabled():
        logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)  # its refusal traceback; the hook says why
    try:
        created = cookiecutter(str(template), no_input=no_input, extra_context=context, output_dir=output_dir)
    except FailedHookException as error:
        fail(f"the template refused the answers: {error}", EXIT_USAGE)
    except (CookiecutterException, ValueError) as error:
        fail(str(error), EXIT_USAGE)
    click.echo(f"created {created}; next steps are in {Path(created) / 'README.md'}")
