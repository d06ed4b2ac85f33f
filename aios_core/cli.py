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


@main.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it to the network).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: a free one).")
@click.option("--deployer", "deployer_name", default="oip", show_default=True, help="The deployer whose aios_serve hook serves.")
@runs_dir_option
def serve(runs: tuple[str, ...], host: str, port: int, deployer_name: str, runs_dir: str | None) -> None:
    """Serve the final models of finished runs until Ctrl-C or SIGTERM (Open Inference Protocol with oip)."""
    import yaml

    from aios_core.plugins import PluginError, find_entry, load_component, new_plugin_manager, register
    from aios_core.rundir import resolve_run

    try:
        run_dirs = [resolve_run(_runs_root(runs_dir), ref) for ref in runs]
        component_class = load_component(find_entry("deployer", deployer_name))
    except (ValueError, PluginError) as error:
        _fail(str(error), EXIT_USAGE)
    # The first run's deployer settings (token_env, limits, ...) apply when it used this deployer.
    lock = yaml.safe_load(run_dirs[0].lock_file.read_text(encoding="utf-8")) or {}
    section = dict(lock.get("deployer") or {})
    params = {k: v for k, v in section.items() if k != "plugin"} if section.get("plugin") == deployer_name else {}
    try:
        component = component_class(component_class.Params.model_validate(params), deployer_name)
    except ValueError as error:
        _fail(f"{run_dirs[0].lock_file}: deployer: {error}", EXIT_USAGE)
    pm = new_plugin_manager()
    register(pm, component, deployer_name)
    try:
        pm.hook.aios_serve(run_dirs=[r.path for r in run_dirs], host=host, port=port)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:  # a run the deployer cannot serve: say which and why
        _fail(f"deployer '{deployer_name}': {error}", EXIT_FAILED)


# ---------------------------------------------------------------- plugins
@main.group()
def plugins() -> None:
    """Plugin components: the installed ones, and the index of those that can be installed."""


index_option = click.option("--index", "index_location", metavar="PATH_OR_URL",
                            help="The plugin index to read (default: the plugins.index setting or $AIOS_INDEX, "
                                 "then the cache aios plugins update-index wrote, then the bundled snapshot).")


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
@index_option
def plugins_info(name: str, kind: str | None, index_location: str | None) -> None:
    """A plugin's index entry (releases, compatibility, install command) and, if installed, its
    components' capabilities and parameters (imports them)."""
    import json

    from rich.table import Table

    from aios_core.catalog import CatalogError, read_index
    from aios_core.plugins import PluginError, canonical_name, discover, load_component
    from aios_core.settings import SettingsError
    from aios_core.terminal import make_console

    try:
        index = read_index(index_location)
    except (CatalogError, SettingsError) as error:
        if index_location:
            _fail(str(error), EXIT_USAGE)
        click.echo(f"warning: {error}", err=True)
        index = None
    listed = []
    if index is not None:
        found = index.find(name)
        listed = [found] if found else index.providing(kind, name)
    entries = [e for e in discover() if (e.name == name or e.distribution == canonical_name(name))
               and kind in (None, e.kind)]
    if not entries and not listed:
        where = f" or in the index {index.source}" if index else ""
        _fail(f"no installed component or distribution named '{name}'{where}; "
              f"see aios plugins list and aios plugins search", EXIT_USAGE)
    console = make_console()
    for plugin in listed:
        _print_index_entry(console, plugin, index)
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


def _read_index(location: str | None) -> Any:
    """The index for a command (``--index`` or the resolution order); a bad one is a usage error."""
    from aios_core.catalog import CatalogError, read_index
    from aios_core.settings import SettingsError

    try:
        return read_index(location)
    except (CatalogError, SettingsError) as error:
        _fail(str(error), EXIT_USAGE)


def _need_terminal_or_yes(action: str, yes: bool) -> None:
    """Checked before any work: without a terminal to ask on, only --yes goes ahead."""
    if not yes and not sys.stdin.isatty():
        _fail(f"{action} asks for confirmation, but standard input is not a terminal; pass --yes to go ahead",
              EXIT_USAGE)


def _print_index_entry(console: Any, plugin: Any, index: Any) -> None:
    """What the index says about one plugin; its strings are the index's, so they are printed without markup."""
    from importlib import metadata

    from rich.markup import escape

    status = plugin.status
    if plugin.status == "withdrawn":
        status += f": {plugin.withdrawn_reason or 'no reason given'}"
    elif plugin.deprecated_by:
        status += f": use {plugin.deprecated_by}"
    try:
        installed = metadata.version(plugin.distribution)
    except metadata.PackageNotFoundError:
        installed = "not installed"
    compatible = "incompatible with" if plugin.incompatibility() else "compatible with"
    console.print(f"[bold]{escape(plugin.distribution)}[/]  {escape(plugin.summary)}")
    lines = [("index", str(index.source)), ("status", status), ("tier", plugin.tier),
             ("aios-core", f"{plugin.aios_core or '(no range declared)'}: {compatible} the installed {__version__}"),
             ("components", plugin.kinds_text), ("repository", plugin.repository), ("license", plugin.license),
             ("maintainers", ", ".join(plugin.maintainers)), ("tags", ", ".join(plugin.tags)), ("installed", installed)]
    for key, value in lines:
        if value:
            console.print(f"  {key}: {escape(value)}")
    releases = sorted(plugin.releases, key=lambda r: _version_key(r.version), reverse=True)
    if releases:
        console.print("  releases:")
    for release in releases:
        review = "reviewed" if plugin.is_reviewed(release) else "unreviewed"
        console.print(f"    {escape(release.version)}  {review}  sha256:{release.sha256 or '(none)'}"
                      + (f"  {escape(release.wheel)}" if release.wheel else ""))
    newest = plugin.newest_release() or plugin.newest_release(reviewed_only=False)
    if plugin.status != "withdrawn" and not plugin.incompatibility():
        pin = escape(f"{plugin.distribution}=={newest.version}" if newest else plugin.distribution)
        console.print(f"  install: aios plugins install {pin}")
        if newest and newest.sha256:
            console.print(f"  with pip: {pin} --hash=sha256:{newest.sha256}  "
                          f"(a requirements line for pip install --require-hashes -r FILE)")
        else:
            console.print(f"  with pip: pip install {pin}")


def _version_key(version: str) -> Any:
    from packaging.version import Version

    return Version(version)


@plugins.command("search")
@click.argument("text", required=False)
@click.option("--kind", help="Only plugins providing a component of this kind.",
              type=click.Choice(["framework", "datastore", "trainer", "tuner", "compressor", "deployer", "monitor"]))
@click.option("--tier", type=click.Choice(["first-party", "reviewed", "community"]))
@click.option("--status", type=click.Choice(["active", "deprecated", "withdrawn"]))
@index_option
def plugins_search(text: str | None, kind: str | None, tier: str | None, status: str | None,
                   index_location: str | None) -> None:
    """Plugins in the index matching TEXT (name, summary, tags, component names); imports nothing."""
    from importlib import metadata

    from rich.table import Table

    from aios_core.terminal import make_console

    index = _read_index(index_location)
    needle = (text or "").lower()
    found = []
    for plugin in index.plugins:
        words = [plugin.name, plugin.distribution, plugin.summary, *plugin.tags,
                 *(name for names in plugin.components.values() for name in names)]
        if needle in " ".join(words).lower() and (kind is None or kind in plugin.components) \
                and tier in (None, plugin.tier) and status in (None, plugin.status):
            found.append(plugin)
    if not found:
        click.echo(f"no plugin in the index {index.source} matches")
        return
    table = Table()
    for column in ("name", "components", "tier", "status", f"aios-core {__version__}", "installed"):
        table.add_column(column, no_wrap=column != "components")
    table.add_column("summary")
    for plugin in found:
        try:
            installed = metadata.version(plugin.distribution)
        except metadata.PackageNotFoundError:
            installed = ""
        table.add_row(plugin.name, plugin.kinds_text, plugin.tier, plugin.status, plugin.compatibility_text(),
                      installed, plugin.summary)
    make_console().print(table)
    click.echo(f"index: {index.source}")


@plugins.command("update-index")
@click.option("--index", "index_location", metavar="PATH_OR_URL",
              help="Where to fetch the index from (default: the plugins.index setting or $AIOS_INDEX).")
def plugins_update_index(index_location: str | None) -> None:
    """Fetch the index (a file or an http(s) URL) into the cache that search, info and install read."""
    from aios_core.catalog import CatalogError, update_cache
    from aios_core.settings import SettingsError, config_path, load_settings

    try:
        location = index_location or load_settings().index
        if not location:
            _fail(f"no index to fetch: give --index PATH_OR_URL, or set index in the [plugins] table of "
                  f"{config_path()} (or AIOS_INDEX)", EXIT_USAGE)
        path, index = update_cache(location)
    except (CatalogError, SettingsError) as error:
        _fail(str(error), EXIT_USAGE)
    click.echo(f"cached {len(index.plugins)} plugins from {location} in {path}")


@plugins.command("install")
@click.argument("request", metavar="NAME[==VERSION]")
@click.option("--allow-unlisted", is_flag=True, help="Install a plugin the index does not list (unreviewed).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Run every check and show what would change; install nothing.")
@index_option
def plugins_install(request: str, allow_unlisted: bool, yes: bool, dry_run: bool, index_location: str | None) -> None:
    """Install a plugin with pip, checked against the index and the allow/block lists, then verify it loads.

    Refuses blocked, unlisted, withdrawn and incompatible plugins and wheels whose sha256
    differs from the index's; warns on unreviewed versions. Exit 2: refused; 1: a check
    or pip failed, or the installed plugin does not load.
    """
    import tempfile

    from rich.table import Table

    from aios_core import installer
    from aios_core.settings import SettingsError, load_settings
    from aios_core.terminal import make_console

    index = _read_index(index_location)
    try:
        plan = installer.plan_install(request, index, load_settings(), allow_unlisted=allow_unlisted)
    except (installer.InstallRefused, SettingsError) as error:
        _fail(str(error), EXIT_USAGE)
    _need_terminal_or_yes(f"aios plugins install {request}", yes or dry_run)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    with tempfile.TemporaryDirectory(prefix="aios-install-") as workdir:
        try:
            if plan.sha256:
                wheel = installer.check_wheel_hash(plan, Path(workdir))
                click.echo(f"sha256 ok: {wheel.name} is the reviewed wheel")
            changes = installer.planned_changes(plan, Path(workdir))
            if not changes:
                click.echo(f"{plan.requirement} is already installed; nothing to do")
                return
            table = Table("distribution", "version", "action", title="pip would change", title_justify="left")
            for change in changes:
                table.add_row(change.name, change.version, change.action)
            make_console().print(table)
            if dry_run:
                click.echo("dry run: nothing was installed")
                return
            if not yes:
                click.confirm(f"Install {plan.requirement}?", abort=True)
            installer.install(plan, changes, Path(workdir))
        except installer.InstallFailed as error:
            _fail(str(error), EXIT_FAILED)
    _verify_installed(plan.distribution, plan.version)


def _verify_installed(distribution: str, version: str | None) -> None:
    """Step 7 of install: a fresh interpreter imports and checks each component; exit 1 if any fails."""
    from aios_core import installer

    try:
        found, components = installer.verify(distribution)
    except installer.InstallFailed as error:
        _fail(str(error), EXIT_FAILED)
    if found is None or (version and _version_key(found) != _version_key(version)):
        _fail(f"pip reported success, but {distribution} {version or ''} is not what is installed "
              f"(found: {found or 'nothing'})", EXIT_FAILED)
    click.echo(f"installed {distribution} {found}")
    if not components:
        _fail(f"{distribution} {found} provides no aios components (no entry points in the aios.* groups); "
              f"remove it with aios plugins uninstall or pip uninstall {distribution}", EXIT_FAILED)
    for label, problem in components:
        click.echo(f"{'ok  ' if problem is None else 'FAIL'}  {label}" + (f"\n      {problem}" if problem else ""))
    if any(problem for _, problem in components):
        _fail(f"{distribution} is installed, but some of its components cannot be used; "
              f"see above, or remove it with aios plugins uninstall {distribution}", EXIT_FAILED)


@plugins.command("uninstall")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def plugins_uninstall(name: str, yes: bool) -> None:
    """Uninstall a plugin distribution with pip and check that its components are gone."""
    from aios_core import installer

    _need_terminal_or_yes(f"aios plugins uninstall {name}", yes)
    try:
        distribution, version, components = installer.uninstall_target(name)
    except installer.InstallRefused as error:
        _fail(str(error), EXIT_USAGE)
    click.echo(f"{distribution} {version} provides: {', '.join(components)}")
    if not yes:
        click.confirm(f"Uninstall {distribution} {version}?", abort=True)
    try:
        installer.uninstall(distribution)
    except installer.InstallFailed as error:
        _fail(str(error), EXIT_FAILED)
    click.echo(f"uninstalled {distribution} {version}")


@plugins.command("outdated")
@index_option
def plugins_outdated(index_location: str | None) -> None:
    """Installed plugin distributions against the index's newest reviewed releases (imports nothing)."""
    from rich.table import Table

    from aios_core.installer import outdated
    from aios_core.terminal import make_console

    index = _read_index(index_location)
    rows = outdated(index)
    if not rows:
        click.echo("no plugin distributions installed")
        return
    table = Table("distribution", "installed", "newest reviewed", "status")
    for row in rows:
        table.add_row(row.distribution, row.installed, row.newest or "", row.status)
    make_console().print(table)
    click.echo(f"index: {index.source}")


# ---------------------------------------------------------------- stack files
@main.group("stack")
def stack_group() -> None:
    """Stack files: what they need installed."""


@stack_group.command("requirements")
@click.argument("stack_file", metavar="STACK.yaml", type=click.Path(dir_okay=False))
@index_option
def stack_requirements(stack_file: str, index_location: str | None) -> None:
    """Print the distributions STACK.yaml needs, with version ranges, as pip requirements.

    Nothing is loaded, so the stack's plugins need not be installed:
    aios stack requirements STACK.yaml > requirements.txt && pip install -r requirements.txt
    """
    from aios_core.installer import stack_requirements as requirements_of
    from aios_core.stack import StackError

    index = _read_index(index_location)
    try:
        lines, notes = requirements_of(stack_file, index)
    except StackError as error:
        _fail([str(p) for p in error.problems], EXIT_USAGE)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo("\n".join(lines))


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
    import json
    import logging

    template = plugin_template()
    questions = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    context = {}
    for answer in answers:
        key, sep, value = answer.partition("=")
        if not sep:
            _fail(f"{answer}: expected KEY=VALUE, e.g. plugin_name=hello kinds=monitor", EXIT_USAGE)
        if key not in questions or key.startswith("_"):
            import difflib

            known = [q for q in questions if not q.startswith("_")]
            close = difflib.get_close_matches(key, known, n=1)
            _fail(f"{answer}: the template asks no '{key}'" + (f"; did you mean '{close[0]}'?" if close else "")
                  + f" (it asks: {', '.join(known)})", EXIT_USAGE)
        context[key] = value
    if not _debug():
        logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)  # its refusal traceback; the hook says why
    try:
        created = cookiecutter(str(template), no_input=no_input, extra_context=context, output_dir=output_dir)
    except FailedHookException as error:
        _fail(f"the template refused the answers: {error}", EXIT_USAGE)
    except (CookiecutterException, ValueError) as error:
        _fail(str(error), EXIT_USAGE)
    click.echo(f"created {created}; next steps are in {Path(created) / 'README.md'}")
