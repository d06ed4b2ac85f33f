"""The plugin stage's pure parts (scripts/plugin_suites.py): what each stage installs, and how results read."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_suites import (
    Distribution,
    MissingWheel,
    Outcome,
    first_party_needs,
    order,
    passed_tests,
    plan,
    pytest_summary,
    table,
)

KERNEL = ("pluggy>=1.5,<2", "numpy>=1.24", 'cookiecutter>=2.5; extra == "new"')


def dist(name: str, *requires: str) -> Distribution:
    return Distribution(name, Path(f"/wheels/{name.replace('-', '_')}-0.1.0-py3-none-any.whl"), requires)


@pytest.fixture
def distributions() -> dict[str, Distribution]:
    return {d.name: d for d in (
        dist("aios-kernel", *KERNEL),
        dist("aios-data", "aios-kernel>=0.1,<0.2", "pandas>=2.0", 'pytest>=8; extra == "test"',
             'aios-torch; extra == "test"'),
        dist("aios-torch", "aios-kernel>=0.1,<0.2", "torch>=2.4", 'pytest>=8; extra == "test"'),
        dist("aios-ray-train", "aios-kernel>=0.1,<0.2", "aios-torch>=0.1,<0.2", "ray[train]>=2.60,<3",
             'aios-data; extra == "test"', 'aios-serve; extra == "test"'),
        dist("aios-serve", "aios-kernel>=0.1,<0.2", "onnxruntime>=1.18", 'aios-onnx-quant; extra == "test"'),
        dist("aios-onnx-quant", "aios-kernel>=0.1,<0.2", "onnx>=1.16", "sympy>=1.12"),
    )}


def test_a_plugin_alone_needs_the_kernel_and_the_first_party_plugins_it_depends_on(distributions) -> None:
    assert first_party_needs("aios-torch", distributions) == ["aios-kernel"]
    assert first_party_needs("aios-ray-train", distributions) == ["aios-kernel", "aios-torch"]


def test_the_test_extra_adds_the_first_party_plugins_it_names_not_their_own_test_extras(distributions) -> None:
    # aios-serve's test extra names aios-onnx-quant: that is for aios-serve's tests, not these
    assert first_party_needs("aios-ray-train", distributions, ["test"]) == [
        "aios-data", "aios-kernel", "aios-serve", "aios-torch"]


def test_the_contract_stage_installs_wheels_and_the_test_tools_only(distributions) -> None:
    contract = plan("aios-ray-train", distributions).contract_install
    assert contract == ["/wheels/aios_ray_train-0.1.0-py3-none-any.whl",
                        "/wheels/aios_kernel-0.1.0-py3-none-any.whl", "/wheels/aios_torch-0.1.0-py3-none-any.whl",
                        "pytest>=8", "pytest-timeout>=2.3"]


def test_the_suite_stage_adds_the_test_extra_and_sibling_wheels_never_names(distributions) -> None:
    suite = plan("aios-ray-train", distributions).suite_install
    assert suite == ["/wheels/aios_ray_train-0.1.0-py3-none-any.whl[test]",
                     "/wheels/aios_data-0.1.0-py3-none-any.whl", "/wheels/aios_serve-0.1.0-py3-none-any.whl"]
    assert plan("aios-onnx-quant", distributions).suite_install == [
        "/wheels/aios_onnx_quant-0.1.0-py3-none-any.whl[test]"]


def test_a_first_party_name_without_a_wheel_is_refused(distributions) -> None:
    distributions["aios-data"] = dist("aios-data", "aios-kernel>=0.1", 'aios-tf; extra == "test"')
    with pytest.raises(MissingWheel, match="aios-data needs aios-tf, a first-party distribution with no wheel here"):
        plan("aios-data", distributions, first_party={"aios-tf"})


def test_pytest_summary_is_the_last_line_without_its_frame() -> None:
    output = "....\n=== short test summary info ===\nPASSED tests/test_a.py::test_x\n" \
             "============ 12 passed, 1 skipped in 83.21s (0:01:23) ============\n"
    assert pytest_summary(output) == "12 passed, 1 skipped in 83.21s (0:01:23)"
    assert pytest_summary("ImportError: no module named aios_core\n") == ""


def test_passed_tests_are_read_from_the_rA_summary_as_node_ids_of_the_rootdir() -> None:
    output = ("PASSED ../../../repo/plugins/aios-x/tests/test_contract.py::TestTrainer::test_trains[mlp-1 x::y]\n"
              "SKIPPED [1] ../../../repo/plugins/aios-x/tests/test_contract.py:20: no keras\n"
              "FAILED ../../../repo/plugins/aios-x/tests/test_contract.py::test_b - AssertionError\n"
              "PASSED ../../../repo/plugins/aios-x/tests/test_contract.py::test_a\n")
    assert passed_tests(output, Path("/tmp/work/cwd"), Path("/repo/plugins/aios-x")) == [
        "tests/test_contract.py::TestTrainer::test_trains[mlp-1 x::y]", "tests/test_contract.py::test_a"]


def test_the_heaviest_plugins_start_first_then_the_rest_by_name() -> None:
    assert order(["aios-data", "aios-zeta", "aios-torch", "aios-alpha", "aios-ray-train"]) == [
        "aios-ray-train", "aios-torch", "aios-data", "aios-alpha", "aios-zeta"]


def test_the_table_has_a_row_per_plugin_and_ok_means_both_stages_passed() -> None:
    good = Outcome("aios-torch", install_s=12.4, contract="passed (44 passed)", suite="passed (80 passed)",
                   tests_s=95.0)
    bad = Outcome("aios-onnx-quant", install_s=3, contract="FAILED (1 failed, 17 passed)")
    lines = table([good, bad]).splitlines()
    assert lines[0].split()[:3] == ["plugin", "install", "s"]
    assert lines[1].split() == ["aios-torch", "12", "passed", "(44", "passed)", "passed", "(80", "passed)", "95"]
    assert lines[2].startswith("aios-onnx-quant") and "not run" in lines[2]
    assert good.ok and not bad.ok
