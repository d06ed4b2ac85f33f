"""Commands on stacks: run, validate, schema, serve, and ``stack requirements``."""

from __future__ import annotations

import sys
from typing import Any

import click

from aios_core.cli._app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    debug_enabled,
    fail,
    index_option,
    load_stack_or_fail,
    main,
    read_index,
    runs_dir_option,
    runs_root,
    set_option,
    stack_options,
)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _execute(stack_run: Any) -> None:
    import signal

    from aios_core.runner import RunFailed, RunInterrupted

    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: state saved, resumable
    # A shell starts background jobs with SIGINT ignored; Ctrl-C (kill -INT) must still stop a run.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    for warning in stack_run.stack.skipped:
        click.echo(f"warning: skipped monitor: {warning}", err=True)
    try:
        stack_run.execute()
    except RunFailed as error:
        fail(f"{error} (details: {error.run_dir / 'run.log'})", EXIT_FAILED)
    except RunInterrupted as error:
        fail(str(error), EXIT_INTERRUPTED)


@main.command()
@stack_options(runs_dir=True)
@click.option("--lock", "lock_file", type=click.Path(), help="Reproduce a run from its stack.lock.yaml.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue an interrupted run.")
@click.option("--serve", is_flag=True, help="Keep the deployed model serving after the run.")
@click.option("--phases", "phase_list", metavar="PHASE,...",
              help="Run only these phases (data, tune, train, compress-native, export, compress, evaluate, deploy); the earlier "
                   "ones must be recorded in the run directory (--resume), the later ones are left for later.")
@click.option("--run-dir", "run_dir", type=click.Path(file_okay=False),
              help="Start the run in exactly this directory (new or empty) rather than under the runs directory.")
def run(stack: str | None, overrides: tuple[str, ...], lock_file: str | None, resume_dir: str | None,
        serve: bool, phase_list: str | None, run_dir: str | None, runs_dir: str | None) -> None:
    """Run STACK (default: the bundled digits stack): data, tune, train, compress-native, export, compress, evaluate, deploy."""
    from pathlib import Path

    from aios_core.context import RunOptions
    from aios_core.runner import resume_run, start_run
    from aios_core.stack import DEFAULT_STACK

    options = RunOptions(serve=serve, debug=debug_enabled())
    phases = None if phase_list is None else [p.strip() for p in phase_list.split(",") if p.strip()]
    if phases == []:
        fail("--phases: name at least one phase, e.g. --phases data,train", EXIT_USAGE)
    if resume_dir:
        if stack or lock_file or overrides or run_dir:
            fail("--resume continues a run as it was locked; give no STACK, --lock, --set or --run-dir with it",
                 EXIT_USAGE)
        from aios_core.rundir import RunDirectory
        from aios_core.stack import StackError

        try:
            stack_run = resume_run(RunDirectory.open(resume_dir), options, phases)
        except (ValueError, StackError) as error:
            fail(str(error).splitlines(), EXIT_USAGE)
    else:
        if stack and lock_file:
            fail("give either STACK or --lock, not both", EXIT_USAGE)
        loaded = load_stack_or_fail(lock_file or stack or str(DEFAULT_STACK), overrides, locked=bool(lock_file))
        if serve and loaded.role("deployer") is None:
            fail(f"--serve keeps the deployed model serving, but {loaded.source} has no deployer section", EXIT_USAGE)
        try:
            stack_run = start_run(loaded, runs_root(runs_dir), options, phases, Path(run_dir) if run_dir else None)
        except (ValueError, FileExistsError) as error:
            fail(str(error), EXIT_USAGE)
    _execute(stack_run)


@main.command()
@click.argument("stack", type=click.Path())
@set_option
def validate(stack: str, overrides: tuple[str, ...]) -> None:
    """Check STACK without running it: fields, plugins, parameters, and that the components fit."""
    loaded = load_stack_or_fail(stack, overrides)
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


@main.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it to the network).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: a free one).")
@click.option("--deployer", "deployer_name", default="oip", show_default=True, help="The deployer whose aios_serve hook serves.")
@runs_dir_option
def serve(runs: tuple[str, ...], host: str, port: int, deployer_name: str, runs_dir: str | None) -> None:
    """Serve the final models of finished runs until Ctrl-C or SIGTERM (Open Inference Protocol with oip)."""
    from pydantic import ValidationError

    from aios_core.plugins import PluginError, build_component, find_entry, load_component, new_plugin_manager, register
    from aios_core.rundir import resolve_run

    try:
        run_dirs = [resolve_run(runs_root(runs_dir), ref) for ref in runs]
        component_class = load_component(find_entry("deployer", deployer_name))
    except (ValueError, PluginError) as error:
        fail(str(error), EXIT_USAGE)
    # The first run's deployer settings (token_env, limits, ...) apply when it used this deployer.
    section = dict(run_dirs[0].read_lock().get("deployer") or {})
    params = {k: v for k, v in section.items() if k != "plugin"} if section.get("plugin") == deployer_name else {}
    try:
        component = build_component(component_class, params, deployer_name)
    except ValidationError as error:
        fail(f"{run_dirs[0].lock_file}: deployer: {error}", EXIT_USAGE)
    pm = new_plugin_manager()
    register(pm, component, deployer_name)
    try:
        pm.hook.aios_serve(run_dirs=[r.path for r in run_dirs], host=host, port=port)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:  # a run the deployer cannot serve: say which and why
        fail(f"deployer '{deployer_name}': {error}", EXIT_FAILED)


@main.group("stack")
def stack_group() -> None:
    """Stack files: what they need installed."""


@stack_group.command("requirements")
@click.argument("stack_file", metavar="STACK.yaml", type=click.Path())
@index_option
def stack_requirements(stack_file: str, index_location: str | None) -> None:
    """Print the distributions STACK.yaml needs, with version ranges, as pip requirements.

    Nothing is loaded, so the stack's plugins need not be installed:
    aios stack requirements STACK.yaml > requirements.txt && pip install -r requirements.txt
    """
    from aios_core.installer import stack_requirements as requirements_of
    from aios_core.stack import StackError

    index = read_index(index_location)
    try:
        lines, notes = requirements_of(stack_file, index)
    except StackError as error:
        fail([str(p) for p in error.problems], EXIT_USAGE)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo("\n".join(lines))
