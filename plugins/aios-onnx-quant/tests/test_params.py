"""Parameters: documented defaults, and bad values rejected with messages naming the field."""

from __future__ import annotations

import pytest
from aios_onnx_quant import OnnxQuantCompressor
from pydantic import ValidationError


def test_defaults() -> None:
    params = OnnxQuantCompressor.Params()
    assert params.model_dump() == {
        "mode": "auto", "calibration_samples": 256, "calibration_method": "minmax", "per_channel": False,
        "max_accuracy_drop": 0.01, "max_metric_drop": None, "latency_runs": 200, "min_size_reduction": 0.5,
    }
    assert OnnxQuantCompressor().params == params


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mode", "fast", "Input should be 'dynamic', 'static' or 'auto'"),
    ("calibration_method", "kl", "Input should be 'minmax', 'entropy' or 'percentile'"),
    ("calibration_samples", 0, "Input should be greater than 0"),
    ("max_accuracy_drop", 1.5, "Input should be less than or equal to 1"),
    ("max_accuracy_drop", -0.1, "Input should be greater than or equal to 0"),
    ("latency_runs", 0, "Input should be greater than 0"),
    ("per_channel", "sometimes", "Input should be a valid boolean"),
    ("min_size_reduction", 1.5, "Input should be less than or equal to 1"),
])
def test_bad_values_are_rejected_naming_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OnnxQuantCompressor.Params(**{field: value})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert message in str(caught.value)


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match=r"bits\n  Extra inputs are not permitted"):
        OnnxQuantCompressor.Params(bits=4)
