"""``aios plugins``: the installed components, and the index of plugins that can be installed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aios_core import __version__
from aios_core.cli._app import EXIT_FAILED, EXIT_USAGE, fail, index_option, main, read_index
from aios_core.vocabulary import CORE_DISTRIBUTION, KINDS, canonical_name


@main.group()
def plugins() -> None:
    """Plugin components: the installed ones, and the index of those that can be installed."""


@plugins.command("list")
@click.option("--kind", type=click.Choice(KINDS))
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
    from aios_core import catalog
    from aios_core.cli._display import parameter_table, print_index_entry
    from aios_core.plugins import PluginError, discover, load_component
    from aios_core.settings import SettingsError
    from aios_core.terminal import make_console

    try:
        index = catalog.read_index(index_location)
    except (catalog.CatalogError, SettingsError) as error:
        if index_location:
            fail(str(error), EXIT_USAGE)
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
        fail(f"no installed component or distribution named '{name}'{where}; "
             f"see aios plugins list and aios plugins search", EXIT_USAGE)
    console = make_console()
    for plugin in listed:
        print_index_entry(console, plugin, index)
    for entry in entries:
        console.print(f"[bold]{entry.kind} {entry.name}[/]  {entry.distribution} {entry.version}  "
                      f"requires {CORE_DISTRIBUTION}{entry.core_range or ' (no range declared)'}  "
                      f"status: {entry.problem or 'ok'}")
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
        console.print(f"  tasks: {list(cls.tasks)}")
        if cls.Params.model_fields:
            console.print(parameter_table(cls.Params))


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


@plugins.command("search")
@click.argument("text", required=False)
@click.option("--kind", help="Only plugins providing a component of this kind.", type=click.Choice(KINDS))
@click.option("--tier", type=click.Choice(["first-party", "reviewed", "community"]))
@click.option("--status", type=click.Choice(["active", "deprecated", "withdrawn"]))
@index_option
def plugins_search(text: str | None, kind: str | None, tier: str | None, status: str | None,
                   index_location: str | None) -> None:
    """Plugins in the index matching TEXT (name, summary, tags, component names); imports nothing."""
    from importlib import metadata

    from rich.table import Table

    from aios_core.terminal import make_console

    index = read_index(index_location)
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
    for column in ("name", "components", "tier", "status", f"{CORE_DISTRIBUTION} {__version__}", "installed"):
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
            fail(f"no index to fetch: give --index PATH_OR_URL, or set index in the [plugins] table of "
                 f"{config_path()} (or AIOS_INDEX)", EXIT_USAGE)
        path, index = update_cache(location)
    except (CatalogError, SettingsError) as error:
        fail(str(error), EXIT_USAGE)
    click.echo(f"cached {len(index.plugins)} plugins from {location} in {path}")


def _need_terminal_or_yes(action: str, yes: bool) -> None:
    """Checked before any work: without a terminal to ask on, only --yes goes ahead."""
    if not yes and not sys.stdin.isatty():
        fail(f"{action} asks for confirmation, but standard input is not a terminal; pass --yes to go ahead",
             EXIT_USAGE)


@plugins.command("install")
@click.argument("request", metavar="NAME[==VERSION]")
@click.option("--allow-unlisted", is_flag=True, help="Install a plugin the index does not list (unreviewed).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Run every check and show what would change; install nothing.")
@index_option
def plugins_install(request: str, allow_unlisted: bool, yes: bool, dry_run: bool, index_location: str | None) -> None:
    """Install a plugin with pip, checked against the index and the allow/block lists, then verify it loads.

    Refuses blocked, unlisted, withdrawn and incompatible plugins and wheels whose sha256
    differs from the index's; warns on unreviewed versions. A plugin the index lists no
    release of is built from its recorded source (or this AIOS checkout), never taken by name.
    Exit 2: refused; 1: a check or pip failed, or the installed plugin does not load.
    """
    import tempfile

    from rich.table import Table

    from aios_core import installer
    from aios_core.settings import SettingsError, load_settings
    from aios_core.terminal import make_console

    index = read_index(index_location)
    try:
        plan = installer.plan_install(request, index, load_settings(), allow_unlisted=allow_unlisted)
    except (installer.InstallRefused, SettingsError) as error:
        fail(str(error), EXIT_USAGE)
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
        except installer.InstallRefused as error:  # pip would take a first-party dependency by name
            fail(str(error), EXIT_USAGE)
        except installer.InstallFailed as error:
            fail(str(error), EXIT_FAILED)
    _verify_installed(plan.distribution, plan.version)


def _verify_installed(distribution: str, version: str | None) -> None:
    """Step 7 of install: a fresh interpreter imports and checks each component; exit 1 if any fails."""
    from packaging.version import Version

    from aios_core import installer

    try:
        found, components = installer.verify(distribution)
    except installer.InstallFailed as error:
        fail(str(error), EXIT_FAILED)
    if found is None or (version and Version(found) != Version(version)):
        fail(f"pip reported success, but {distribution} {version or ''} is not what is installed "
             f"(found: {found or 'nothing'})", EXIT_FAILED)
    click.echo(f"installed {distribution} {found}")
    if not components:
        fail(f"{distribution} {found} provides no aios components (no entry points in the aios.* groups); "
             f"remove it with aios plugins uninstall or pip uninstall {distribution}", EXIT_FAILED)
    for label, problem in components:
        click.echo(f"{'ok  ' if problem is None else 'FAIL'}  {label}" + (f"\n      {problem}" if problem else ""))
    if any(problem for _, problem in components):
        fail(f"{distribution} is installed, but some of its components cannot be used; "
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
        fail(str(error), EXIT_USAGE)
    click.echo(f"{distribution} {version} provides: {', '.join(components)}")
    if not yes:
        click.confirm(f"Uninstall {distribution} {version}?", abort=True)
    try:
        installer.uninstall(distribution)
    except installer.InstallFailed as error:
        fail(str(error), EXIT_FAILED)
    click.echo(f"uninstalled {distribution} {version}")


@plugins.command("outdated")
@index_option
def plugins_outdated(index_location: str | None) -> None:
    """Installed plugin distributions against the index's newest reviewed releases (imports nothing)."""
    from rich.table import Table

    from aios_core.installer import outdated
    from aios_core.terminal import make_console

    index = read_index(index_location)
    rows = outdated(index)
    if not rows:
        click.echo("no plugin distributions installed")
        return
    table = Table("distribution", "installed", "newest reviewed", "status")
    for row in rows:
        table.add_row(row.distribution, row.installed, row.newest or "", row.status)
    make_console().print(table)
    click.echo(f"index: {index.source}")
