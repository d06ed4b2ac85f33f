"""The contract of a command a distribution adds to ``aios`` (entry-point group ``aios.commands``).

An orchestrator plugin (aios-kubeflow's ``aios pipeline``) adds its commands this way.
Subclass and name the command::

    class TestPipelineCommand(CommandContract):
        @pytest.fixture
        def command_name(self):
            return "pipeline"

The checks: the entry point exists and loads a click command; ``aios NAME --help``
works through the kernel's CLI; ``aios --help`` lists it; importing it (and listing
plugins) imports no heavy library (``heavy_modules``: the kit's list, plus the
command's own libraries, e.g. ``("kfp",)``, in ``command_libraries``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, ClassVar

import pytest

from aios_core.testing._harness import HEAVY_MODULES, fail
from aios_core.vocabulary import COMMAND_GROUP

_IMPORT_PROBE = """\
import json, sys
from importlib.metadata import entry_points
from click.testing import CliRunner
from aios_core.cli import main
name, heavy = sys.argv[1], json.loads(sys.argv[2])
report = {}
CliRunner().invoke(main, ["plugins", "list"], catch_exceptions=False)
report["plugins list"] = sorted(m for m in heavy if m in sys.modules)
next(e for e in entry_points(group="%s") if e.name == name).load()
report["import"] = sorted(m for m in heavy if m in sys.modules)
result = CliRunner().invoke(main, ["--help"], catch_exceptions=False)
report["aios --help"] = sorted(m for m in heavy if m in sys.modules)
report["listed"] = name in result.output
print(json.dumps(report))
""" % COMMAND_GROUP


class CommandContract:
    """Checks for a command in the ``aios.commands`` entry-point group."""

    heavy_modules: ClassVar[tuple[str, ...]] = HEAVY_MODULES
    command_libraries: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    def command_name(self, request: pytest.FixtureRequest) -> str:
        fail(f"{request.cls.__name__} must provide a `command_name` fixture returning the command's entry-point "
             f"name (its key under [project.entry-points.\"{COMMAND_GROUP}\"]), e.g.\n\n"
             "    @pytest.fixture\n    def command_name(self):\n        return \"pipeline\"\n")

    @pytest.fixture
    def command(self, command_name: str) -> Any:
        import click
        from importlib.metadata import entry_points

        found = [entry for entry in entry_points(group=COMMAND_GROUP) if entry.name == command_name]
        if not found:
            fail(f"no command '{command_name}' is registered: add it under [project.entry-points.\"{COMMAND_GROUP}\"] "
                 "in pyproject.toml and reinstall the distribution")
        value = found[0].load()
        if not isinstance(value, click.Command):
            fail(f"{found[0].value} is {type(value).__name__}, not a click command or group")
        return value

    def test_loads_a_click_command(self, command: Any) -> None:
        assert command is not None

    def test_help_runs_through_the_aios_command(self, command_name: str, command: Any) -> None:
        from click.testing import CliRunner

        from aios_core.cli import main

        result = CliRunner().invoke(main, [command_name, "--help"])
        if result.exit_code != 0:
            fail(f"aios {command_name} --help exited {result.exit_code}: {result.output}")
        assert "Usage: " in result.output

    def test_listing_and_importing_it_stay_light(self, command_name: str, command: Any) -> None:
        heavy = [*self.heavy_modules, *self.command_libraries]
        result = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, command_name, json.dumps(heavy)],
                                capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            fail(f"importing the command in a fresh interpreter failed:\n{result.stderr[-3000:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        for stage, what in (("plugins list", "`aios plugins list`"), ("import", f"importing the '{command_name}' command"),
                            ("aios --help", "`aios --help`")):
            if report[stage]:
                fail(f"{what} imported {', '.join(report[stage])}; import them inside the command functions "
                     "that use them")
        if not report["listed"]:
            fail(f"aios --help does not list '{command_name}'")
