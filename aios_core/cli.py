"""The ``aios`` command line.

Start-up is kept cheap: this module imports only click; each command imports what it
needs, so ``aios --help`` and ``aios plugins list`` load no plugin and no ML library.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from aios_core import HOOK_API_VERSION, __version__

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _debug(ctx: click.Context | None = None) -> bool:
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug")) or os.environ.get("AIOS_DEBUG", "") not in ("", "0")


def _fail(lines: str | list[str], code: int) -> NoReturn:
    """Print one line per problem to stderr and exit; re-raise instead with --debug."""
    if _debug() and sys.exc_info()[0] is not None:
        raise
    for line in [lines] if isinstance(lines, str) else lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _runs_root(runs_dir: str | None) -> Path:
    return Path(runs_dir or os.environ.get("AIOS_RUNS_DIR") or "runs")


runs_dir_option = click.option("--runs-dir", metavar="DIR", help="Where runs live (default: $AIOS_RUNS_DIR or ./runs).")
set_option = click.option("--set", "overrides", multiple=True, metavar="FIELD.PATH=VALUE",
                          help="Override a stack field, e.g. --set trainer.epochs=3 (repeatable).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message=f"aios-core %(version)s (hook API {HOOK_API_VERSION})")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """AIOS: an ML stack in one YAML file, every part a plugin.

    \b
    aios run                      run the bundled default stack (digits -> CNN -> ONNX -> int8)
    aios run STACK.yaml           run a stack
    aios plugins list             the installed components, by kind
    aios runs show RUN            what a run did
    """


# ---------------------------------------------------------------- stacks
def _load(path: str, overrides: tuple[str, ...], locked: bool = False) -> Any:
    from aios_core.stack import StackError, load_stack

    try:
        return load_stack(path, overrides, locked=locked)
    except StackError as error:
        _fail([str(p) for p in error.problems], EXIT_USAGE)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _execute(stack_run: Any) -> None:
    import signal

    from aios_core.runner import RunFailed, RunInterrupted

    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: state saved, resumable

    for warning in stack_run.stack.skipped:
        click.echo(f"warning: skipped monitor: {warning}", err=True)
    try:
        stack_run.execute()
    except RunFailed as error:
        _fail(f"{error} (details: {error.run_dir / 'run.log'})", EXIT_FAILED)
    except RunInterrupted as error:
        _fail(str(error), EXIT_INTERRUPTED)


@main.command()
@click.argument("stack", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option("--lock", "lock_file", type=click.Path(dir_okay=False), help="Reproduce a run from its stack.lock.yaml.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue an interrupted run.")
@click.option("--serve", is_flag=True, help="Keep the deployed model serving after the run.")
@runs_dir_option
def run(stack: str | None, overrides: tuple[str, ...], lock_file: str | None, resume_dir: str | None,
        serve: bool, runs_dir: str | None) -> None:
    """Run STACK (default: the bundled digits stack): data, tune, train, export, compress, evaluate, deploy."""
    from aios_core.context import RunOptions
    from aios_core.runner import resume_run, start_run
    from aios_core.stack import DEFAULT_STACK

    options = RunOptions(serve=serve, debug=_debug())
    if resume_dir:
        if stack or lock_file or overrides:
            _fail("--resume continues a run as it was locked; give no STACK, --lock or --set with it", EXIT_USAGE)
        from aios_core.rundir import RunDirectory
        from aios_core.stack import StackError

        try:
            stack_run = resume_run(RunDirectory.open(resume_dir), options)
        except (ValueError, StackError) as error:
            _fail(str(error).splitlines(), EXIT_USAGE)
    else:
        if stack and lock_file:
            _fail("give either STACK or --lock, not both", EXIT_USAGE)
        loaded = _load(lock_file or stack or str(DEFAULT_STACK), overrides, locked=bool(lock_file))
        if serve and loaded.role("deployer") is None:
            _fail(f"--serve keeps the deployed model serving, but {loaded.source} has no deployer section", EXIT_USAGE)
        stack_run = start_run(loaded, _runs_root(runs_dir), options)
    _execute(stack_run)


@main.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@set_option
def validate(stack: str, overrides: tuple[str, ...]) -> None:
    """Check STACK without running it: fields, plugins, parameters, and that the components fit."""
    loaded = _load(stack, overrides)
    for warning in loaded.skipped:
        click.echo(f"warning: skipped monitor: {warning}", err=True)
    roles = ", ".join(f"{role}={component.name}" for role, component in loaded.components.items())
    click.echo(f"{stack}: ok ({roles})")


@main.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
def schema(output: str | None) -> None:
    """Print a JSON Schema for stack files, with the parameters of the installed components."""
    import json

    from aios_core.atomic import write_text
    from aios_core.stack import stack_json_schema

    text = json.dumps(stack_json_schema(), indent=2) + "\n"
    if output:
        write_text(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------- plugins
@main.group()
def plugins() -> None:
    """Installed plugin components."""


@plugins.command("list")
@click.option("--kind", type=click.Choice(["framework", "datastore", "trainer", "tuner", "compressor", "deployer", "monitor"]))
def plugins_list(kind: str | None) -> None:
    """The installed components by kind, read from package metadata (nothing is imported)."""
    from aios_core.plugins import discover

    entries = [e for e in discover() if kind in (None, e.kind)]
    if not entries:
        click.echo("no components installed" + (f" of kind {kind}" if kind else ""))
        return
    # Plain columns rather than a table library: this command's start-up time is benchmarked.
    rows = [("KIND", "NAME", "DISTRIBUTION", "VERSION", "STATUS")]
    rows += [(e.kind, e.name, e.distribution, e.version, e.problem or "ok") for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])


@plugins.command("info")
@click.argument("name")
@click.option("--kind", help="The kind, when NAME is a component of several kinds.")
def plugins_info(name: str, kind: str | None) -> None:
    """A component's distribution, compatibility, capabilities and parameters (imports it)."""
    import json

    from rich.table import Table

    from aios_core.plugins import PluginError, canonical_name, discover, load_component
    from aios_core.terminal import make_console

    entries = [e for e in discover() if (e.name == name or e.distribution == canonical_name(name))
               and kind in (None, e.kind)]
    if not entries:
        _fail(f"no installed component or distribution named '{name}'; see aios plugins list", EXIT_USAGE)
    console = make_console()
    for entry in entries:
        console.print(f"[bold]{entry.kind} {entry.name}[/]  {entry.distribution} {entry.version}  "
                      f"requires aios-core{entry.core_range or ' (no range declared)'}  status: {entry.problem or 'ok'}")
        console.print(f"  entry point: {entry.value}")
        try:
            cls = load_component(entry)
        except PluginError as error:
            console.print(f"  [red]{error}[/]")
            continue
        if cls.__doc__:
            console.print(f"  {cls.__doc__.strip().splitlines()[0]}")
        for key, value in cls.capabilities().items():
            console.print(f"  {key}: {value}")
        table = Table("parameter", "type", "default", "description", title_justify="left")
        for field_name, info in cls.Params.model_fields.items():
            default = "required" if info.is_required() else info.get_default(call_default_factory=True)
            default = default if isinstance(default, str) else json.dumps(
                default.model_dump() if hasattr(default, "model_dump") else default, default=str)
            annotation = str(info.annotation).replace("typing.", "")
            annotation = getattr(info.annotation, "__name__", annotation) if "[" not in annotation else annotation
            table.add_row(field_name, annotation, default, info.description or "")
        if cls.Params.model_fields:
            console.print(table)


@plugins.command("doctor")
def plugins_doctor() -> None:
    """Import and check every installed component; exit 1 if any cannot be used."""
    from aios_core.plugins import check_component, discover

    problems = 0
    for entry in discover():
        problem = entry.problem or check_component(entry)
        problems += problem is not None
        click.echo(f"{'ok  ' if problem is None else 'FAIL'}  {entry.kind:<10} {entry.name:<14} "
                   f"{entry.distribution} {entry.version}" + (f"\n      {problem}" if problem else ""))
    click.echo(f"{len(discover()) - problems} ok, {problems} with problems")
    if problems:
        sys.exit(EXIT_FAILED)


# ---------------------------------------------------------------- runs
@main.group()
def runs() -> None:
    """Run directories: list and inspect."""


@runs.command("list")
@runs_dir_option
def runs_list(runs_dir: str | None) -> None:
    """Every run under the runs directory, newest first."""
    from rich.table import Table

    from aios_core.rundir import list_runs
    from aios_core.terminal import make_console

    root = _runs_root(runs_dir)
    found = list_runs(root)
    if not found:
        click.echo(f"no runs under {root}")
        return
    table = Table("run", "status", "started", "test accuracy", "final model")
    for run_dir in found:
        state = run_dir.read_state()
        evaluation = state.get("phases", {}).get("evaluate", {})
        accuracy = evaluation.get("test_accuracy")
        table.add_row(run_dir.name, state.get("status", "?"), state.get("started", ""),
                      f"{accuracy:.4f}" if accuracy is not None else "", evaluation.get("final", ""))
    make_console().print(table)


@runs.command("show")
@click.argument("run_ref", metavar="RUN")
@runs_dir_option
def runs_show(run_ref: str, runs_dir: str | None) -> None:
    """A run's stack, per-epoch metrics, artifacts (with sizes) and evaluation."""
    from rich.syntax import Syntax
    from rich.table import Table

    from aios_core.rundir import resolve_run
    from aios_core.terminal import make_console

    try:
        run_dir = resolve_run(_runs_root(runs_dir), run_ref)
    except ValueError as error:
        _fail(str(error), EXIT_USAGE)
    console = make_console()
    state = run_dir.read_state()
    console.print(f"[bold]{run_dir.name}[/]  status: {state.get('status')}  started: {state.get('started')}  "
                  f"finished: {state.get('finished', '')}  resumed: {state.get('resumed', 0)} time(s)")
    console.print(Syntax(run_dir.lock_file.read_text(encoding="utf-8"), "yaml", theme="ansi_dark"))

    epochs = [r for r in run_dir.read_metrics() if r.get("event") == "epoch" and r.get("phase") == "train"]
    if epochs:
        keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds") if k in epochs[0]]
        table = Table("epoch", *keys, title="metrics", title_justify="left")
        for record in epochs:
            table.add_row(str(record["epoch"]), *(f"{record[k]:.4g}" for k in keys))
        console.print(table)

    artifacts = Table("artifact", "format", "size", "path", title="artifacts", title_justify="left")
    for path in sorted(p for p in run_dir.path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.parent.name in ("artifacts", "report"):
            artifacts.add_row(path.name, path.suffix.lstrip("."), f"{path.stat().st_size:,} B",
                              str(path.relative_to(run_dir.path)))
    console.print(artifacts)

    evaluation = state.get("phases", {}).get("evaluate")
    if evaluation:
        table = Table("model", "format", "size", "accuracy", *(f"b{b} p50 ms" for b in evaluation["artifacts"][0]["latency_ms"]),
                      title="evaluation (test split)", title_justify="left")
        for result in evaluation["artifacts"]:
            table.add_row(result["name"], result["format"], f"{result['size_bytes']:,} B", f"{result['accuracy']:.4f}",
                          *(f"{lat['p50']:.3f}" for lat in result["latency_ms"].values()))
        console.print(table)
        if evaluation.get("comparison"):
            console.print(f"comparison: {evaluation['comparison']}")


# ---------------------------------------------------------------- templates
def plugin_template() -> Path:
    """The cookiecutter plugin template: packaged in the wheel, or the repository's copy."""
    packaged = Path(__file__).with_name("plugin_template")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "cookiecutter-plugin"


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
        _fail("aios new plugin needs cookiecutter: pip install 'aios-core[new]'", EXIT_USAGE)
    context = {}
    for answer in answers:
        key, sep, value = answer.partition("=")
        if not sep:
            _fail(f"{answer}: expected KEY=VALUE, e.g. plugin_name=hello kinds=monitor", EXIT_USAGE)
        context[key] = value
    try:
        created = cookiecutter(str(plugin_template()), no_input=no_input, extra_context=context, output_dir=output_dir)
    except FailedHookException as error:
        _fail(f"the template refused the answers: {error}", EXIT_USAGE)
    except CookiecutterException as error:
        _fail(str(error), EXIT_USAGE)
    click.echo(f"created {created}; next steps are in {Path(created) / 'README.md'}")
