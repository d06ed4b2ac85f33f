"""The choice rule: the fastest variant within ``max_accuracy_drop`` of fp32, else the most accurate, said so;
``auto`` chooses among batch-independent variants only, and keeps fp32 when no int8 variant pays (faster beyond
the measured noise at a batch size of the stack, or ``min_size_reduction`` smaller)."""

from __future__ import annotations

import pytest
from aios_onnx_quant._quantization import BATCH_INDEPENDENT, choose_auto, choose_variant, speed_verdict, variants_for


def _variants(fp32: float, static: tuple[float, float], dynamic: tuple[float, float]) -> dict:
    figures = lambda accuracy, latency: {"size_bytes": 1, "val_accuracy": accuracy, "latency_ms_b1": latency}
    return {"fp32": figures(fp32, 1.0), "static": figures(*static), "dynamic": figures(*dynamic)}


def test_the_fastest_qualifying_variant_wins() -> None:
    assert choose_variant(_variants(0.98, (0.975, 0.5), (0.98, 2.0)), 0.01) == ("static", None)


def test_a_faster_variant_that_loses_too_much_accuracy_is_passed_over() -> None:
    assert choose_variant(_variants(0.98, (0.95, 0.5), (0.98, 2.0)), 0.01) == ("dynamic", None)


def test_a_drop_of_exactly_the_limit_qualifies() -> None:
    assert choose_variant(_variants(0.98, (0.97, 0.5), (0.98, 2.0)), 0.01) == ("static", None)


def test_when_none_qualifies_the_most_accurate_is_kept_with_a_warning() -> None:
    chosen, warning = choose_variant(_variants(0.98, (0.90, 0.5), (0.95, 2.0)), 0.01)
    assert chosen == "dynamic"
    assert warning is not None and "max_accuracy_drop=0.01" in warning and "kept the most accurate, dynamic" in warning


def test_a_single_variant_is_kept_even_when_it_does_not_qualify() -> None:
    variants = _variants(0.98, (0.90, 0.5), (0.0, 0.0))
    del variants["dynamic"]
    chosen, warning = choose_variant(variants, 0.01)
    assert chosen == "static" and warning is not None


def test_auto_builds_only_batch_independent_variants() -> None:
    assert variants_for("auto") == BATCH_INDEPENDENT == ("static",)


def test_an_explicit_mode_builds_that_variant() -> None:
    assert variants_for("static") == ("static",)
    assert variants_for("dynamic") == ("dynamic",)


def _auto(accuracy: float, size: int, ratios: dict[str, float]) -> dict:
    """fp32 (accuracy 0.98, 1000 bytes) and a static variant with per-batch latency ratios measured without noise."""
    speed = {batch: speed_verdict([ratio] * 50) for batch, ratio in ratios.items()}
    return {"fp32": {"size_bytes": 1000, "val_accuracy": 0.98, "latency_ms_b1": 1.0},
            "static": {"size_bytes": size, "val_accuracy": accuracy, "latency_ms_b1": ratios.get("1", 1.0),
                       "speed": speed}}


def test_auto_keeps_fp32_when_int8_is_slower_and_barely_smaller() -> None:
    """The issue's tiny model: int8 slower than fp32 and only 16 % smaller."""
    chosen, reason = choose_auto(_auto(0.98, 840, {"1": 1.4, "256": 1.1}), 0.01, 0.5)
    assert chosen == "fp32"
    assert reason.startswith("kept fp32, no int8 model pays: static is slower than fp32")
    assert "only 16% smaller (< min_size_reduction 50%)" in reason


def test_auto_keeps_int8_that_is_faster_at_one_batch_size() -> None:
    chosen, reason = choose_auto(_auto(0.98, 900, {"1": 1.0, "256": 0.6}), 0.01, 0.5)
    assert chosen == "static" and "faster than fp32 at batch 256" in reason


def test_auto_keeps_int8_that_ties_on_speed_but_is_half_the_size_or_less() -> None:
    chosen, reason = choose_auto(_auto(0.98, 300, {"1": 1.01, "256": 0.99}), 0.01, 0.5)
    assert chosen == "static" and "not faster than fp32 beyond the measured noise" in reason


def test_auto_keeps_fp32_when_int8_loses_too_much_accuracy_however_fast() -> None:
    chosen, reason = choose_auto(_auto(0.95, 300, {"1": 0.5}), 0.01, 0.5)
    assert chosen == "fp32" and "loses 0.0300 validation accuracy" in reason


def test_auto_says_why_when_nothing_was_quantized() -> None:
    variants = _auto(0.98, 300, {"1": 0.5})
    del variants["static"]
    chosen, reason = choose_auto(variants, 0.01, 0.5, unquantized=["static"])
    assert chosen == "fp32" and "nothing to quantize" in reason


@pytest.mark.parametrize(("ratios", "verdict"), [
    ([0.8] * 50, "faster"),
    ([1.2] * 50, "slower"),
    ([1.01] * 50, "tie"),  # within the 3 % margin
    ([0.8] * 40 + [1.2] * 10, "tie"),  # the last block disagrees: a difference that noise can explain
    ([0.9, 1.1] * 25, "tie"),  # noisy rounds: each block's median is 1.0
])
def test_a_latency_difference_counts_only_when_every_block_agrees(ratios: list[float], verdict: str) -> None:
    assert speed_verdict(ratios)["verdict"] == verdict


def test_the_speed_verdict_reports_the_median_ratio_and_the_block_medians() -> None:
    figures = speed_verdict([0.5] * 10 + [0.7] * 10 + [0.6] * 30)
    assert figures["ratio"] == 0.6 and figures["blocks"] == [0.5, 0.7, 0.6, 0.6, 0.6]


# ---------------------------------------------------------------- regression: the budget is a relative RMSE increase
def _regression(fp32_rmse: float, static_rmse: float, ratio: float = 0.5) -> dict:
    speed = {"1": speed_verdict([ratio] * 50)}
    return {"fp32": {"size_bytes": 1000, "val_rmse": fp32_rmse, "latency_ms_b1": 1.0},
            "static": {"size_bytes": 900, "val_rmse": static_rmse, "latency_ms_b1": ratio, "speed": speed}}


def test_a_regression_variant_within_the_relative_rmse_budget_qualifies() -> None:
    assert choose_variant(_regression(0.70, 0.73), 0.05) == ("static", None)  # +4.3 %


def test_a_regression_variant_beyond_the_budget_gets_a_warning_naming_max_metric_drop() -> None:
    chosen, warning = choose_variant(_regression(0.70, 0.77), 0.05)  # +10 %
    assert chosen == "static" and warning is not None
    assert "max_metric_drop=0.05 of fp32 validation rmse 0.7000" in warning


def test_auto_keeps_fp32_when_int8_raises_the_rmse_too_much_however_fast() -> None:
    chosen, reason = choose_auto(_regression(0.70, 0.77), 0.05, 0.5)
    assert chosen == "fp32" and "static raises validation RMSE by 10.00% (> max_metric_drop 0.05)" in reason


def test_auto_keeps_a_faster_int8_regressor_within_the_budget() -> None:
    chosen, reason = choose_auto(_regression(0.70, 0.71), 0.05, 0.5)
    assert chosen == "static" and "faster than fp32 at batch 1" in reason


def test_the_budget_follows_the_task() -> None:
    from aios_onnx_quant import OnnxQuantParams

    assert OnnxQuantParams().budget("regression") == 0.05
    assert OnnxQuantParams().budget("classification") == 0.01
    assert OnnxQuantParams(max_metric_drop=0.1).budget("regression") == 0.1
    assert OnnxQuantParams(max_metric_drop=0.02).budget("classification") == 0.02
