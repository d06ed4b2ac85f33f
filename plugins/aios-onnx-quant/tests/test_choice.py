"""The choice rule: the fastest variant within ``max_accuracy_drop`` of fp32, else the most accurate, said so;
``auto`` chooses among batch-independent variants only."""

from __future__ import annotations

from aios_onnx_quant._quantization import BATCH_INDEPENDENT, choose_variant, variants_for


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
