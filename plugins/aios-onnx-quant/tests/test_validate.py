"""Before a run, onnx-quant says which of the packages quantization imports are missing (aios validate)."""

from __future__ import annotations

import importlib.util

import pytest
from aios_onnx_quant import OnnxQuantCompressor


def test_every_package_quantization_imports_is_found() -> None:
    assert OnnxQuantCompressor().aios_validate() == []


def test_a_missing_package_is_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sympy" else find_spec(name, *a))
    expected = ("found 'onnx-quant', which needs sympy (quantization pre-processing), not installed in this Python "
                "environment; expected them installed: pip install sympy")
    assert OnnxQuantCompressor().aios_validate() == [("plugin", expected)]
