"""``--set`` problems are blamed on ``--set``, never on a line of the file, whatever the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import STACK, refusal, stack_problems, write_stack

from aios_core.stack import load_stack


def override_problems(tmp_path: Path, *overrides: str, content: str = STACK) -> list[str]:
    return stack_problems(tmp_path, content, *overrides)


@pytest.mark.parametrize("override, expected", [
    ("trainr.epochs=3", "--set: trainr: unknown field; expected one of: name, description, seed, threads, data, model, "
                        + "trainer, tuner, compressors, evaluate, deployer, monitors, orchestrator; did you mean 'trainer'?"),
    ("trainer.epochs=yes", "--set: trainer.epochs: found true (a boolean), expected an integer"),
    ("trainer.epochs=zero", "--set: trainer.epochs: found 'zero', expected a valid integer, unable to parse string as "
                            + "an integer"),
    ("trainer.learning_rate=.nan", "--set: trainer.learning_rate: found nan, expected a finite number"),
    ("threads=2.0", "--set: threads: found 2.0, expected an integer"),
    ("seed=4294967296", "--set: seed: found 4294967296, expected less than or equal to 4294967295"),
    ("compressors.3.mode=dynamic", "--set: compressors.3.mode: found item 3, expected an item of compressors from 0 to 0"),
    ("compressors.1=x", "--set: compressors.1: found item 1, expected an item of compressors from 0 to 0"),
    ("compressors.mode=dynamic", "--set: compressors.mode: found item mode, expected an item of compressors from 0 to 0"),
    ("monitors.0.plugin=console", "--set: monitors.0.plugin: found item 0, expected an item, but monitors is empty"),
    ("name.first=x", "--set: name.first: found 'digits' at name, expected a section to set a field in"),
    ("tuner.trials=3", "--set: tuner.plugin: required field is missing"),
    ("model.hidden_units=[64, 0]", "--set: model.hidden_units.1: found 0, expected greater than 0"),
    ("model.options={a: 1, a: 2}", "--set: model.options: found 'a' a second time (first on line 1), expected each field "
                                   + "once"),
    ("data={}", "--set: data.plugin: required field is missing"),
    ("data=", "--set: data: found '', expected a mapping"),
    ("model.framework=t\u043erch", "--set: model.framework: found 't\u043erch': no framework named 't\u043erch' is "
                                   + "installed; it contains non-ASCII characters: U+043E CYRILLIC SMALL LETTER O at "
                                   + "position 2 (component names are ASCII); did you mean 'torch'?"),
])
def test_a_set_problem_is_blamed_on_set(tmp_path: Path, override: str, expected: str) -> None:
    assert override_problems(tmp_path, override) == [expected]


def test_an_unknown_field_in_a_component_section(tmp_path: Path) -> None:
    found = override_problems(tmp_path, "trainer.epoch=3")
    assert len(found) == 1
    assert found[0].startswith("--set: trainer.epoch: unknown field; expected one of: epochs,")
    assert found[0].endswith("did you mean 'epochs'?")


def test_an_unknown_field_in_a_list_item(tmp_path: Path) -> None:
    found = override_problems(tmp_path, "compressors.0.mdoe=dynamic")
    assert found[0].startswith("--set: compressors.0.mdoe: unknown field") and "did you mean 'mode'?" in found[0]


def test_a_section_created_by_set_is_blamed_on_set_even_when_the_file_is_empty_there(tmp_path: Path) -> None:
    content = STACK + "deployer:\n  # later\n"
    assert override_problems(tmp_path, "deployer.port=0", content=content) == [
        "--set: deployer.plugin: required field is missing"]


def test_an_unknown_component_from_set_is_blamed_on_set(tmp_path: Path) -> None:
    found = override_problems(tmp_path, "trainer.plugin=troch")
    assert len(found) == 1
    assert found[0].startswith("--set: trainer.plugin: found 'troch': no trainer named 'troch' is installed")


def test_file_problems_keep_their_lines_next_to_set_problems(tmp_path: Path) -> None:
    found = override_problems(tmp_path, "trainer.epochs=0", content=STACK.replace("mode: static", "mode: fast"))
    assert found[0] == "--set: trainer.epochs: found 0, expected greater than or equal to 1"
    assert found[1].endswith(":14: compressors.0.mode: found 'fast', expected 'dynamic', 'static' or 'auto'")


def test_set_still_overrides(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, STACK + "tuner:\n")
    loaded = load_stack(stack, ["trainer.epochs=7", "compressors.0=plugin: onnx-quant", "model.hidden_units=[32, 16]",
                                "description=not: yaml: here"])
    assert loaded.resolved["trainer"]["epochs"] == 7
    assert loaded.resolved["model"]["hidden_units"] == [32, 16]
    assert loaded.settings.description == "not: yaml: here"


def test_a_malformed_set(tmp_path: Path) -> None:
    assert override_problems(tmp_path, "trainer..epochs=3") == [
        "--set: trainer..epochs=3: expected FIELD.PATH=VALUE, e.g. --set trainer.epochs=3"]


@pytest.mark.parametrize("override", ["trainr.epochs=3", "compressors.4.mode=dynamic", "trainer.epochs=yes"])
def test_cli_set_problems_name_the_option(tmp_path: Path, override: str) -> None:
    assert refusal(tmp_path, STACK, "--set", override, run=True).startswith("error: --set: ")
