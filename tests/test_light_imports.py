"""The kernel stays light: the CLI's help and plugin listing import no ML library and no plugin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import aios_env

HEAVY = ("torch", "tensorflow", "ray", "onnxruntime", "onnx", "sklearn", "pandas", "matplotlib", "kfp", "kubernetes",
         "aios_torch", "aios_data", "aios_onnx_quant")


@pytest.mark.parametrize("argv", [["--help"], ["plugins", "list"], ["--version"]])
def test_cli_leaves_heavy_modules_unimported(argv: list[str]) -> None:
    code = (
        "import sys, json\n"
        "from aios_core.cli import main\n"
        f"try:\n    main({argv!r}, prog_name='aios')\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=aios_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_import_aios_core_is_light() -> None:
    code = f"import sys, json, aios_core; print(json.dumps([m for m in {HEAVY + ('pydantic', 'numpy')!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], env=aios_env(), capture_output=True, text=True)
    assert json.loads(result.stdout) == []
