"""Values a stack refuses: lax numbers, NaN, empty sections, seeds out of range, look-alike names; in plain words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import Field
from support import STACK, refusal, stack_problems, write_stack

from aios_core import Params
from aios_core.components import TrainingParams
from aios_core.stack import load_stack, read_stack_file


# ---------------------------------------------------------------- numbers: no lax coercion
@pytest.mark.parametrize("value", ["yes", "true", "on", "True"])
def test_a_boolean_is_not_an_epoch_count(tmp_path: Path, value: str) -> None:
    found = stack_problems(tmp_path, STACK.replace("epochs: 2", f"epochs: {value}"))
    assert found == [":11: trainer.epochs: found true (a boolean), expected an integer"]


@pytest.mark.parametrize("value, shown", [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan"), ("1.0e+400", "inf"),
                                          ("1.0e400", "'1.0e400'"), ("'nan'", "'nan'")])
def test_a_learning_rate_must_be_finite(tmp_path: Path, value: str, shown: str) -> None:
    found = stack_problems(tmp_path, STACK.replace("epochs: 2", f"epochs: 2\n  learning_rate: {value}"))
    assert found == [f":12: trainer.learning_rate: found {shown}, expected a finite number"]


def test_a_float_is_not_a_thread_count(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("seed: 1", "seed: 1\nthreads: 1.0"))
    assert found == [":3: threads: found 1.0, expected an integer"]


def test_a_boolean_in_a_list_of_integers(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK + "evaluate:\n  batch_sizes: [1, true]\n")
    assert found == [":16: evaluate.batch_sizes.1: found true (a boolean), expected an integer"]


def test_a_float_in_a_list_of_integers(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("architecture: cnn", "architecture: cnn\n  hidden_units: [64, 32.0]"))
    assert found == [":9: model.hidden_units.1: found 32.0, expected an integer"]


def test_a_boolean_is_not_a_gate(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK + "evaluate:\n  min_accuracy: true\n")
    assert found == [":16: evaluate.min_accuracy: found true (a boolean), expected a number"]


def test_a_fractional_string_is_not_an_integer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_TEST_EPOCHS", "2.0")
    found = stack_problems(tmp_path, STACK.replace("epochs: 2", "epochs: ${AIOS_TEST_EPOCHS}"))
    assert found == [":11: trainer.epochs: found '2.0', expected an integer"]


def test_integers_from_environment_variables_still_convert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_TEST_RATE", "0.01")
    stack = write_stack(tmp_path, STACK.replace(
        "epochs: 2", 'epochs: "${AIOS_TEST_EPOCHS:-20}"\n  learning_rate: ${AIOS_TEST_RATE}'))
    trainer = load_stack(stack).components["trainer"].params
    assert (trainer.epochs, trainer.learning_rate) == (20, 0.01)


def test_the_default_stacks_epochs_line_still_works() -> None:
    from aios_core.stack import DEFAULT_STACK

    assert 'epochs: ${AIOS_EPOCHS:-20}' in DEFAULT_STACK.read_text()
    assert read_stack_file(DEFAULT_STACK).settings.name == "digits-torch"


def test_lax_numbers_and_other_problems_are_all_listed_in_file_order(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("epochs: 2", "epochs: yes\n  batch_size: 0\n  optimzer: sgd"))
    assert [line.split(": ")[1] for line in found] == ["trainer.epochs", "trainer.batch_size", "trainer.optimzer"]


class _Everything(Params):
    count: int = 1
    rate: float = 0.1
    flag: bool = False
    maybe: int | None = None
    sizes: list[int] = Field(default_factory=list)
    weights: dict[str, float] = Field(default_factory=dict)
    pair: tuple[int, float] = (1, 1.0)
    either: int | str = 1


@pytest.mark.parametrize("field, value, loc, expected", [
    ("count", True, ("count",), "Input should be an integer"),
    ("count", 3.0, ("count",), "Input should be an integer"),
    ("rate", False, ("rate",), "Input should be a number"),
    ("flag", 1, ("flag",), "Input should be a boolean (true or false)"),
    ("maybe", True, ("maybe",), "Input should be an integer"),
    ("sizes", [1, 2.0], ("sizes", 1), "Input should be an integer"),
    ("weights", {"a": True}, ("weights", "a"), "Input should be a number"),
    ("pair", [True, 1.0], ("pair", 0), "Input should be an integer"),
    ("either", True, ("either",), "Input should be an integer"),
    ("rate", float("nan"), ("rate",), "Input should be a finite number"),
    ("weights", {"a": float("inf")}, ("weights", "a"), "Input should be a finite number"),
])
def test_every_plugins_params_refuse_lax_numbers(field: str, value: object, loc: tuple, expected: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        _Everything.model_validate({field: value})
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [(loc, expected)]


@pytest.mark.parametrize("data", [{"count": "7"}, {"rate": 2}, {"flag": "yes"}, {"maybe": None}, {"either": "x"},
                                  {"sizes": ["3"]}, {"weights": {"a": 1}}])
def test_plain_values_and_strings_still_convert(data: dict) -> None:
    _Everything.model_validate(data)


def test_the_shared_training_params_refuse_a_boolean_epoch_count() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TrainingParams.model_validate({"epochs": True})
    assert TrainingParams.model_validate({"epochs": "3"}).epochs == 3


# ---------------------------------------------------------------- empty sections
@pytest.mark.parametrize("section", ["trainer", "tuner", "deployer", "evaluate", "compressors", "monitors"])
def test_an_empty_optional_section_counts_as_omitted(tmp_path: Path, section: str) -> None:
    stack = tmp_path / "stack.yaml"
    text = STACK.replace("trainer:\n  plugin: torch\n  epochs: 2\n", "") if section == "trainer" else STACK
    text = text.replace("compressors:\n  - plugin: onnx-quant\n    mode: static\n", "")
    stack.write_text(text + f"{section}:\n  # nothing here yet\n")
    loaded = load_stack(stack)
    assert loaded.components["trainer"].name == "torch"
    assert [loaded.components[role].name for role in loaded.roles("monitors")] == ["console", "jsonl"]
    assert loaded.roles("compressors") == []


@pytest.mark.parametrize("section, selector, line", [("data", "plugin", 3), ("model", "framework", 6)])
def test_an_empty_required_section_says_what_it_needs(tmp_path: Path, section: str, selector: str, line: int) -> None:
    text = re.sub(rf"^{section}:\n(  .*\n)+", f"{section}:\n  # todo\n", STACK, flags=re.MULTILINE)
    found = stack_problems(tmp_path, text)
    assert found == [f":{line}: {section}: empty section; expected {selector}: NAME and its parameters"]


def test_an_empty_list_item_says_what_it_needs(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK + "monitors:\n  - plugin: console\n  -\n")
    assert found == [":17: monitors.1: empty item; expected plugin: NAME and its parameters"]


def test_a_section_that_is_not_a_mapping_names_no_class(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("data:\n  plugin: sklearn\n  dataset: digits\n", "data: sklearn\n"))
    assert found == [":3: data: found 'sklearn', expected a mapping"]


# ---------------------------------------------------------------- seed
@pytest.mark.parametrize("seed", [2**32, 2**64, 10**30])
def test_a_seed_beyond_what_numpy_and_tensorflow_accept(tmp_path: Path, seed: int) -> None:
    found = stack_problems(tmp_path, STACK.replace("seed: 1", f"seed: {seed}"))
    assert found == [f":2: seed: found {seed}, expected less than or equal to 4294967295"]


def test_the_largest_seed_is_fine(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, STACK.replace("seed: 1", f"seed: {2**32 - 1}"))
    assert read_stack_file(stack).settings.seed == 2**32 - 1


# ---------------------------------------------------------------- look-alike (non-ASCII) names
def test_a_cyrillic_letter_in_a_framework_name_is_named(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("framework: torch", "framework: t\u043erch"))
    assert found == [":7: model.framework: found 't\u043erch': no framework named 't\u043erch' is installed; it contains "
                     + "non-ASCII characters: U+043E CYRILLIC SMALL LETTER O at position 2 (component names are ASCII); "
                     + "did you mean 'torch'?"]


@pytest.mark.parametrize("old, new, path", [
    ("plugin: sklearn", "plugin: sk\u217cearn", "data.plugin"),  # SMALL ROMAN NUMERAL FIFTY
    ("plugin: torch", "plugin: torc\u04bb", "trainer.plugin"),
    ("plugin: onnx-quant", "plugin: onnx\u2010quant", "compressors.0.plugin"),  # HYPHEN, not hyphen-minus
])
def test_every_component_selector_names_non_ascii_characters(tmp_path: Path, old: str, new: str, path: str) -> None:
    found = stack_problems(tmp_path, STACK.replace(old, new))
    assert len(found) == 1 and f" {path}: " in found[0]
    assert "it contains non-ASCII characters: U+" in found[0]


def test_a_look_alike_value_names_its_characters(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("mode: static", "mode: st\u0430tic"))
    assert found == [":14: compressors.0.mode: found 'st\u0430tic', expected 'dynamic', 'static' or 'auto'; "
                     + "it contains non-ASCII characters: U+0430 CYRILLIC SMALL LETTER A at position 3"]


def test_a_look_alike_stack_name_names_its_characters(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("name: digits", "name: dig\u0456ts"))
    assert found[0].endswith("; it contains non-ASCII characters: U+0456 CYRILLIC SMALL LETTER "
                             "BYELORUSSIAN-UKRAINIAN I at position 4")


def test_a_look_alike_field_name_names_its_characters(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("epochs: 2", "ep\u043echs: 2"))
    assert found[0].startswith(":11: trainer.ep\u043echs: unknown field; expected one of: epochs,")
    assert found[0].endswith("; it contains non-ASCII characters: U+043E CYRILLIC SMALL LETTER O at position 3; "
                             "did you mean 'epochs'?")


def test_a_look_alike_environment_variable_name_is_named(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK.replace("epochs: 2", "epochs: ${AIOS_EP\u041eCHS:-2}"))
    assert found == [":11: trainer.epochs: found '${AIOS_EP\u041eCHS:-2}', expected ${VAR} or ${VAR:-default} with VAR "
                     + "of ASCII letters, digits and _; it contains non-ASCII characters: U+041E CYRILLIC CAPITAL "
                     + "LETTER O at position 10"]


# ---------------------------------------------------------------- plain words, one line
_PYTHON_WORDS = re.compile(r"\ba (str|int|float|bool|dict|NoneType)\b|NoneType|\b(None|True|False)\b|"
                           r"Section\b|StackFile|EvaluateSettings|Params\b|instance of|dictionary")


@pytest.mark.parametrize("old, new", [
    ("name: digits", "name: ~"), ("name: digits", "name: [a]"), ("seed: 1", "seed: true"), ("seed: 1", "seed: ~"),
    ("data:\n  plugin: sklearn\n  dataset: digits\n", "data: [sklearn]\n"), ("epochs: 2", "epochs: ~"),
    ("epochs: 2", "epochs: {a: 1}"), ("mode: static", "mode: false"), ("  - plugin: onnx-quant", "  - 5"),
    ("  - plugin: onnx-quant", "  - plugin: ~"), ("architecture: cnn", "architecture: cnn\n  dropout: no"),
])
def test_messages_use_yaml_words_not_python_names(tmp_path: Path, old: str, new: str) -> None:
    found = stack_problems(tmp_path, STACK.replace(old, new))
    assert found and not [line for line in found if _PYTHON_WORDS.search(line)], found


def test_a_line_break_in_a_key_stays_on_one_line(tmp_path: Path) -> None:
    found = stack_problems(tmp_path, STACK + '"a\\nb": 1\n')
    assert found[0].startswith(":15: a\\nb: unknown field") and "\n" not in found[0]


# ---------------------------------------------------------------- through the CLI
def test_cli_a_boolean_epoch_count(tmp_path: Path) -> None:
    assert refusal(tmp_path, STACK.replace("epochs: 2", "epochs: yes"), run=True) == (
        ":11: trainer.epochs: found true (a boolean), expected an integer")


def test_cli_an_infinite_learning_rate(tmp_path: Path) -> None:
    assert refusal(tmp_path, STACK.replace("epochs: 2", "epochs: 2\n  learning_rate: .inf"), run=True) == (
        ":12: trainer.learning_rate: found inf, expected a finite number")


def test_cli_a_look_alike_name(tmp_path: Path) -> None:
    assert "U+043E CYRILLIC SMALL LETTER O at position 2" in refusal(
        tmp_path, STACK.replace("framework: torch", "framework: t\u043erch"), run=True)


def test_cli_a_seed_out_of_range(tmp_path: Path) -> None:
    assert refusal(tmp_path, STACK.replace("seed: 1", "seed: 4294967296"), run=True) == (
        ":2: seed: found 4294967296, expected less than or equal to 4294967295")


def test_cli_an_empty_data_section(tmp_path: Path) -> None:
    assert refusal(tmp_path, STACK.replace("  plugin: sklearn\n  dataset: digits\n", ""), run=True) == (
        ":3: data: empty section; expected plugin: NAME and its parameters")
