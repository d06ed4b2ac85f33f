"""Auto mode's rule: the fastest variant within ``max_accuracy_drop`` of fp32, else the most accurate."""

from __future__ import annotations

import logging

import pytest
from aios_onnx_quant._quantization import choose_variant

LOG = logging.getLogger("aios.run.choice-test")


def _variants(fp32: float, static: tuple[float, float], dynamic: tuple[float, float]) -> dict:
    figures = lambda accuracy, latency: {"size_bytes": 1, "val_accuracy": accuracy, "latency_ms_b1": latency}  # noqa: E731
    return {"fp32": figures(fp32, 1.0), "static": figures(*static), "dynamic": figures(*dynamic)}


def test_the_fastest_qualifying_variant_wins() -> None:
    assert choose_variant(_variants(0.98, (0.975, 0.5), (0.98, 2.0)), 0.01, LOG) == "static"


def test_a_faster_variant_that_loses_too_much_accuracy_is_passed_over() -> None:
    assert choose_variant(_variants(0.98, (0.95, 0.5), (0.98, 2.0)), 0.01, LOG) == "dynamic"


def test_a_drop_of_exactly_the_limit_qualifies() -> None:
    assert choose_variant(_variants(0.98, (0.97, 0.5), (0.98, 2.0)), 0.01, LOG) == "static"


def test_when_none_qualifies_the_most_accurate_is_kept_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert choose_variant(_variants(0.98, (0.90, 0.5), (0.95, 2.0)), 0.01, LOG) == "dynamic"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "max_accuracy_drop=0.01" in record.getMessage()


def test_a_single_variant_is_kept_even_when_it_does_not_qualify() -> None:
    variants = _variants(0.98, (0.90, 0.5), (0.0, 0.0))
    del variants["dynamic"]
    assert choose_variant(variants, 0.01, LOG) == "static"
