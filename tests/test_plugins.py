"""Plugin discovery and loading with real installed distributions: isolation, compatibility, env switches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import DEFAULT_STACK, aios_env, make_distribution, run_aios

GOOD_MONITOR = """
    from aios_core import Monitor, hookimpl
    class Good(Monitor):
        '''Counts epochs.'''
        @hookimpl
        def aios_on_run_start(self, run):
            pass
"""


def _list(env: dict[str, str]) -> dict[tuple[str, str], str]:
    result = run_aios("plugins", "list", env=env)
    assert result.returncode == 0, result.stderr
    rows = [line.split(None, 4) for line in result.stdout.splitlines()[1:]]
    return {(row[0], row[1]): row[4] for row in rows}


def test_list_reads_metadata_only(site: Path) -> None:
    make_distribution(site, "aios-broken", {"aios.monitors": {"broken": "aios_broken:Monitor"}},
                      modules={"aios_broken": "raise RuntimeError('import-time side effect')\n"})
    rows = _list(aios_env(site))
    assert rows[("monitor", "broken")] == "ok"  # never imported, so nothing to report yet
    assert rows[("framework", "torch")] == "ok"
    assert rows[("monitor", "console")] == "ok"


def test_plugin_that_fails_to_import_is_reported_and_skipped(site: Path) -> None:
    make_distribution(site, "aios-broken", {"aios.monitors": {"broken": "aios_broken:Broken"}},
                      modules={"aios_broken": "import not_a_module_anywhere\n"})
    make_distribution(site, "aios-good", {"aios.monitors": {"good": "aios_good:Good"}}, modules={"aios_good": GOOD_MONITOR})
    result = run_aios("plugins", "doctor", env=aios_env(site))
    assert result.returncode == 1
    assert "FAIL  monitor    broken" in result.stdout
    assert ("monitor 'broken' (aios-broken 0.1.0) failed to import aios_broken:Broken: "
            "ModuleNotFoundError: No module named 'not_a_module_anywhere'") in result.stdout
    assert "ok    monitor    good" in result.stdout
    assert "ok    framework  torch" in result.stdout


def test_broken_monitor_in_a_stack_is_skipped_with_a_warning(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "aios-broken", {"aios.monitors": {"broken": "aios_broken:Broken"}},
                      modules={"aios_broken": "raise ImportError('needs a missing library')\n"})
    stack = tmp_path / "stack.yaml"
    stack.write_text(DEFAULT_STACK.read_text() + "  - plugin: broken\n")
    result = run_aios("validate", str(stack), env=aios_env(site))
    assert result.returncode == 0, result.stderr
    assert "warning: skipped monitor:" in result.stderr and "monitors.2.plugin: found 'broken'" in result.stderr
    strict = run_aios("validate", str(stack), env=aios_env(site, AIOS_STRICT_PLUGINS="1"))
    assert strict.returncode == 2
    assert "failed to import aios_broken:Broken: ImportError: needs a missing library" in strict.stderr


def test_incompatible_plugin_is_refused_naming_both_versions(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "aios-future", {"aios.monitors": {"future": "aios_future:Good"}},
                      requires=("aios-kernel>=9.0",), modules={"aios_future": GOOD_MONITOR})
    rows = _list(aios_env(site))
    assert rows[("monitor", "future")] == ("incompatible: aios-future requires aios-kernel>=9.0, but aios-kernel 0.1.0 "
                                           "is installed; upgrade or downgrade one of them")
    stack = tmp_path / "stack.yaml"
    stack.write_text(DEFAULT_STACK.read_text() + "  - plugin: future\n")
    result = run_aios("validate", str(stack), env=aios_env(site, AIOS_STRICT_PLUGINS="1"))
    assert result.returncode == 2
    assert "aios-future requires aios-kernel>=9.0, but aios-kernel 0.1.0 is installed" in result.stderr


def test_hooks_that_do_not_match_the_specs_are_refused(site: Path) -> None:
    make_distribution(site, "aios-mismatch", {
        "aios.monitors": {"wrong-args": "aios_mismatch:WrongArgs", "typo": "aios_mismatch:Typo",
                          "not-a-monitor": "aios_mismatch:NotAComponent"}}, modules={"aios_mismatch": """
        from aios_core import Monitor, hookimpl
        class WrongArgs(Monitor):
            @hookimpl
            def aios_on_epoch_end(self, run, epoch, loss):
                pass
        class Typo(Monitor):
            @hookimpl
            def aios_on_epoch_ended(self, run):
                pass
        class NotAComponent:
            pass
    """})
    result = run_aios("plugins", "doctor", env=aios_env(site))
    assert result.returncode == 1
    assert "monitor 'wrong-args' has a hook that does not match its spec" in result.stdout
    assert "Argument(s) {'loss'}" in result.stdout
    assert "monitor 'typo' implements hooks that aios_core.hookspecs does not define: aios_on_epoch_ended" in result.stdout
    assert "aios_mismatch:NotAComponent is not a subclass of aios_core.Monitor" in result.stdout


def test_disable_blocks_before_import(site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    make_distribution(site, "aios-noisy", {"aios.monitors": {"noisy": "aios_noisy:Good"}}, modules={
        "aios_noisy": f"open({str(marker)!r}, 'w').close()\n" + GOOD_MONITOR})
    env = aios_env(site, AIOS_DISABLE_PLUGINS="AIOS_Noisy, other")
    assert _list(env)[("monitor", "noisy")] == "disabled: blocked by AIOS_DISABLE_PLUGINS"
    stack = tmp_path / "stack.yaml"
    stack.write_text(DEFAULT_STACK.read_text() + "  - plugin: noisy\n")
    result = run_aios("validate", str(stack), env=aios_env(site, AIOS_DISABLE_PLUGINS="noisy", AIOS_STRICT_PLUGINS="1"))
    assert result.returncode == 2 and "disabled: blocked by AIOS_DISABLE_PLUGINS" in result.stderr
    run_aios("plugins", "doctor", env=env)
    assert not marker.exists()


def test_trace_prints_hook_calls(tmp_path: Path) -> None:
    code = ("from aios_core.plugins import new_plugin_manager\n"
            "pm = new_plugin_manager()\n"
            "pm.hook.aios_on_phase_start(run=None, phase='data')\n")
    result = subprocess.run([sys.executable, "-c", code], env=aios_env(AIOS_TRACE_PLUGINS="1"),
                            capture_output=True, text=True)
    assert "aios_on_phase_start" in result.stderr and "phase: data" in result.stderr


def test_info_shows_capabilities_and_parameters() -> None:
    result = run_aios("plugins", "info", "onnx-quant")
    assert result.returncode == 0, result.stderr
    assert "compressor onnx-quant" in result.stdout and "aios-onnx-quant" in result.stdout
    assert "input_formats: ['onnx']" in result.stdout and "max_accuracy_drop" in result.stdout
    assert run_aios("plugins", "info", "nothing-like-this").returncode == 2


def test_schema_includes_installed_component_parameters() -> None:
    result = run_aios("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    text = json.dumps(schema)
    for expected in ('"sklearn"', '"onnx-quant"', "max_accuracy_drop", "hidden_units", "early_stopping_patience"):
        assert expected in text
    import jsonschema

    stack = __import__("yaml").safe_load(DEFAULT_STACK.read_text().replace("${AIOS_EPOCHS:-20}", "20"))
    jsonschema.validate(stack, schema)
    stack["trainer"]["epochs"] = "many"
    try:
        jsonschema.validate(stack, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("the schema accepted trainer.epochs: many")


def test_version_and_help() -> None:
    assert run_aios("--version").stdout.strip() == "aios-kernel 0.1.0 (hook API 1)"
    assert "plugins" in run_aios("--help").stdout
