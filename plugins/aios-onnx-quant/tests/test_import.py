"""Importing the plugin (what plugin discovery and ``aios plugins info`` do) must stay cheap."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_plugin_loads_no_ml_library() -> None:
    code = ("import sys, aios_onnx_quant; aios_onnx_quant.OnnxQuantCompressor.capabilities(); "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_entry_point_names_the_compressor() -> None:
    from importlib.metadata import entry_points

    from aios_onnx_quant import OnnxQuantCompressor

    (entry_point,) = [ep for ep in entry_points(group="aios.compressors") if ep.name == "onnx-quant"]
    assert entry_point.load() is OnnxQuantCompressor
    assert OnnxQuantCompressor.capabilities()["input_formats"] == ["onnx"]
    assert OnnxQuantCompressor.capabilities()["output_format"] == "onnx"
