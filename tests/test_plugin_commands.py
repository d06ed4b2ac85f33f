"""Commands a distribution adds to ``aios`` through the ``aios.commands`` entry-point group."""

from __future__ import annotations

from pathlib import Path

from support import aios_env, make_distribution, run_aios

HELLO = """
import click

@click.command()
@click.argument("who", default="world")
def hello(who):
    '''Say hello (a test plugin's command).'''
    click.echo(f"hello {who}")

not_a_command = 42
"""


def _site(tmp_path: Path, entries: dict[str, str]) -> Path:
    return make_distribution(tmp_path / "site", "aios-hello", {"aios.commands": entries}, modules={"aios_hello": HELLO})


def test_a_distribution_adds_a_command(tmp_path: Path) -> None:
    env = aios_env(_site(tmp_path, {"hello": "aios_hello:hello"}))
    result = run_aios("hello", "AIOS", env=env)
    assert (result.returncode, result.stdout) == (0, "hello AIOS\n")
    listing = run_aios("--help", env=env)
    assert "hello" in listing.stdout and "Say hello" in listing.stdout


def test_a_kernel_command_wins_over_a_plugin_of_the_same_name(tmp_path: Path) -> None:
    result = run_aios("validate", "--help", env=aios_env(_site(tmp_path, {"validate": "aios_hello:hello"})))
    assert result.returncode == 0 and "Check STACK without running it" in result.stdout


def test_a_broken_command_is_named_and_skipped(tmp_path: Path) -> None:
    env = aios_env(_site(tmp_path, {"gone": "aios_missing:command", "number": "aios_hello:not_a_command"}))
    result = run_aios("--help", env=env)
    assert result.returncode == 0
    assert "warning: command 'gone' (aios_missing:command) failed to import: ModuleNotFoundError" in result.stderr
    result = run_aios("number", env=env)
    assert result.returncode == 2 and "No such command 'number'" in result.stderr
