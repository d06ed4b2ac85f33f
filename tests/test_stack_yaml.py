"""YAML a stack refuses: duplicate and non-string keys, alias bombs, deep nesting, bad bytes; one line each, fast."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from support import TRAINING_STACK as STACK
from support import refusal, run_aios, stack_problems, write_stack

from aios_core.stack import StackError, read_stack_file
from aios_core.stack.yaml_file import MAX_BYTES, MAX_DEPTH, MAX_VALUES


def problems(tmp_path: Path, content: str | bytes) -> list[str]:
    """The problems ``read_stack_file`` (the YAML layer alone, no plugin loaded) reports for ``content``."""
    return stack_problems(tmp_path, content, read=read_stack_file)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefghijklmn", "bcdefghijklmno", strict=False):
        if len(lines) == levels:
            break
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- keys
def test_a_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK.replace("epochs: 2", "epochs: 2\n  epochs: 30"))
    assert found == [":12: trainer.epochs: found 'epochs' a second time (first on line 11), expected each field once"]


def test_a_duplicate_section_names_both_lines(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK + "seed: 7\n")
    assert found == [":12: seed: found 'seed' a second time (first on line 2), expected each field once"]


def test_a_quoted_and_a_plain_key_are_the_same_key(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK.replace("epochs: 2", 'epochs: 2\n  "epochs": 3'))
    assert found[0].startswith(":12: trainer.epochs: found 'epochs' a second time (first on line 11)")


def test_every_duplicate_is_listed(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK.replace("epochs: 2", "epochs: 2\n  epochs: 3") + "seed: 7\n")
    assert [line.split(":")[1] for line in found] == ["12", "13"]


@pytest.mark.parametrize("key, kind", [("1", "an integer"), ("null", "nothing (null)"), ("yes", "a boolean"),
                                       ("1.5", "a number"), ("2024-01-01", "a date")])
def test_a_key_that_is_not_a_string_names_its_line(tmp_path: Path, key: str, kind: str) -> None:
    found = problems(tmp_path, STACK.replace("  epochs: 2", f"  epochs: 2\n  {key}: x"))
    assert found == [f":12: trainer: found the key '{key}', which YAML reads as {kind}; "
                     + "expected a field name (a string); quote it if it is a name"]


@pytest.mark.parametrize("key, kind", [("[a]", "a list"), ("{a: 1}", "a mapping")])
def test_a_collection_as_key_names_its_line(tmp_path: Path, key: str, kind: str) -> None:
    found = problems(tmp_path, STACK + f"{key}: b\n")
    assert found == [f":12: found {kind} as a key; expected a field name (a string); quote it if it is a name"]


def test_a_quoted_number_is_a_field_name(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK + '"1": x\n')
    assert found[0].startswith(":12: 1: unknown field")


def test_merge_keys_still_work(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, STACK + "monitors:\n  - &console {plugin: console}\n"
                                                   "  - <<: *console\n    plugin: jsonl\n")
    assert read_stack_file(stack).data["monitors"] == [{"plugin": "console"}, {"plugin": "jsonl"}]


# ---------------------------------------------------------------- size, depth, aliases
def _timed(tmp_path: Path, content: str) -> tuple[list[str], float, int]:
    """The problems, the seconds taken and the peak memory traced (measured in a second read)."""
    start = time.perf_counter()
    found = problems(tmp_path, content)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    try:
        problems(tmp_path, content)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return found, elapsed, peak


def test_an_alias_bomb_ends_quickly_with_one_line(tmp_path: Path) -> None:
    found, elapsed, peak = _timed(tmp_path, STACK + billion_laughs())
    assert len(found) == 1
    assert f"found more than {MAX_VALUES} values (counting each alias expanded)" in found[0]
    assert found[0].startswith(":15: d: ")  # the first anchor whose expansion (9**4 values) passes the limit
    assert elapsed < 0.5 and peak < 20_000_000


def test_an_alias_bomb_inside_a_section_names_the_field(tmp_path: Path) -> None:
    nested = "".join(f"    {line}\n" for line in billion_laughs().splitlines())
    found = problems(tmp_path, STACK.replace("architecture: cnn", "architecture: cnn\n  options:\n" + nested))
    assert found[0].startswith(":13: model.options.d: found more than")


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, STACK.replace(
        "architecture: cnn", "architecture: cnn\n  hidden_units: &units [64, 32]\n  conv_channels: *units"))
    assert read_stack_file(stack).data["model"]["conv_channels"] == [64, 32]


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK + "description: &loop [*loop]\n")
    assert found == [":12: description.0: found an alias inside its own anchor, expected a finite value"]


@pytest.mark.parametrize("nesting", [
    pytest.param("[" * 100_000 + "]" * 100_000, id="flow-lists"),
    pytest.param("{a: " * 5_000 + "1" + "}" * 5_000, id="flow-mappings"),
    pytest.param("\n  " + "- " * 50_000 + "x", id="block-lists"),
])
def test_deep_nesting_ends_quickly_with_one_line(tmp_path: Path, nesting: str) -> None:
    found, elapsed, peak = _timed(tmp_path, STACK + "description: " + nesting + "\n")
    assert len(found) == 1
    assert f"found nesting deeper than {MAX_DEPTH} levels" in found[0]
    assert elapsed < 0.5 and peak < 20_000_000


def test_deep_nesting_through_aliases_is_refused(tmp_path: Path) -> None:
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [[[[*a{i - 1}]]]]\n" for i in range(1, 20))
    found = problems(tmp_path, STACK + chain)
    assert "found nesting deeper than" in found[0]


def test_too_many_values_end_quickly(tmp_path: Path) -> None:
    found, elapsed, _ = _timed(tmp_path, STACK + "description: [" + ", ".join(["1"] * 20_000) + "]\n")
    assert found == [f":12: found more than {MAX_VALUES} values (counting each alias expanded), "
                     + "expected a stack file (a few hundred)"]
    assert elapsed < 1.0


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    found, elapsed, _ = _timed(tmp_path, STACK + "description: '" + "x" * MAX_BYTES + "'\n")
    assert found == [f": found a file larger than {MAX_BYTES // 1024} kB, expected a stack file (a few kB)"]
    assert elapsed < 0.2


# ---------------------------------------------------------------- bytes and characters
def test_a_control_character_names_its_line_and_column(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK.replace("dataset: digits", "dataset: dig\x07its"))
    assert found == [":5: found the control character U+0007 at column 15, expected printable text"]


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK.replace("seed: 1", "description: caf\xe9").encode("latin-1"))
    assert found == [":2: found the byte 0xe9, which is not UTF-8; expected a UTF-8 text file"]


def test_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, b"\xef\xbb\xbf" + STACK.encode())
    assert read_stack_file(stack).settings.name == "digits"


def test_utf16_with_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, STACK.encode("utf-16"))
    assert read_stack_file(stack).settings.name == "digits"


def test_a_tab_for_indentation_says_so(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK.replace("  epochs: 2", "\tepochs: 2"))
    assert found == [":11: invalid YAML: found a tab, expected spaces (YAML indents with spaces only)"]


def test_a_second_document_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK + "---\nname: other\n")
    assert found == [":12: invalid YAML: found a second document (---), expected one stack per file"]


def test_a_python_tag_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK + "description: !!python/object/apply:os.system [ls]\n")
    assert found == [":12: invalid YAML: found the tag '!!python/object/apply:os.system', expected plain YAML values "
                     + "(no tags)"]


def test_an_impossible_date_names_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, STACK + "description: 2024-02-30\n")
    assert found == [":12: description: found '2024-02-30', which YAML reads as a date but is no valid date; "
                     + "quote it if it is text"]


@pytest.mark.parametrize("content, found", [
    ("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "an integer"), ("", "an empty file"),
    ("# only a comment\n", "an empty file"),
])
def test_a_stack_that_is_not_a_mapping(tmp_path: Path, content: str, found: str) -> None:
    assert problems(tmp_path, content) == [f":1: found {found}, expected a mapping of sections (name, data, model, ...)"]


def test_a_directory_is_not_a_stack_file(tmp_path: Path) -> None:
    with pytest.raises(StackError) as caught:
        read_stack_file(tmp_path)
    assert str(caught.value) == f"{tmp_path}: found a directory, expected a stack file (YAML)"


# ---------------------------------------------------------------- through the CLI
def test_cli_duplicate_key(tmp_path: Path) -> None:
    line = refusal(tmp_path, STACK.replace("epochs: 2", "epochs: 2\n  epochs: 30"))
    assert line == ":12: trainer.epochs: found 'epochs' a second time (first on line 11), expected each field once"


def test_cli_alias_bomb(tmp_path: Path) -> None:
    start = time.perf_counter()
    line = refusal(tmp_path, STACK + billion_laughs())
    assert "found more than" in line
    assert time.perf_counter() - start < 30  # a subprocess on a busy machine; in-process it is milliseconds


def test_cli_non_utf8(tmp_path: Path) -> None:
    assert refusal(tmp_path, b"name: caf\xe9\n").startswith(":1: found the byte 0xe9")


def test_cli_non_string_key(tmp_path: Path) -> None:
    assert refusal(tmp_path, STACK + "null: x\n").startswith(":12: found the key 'null'")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_a_directory_gets_one_line_not_a_usage_block(tmp_path: Path, command: str) -> None:
    runs = tmp_path / "runs"
    result = run_aios(command, str(tmp_path), *(["--runs-dir", str(runs)] if command == "run" else []))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path}: found a directory, expected a stack file (YAML)"
    assert not runs.exists()


def test_cli_run_of_a_refused_stack_creates_no_run_directory(tmp_path: Path) -> None:
    assert "found more than" in refusal(tmp_path, STACK + billion_laughs(), run=True)
