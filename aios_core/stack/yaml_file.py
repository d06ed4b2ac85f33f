"""YAML as a stack reads it: PyYAML's SafeLoader, bounded, and strict about keys.

PyYAML keeps the last of two equal keys, expands aliases without limit (a few lines of
"billion laughs" become billions of values once walked) and recurses once per nesting
level. A stack is a few kilobytes, a few hundred values and a few levels deep, so the
limits below are far above any real stack and still end a hostile file in well under a
second, with one line naming the place.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from aios_core.stack.problems import Positions, Problem, StackError, kind_of

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "parse_yaml", "read_yaml"]

MAX_BYTES = 256 * 1024
"""Largest stack file read (the default stack is 1.4 kB, about 90 values, 4 levels deep)."""
MAX_VALUES = 5_000
"""Most values (mappings, lists, scalars and keys) a stack may hold, counting every alias expanded."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists, counting every alias expanded."""

_STR, _MERGE, _TIMESTAMP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge", "tag:yaml.org,2002:timestamp"
_TAG_KINDS = {"tag:yaml.org,2002:int": "an integer", "tag:yaml.org,2002:float": "a number",
              "tag:yaml.org,2002:bool": "a boolean", "tag:yaml.org,2002:null": "nothing (null)",
              "tag:yaml.org,2002:timestamp": "a date"}


class _Invalid(Exception):
    """Problems found while composing, each as (line, field path, message)."""

    def __init__(self, found: list[tuple[int, tuple, str]]) -> None:
        super().__init__(found[0][2])
        self.found = found


@functools.cache
def _loader_class() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """SafeLoader that stops composing past MAX_VALUES nodes or MAX_DEPTH levels."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = self.count = 0

        def fetch_flow_collection_start(self, token_class: Any) -> None:
            # the scanner looks ahead past every '[' that may start a key, at a cost that grows with the depth
            if self.flow_level >= MAX_DEPTH:
                raise _Invalid([(self.get_mark().line + 1, (), _too_big(deep=True))])
            super().fetch_flow_collection_start(token_class)

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth, self.count = self.depth + 1, self.count + 1
            if self.depth > MAX_DEPTH or self.count > MAX_VALUES:
                line = self.peek_event().start_mark.line + 1
                raise _Invalid([(line, (), _too_big(self.depth > MAX_DEPTH))])
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


def _too_big(deep: bool) -> str:
    if deep:
        return f"found nesting deeper than {MAX_DEPTH} levels, expected a stack file (a few levels deep)"
    return f"found more than {MAX_VALUES} values (counting each alias expanded), expected a stack file (a few hundred)"


def _check(node: Any, loader: Any) -> list[tuple[int, tuple, str]]:
    """Duplicate and non-string keys and impossible dates, as (line, path, message); _Invalid if aliases
    expand past the limits.

    Sizes and heights are memoized per node, so an alias bomb costs one visit per node it
    is written with, not one per value it would expand to.
    """
    import yaml

    measured: dict[int, tuple[int, int] | None] = {}
    found: list[tuple[int, tuple, str]] = []

    def visit(node: Any, path: tuple, depth: int) -> tuple[int, int]:
        if id(node) in measured:  # an alias: measured already, or (None) still being measured
            known = measured[id(node)]
            if known is None:
                message = "found an alias inside its own anchor, expected a finite value"
                raise _Invalid([(node.start_mark.line + 1, path, message)])
            size, height = known
        else:
            measured[id(node)] = None
            size, height = 1, 0
            if isinstance(node, yaml.MappingNode):
                children = _keys(node, path, found)
            elif isinstance(node, yaml.SequenceNode):
                children = [(item, path + (index,)) for index, item in enumerate(node.value)]
            else:
                children = []
                if node.tag == _TIMESTAMP and not _is_date(loader, node):
                    message = f"found {node.value!r}, which YAML reads as a date but is no valid date; quote it if it is text"
                    found.append((node.start_mark.line + 1, path, message))
            for child, child_path in children:
                child_size, child_height = visit(child, child_path, depth + 1)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_VALUES:
                    break
            measured[id(node)] = (size, height)
        if size > MAX_VALUES or depth + height > MAX_DEPTH:
            raise _Invalid([(node.start_mark.line + 1, path, _too_big(depth + height > MAX_DEPTH))])
        return size, height

    visit(node, (), 1)
    return sorted(found, key=lambda problem: problem[0])


def _is_date(loader: Any, node: Any) -> bool:
    try:
        loader.construct_yaml_timestamp(node)
    except (ValueError, OverflowError):
        return False
    return True


def _keys(node: Any, path: tuple, found: list[tuple[int, tuple, str]]) -> list[tuple[Any, tuple]]:
    """A mapping's children, noting each key that is not a string or repeats an earlier one."""
    import yaml

    first: dict[str, int] = {}
    children = []
    for key, value in node.value:
        line = key.start_mark.line + 1
        if key.tag == _MERGE:
            children.append((value, path))
            continue
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR:
            what = (f"the key {key.value!r}, which YAML reads as {_TAG_KINDS.get(key.tag, 'a value that is not a string')}"
                    if isinstance(key, yaml.ScalarNode)
                    else f"{'a list' if isinstance(key, yaml.SequenceNode) else 'a mapping'} as a key")
            found.append((line, path, f"found {what}; expected a field name (a string); quote it if it is a name"))
            children.append((key, path))
        elif key.value in first:
            message = f"found '{key.value}' a second time (first on line {first[key.value]}), expected each field once"
            found.append((line, path + (key.value,), message))
        else:
            first[key.value] = line
        children.append((value, path + (key.value,)))
    return children


def _yaml_error(error: Any) -> tuple[int | None, str]:
    """A PyYAML error as its line and one line of text."""
    mark = getattr(error, "problem_mark", None)
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    context = getattr(error, "context", None) or ""
    if "'\\t'" in problem:
        problem = "found a tab, expected spaces (YAML indents with spaces only)"
    elif "another document" in problem:
        problem = "found a second document (---), expected one stack per file"
    elif "constructor for the tag" in problem:
        tag = problem.rsplit(" ", 1)[-1].replace("tag:yaml.org,2002:", "!!")
        problem = f"found the tag {tag}, expected plain YAML values (no tags)"
    elif context and "while" not in context:
        problem = f"{context}, {problem}"
    return (mark.line + 1 if mark else None), f"invalid YAML: {problem}"


def parse_yaml(text: str, source: str) -> tuple[Any, Any]:
    """The composed node and the value of one YAML document (None, None if empty).

    Raises ``yaml.YAMLError`` for invalid YAML and StackError for YAML a stack refuses
    (duplicate or non-string keys, past the limits), its problems located in ``source``.
    """
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        found = _check(node, loader)
        if not found:
            return node, loader.construct_document(node)
    except _Invalid as error:
        found = error.found
    finally:
        loader.dispose()
    raise StackError([Problem(source, line, ".".join(map(str, path)), message) for line, path, message in found])


def _decode(raw: bytes, source: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")  # YAML allows UTF-16 with a byte-order mark
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise StackError([Problem(source, line, "", f"found the byte 0x{raw[error.start]:02x}, which is not UTF-8; "
                                                    "expected a UTF-8 text file")]) from None


def read_yaml(path: Path, positions: Positions) -> dict[str, Any]:
    """The stack file's top-level mapping, with the line of every field noted in ``positions``."""
    import yaml

    source = str(path)
    if path.is_dir():
        raise StackError([Problem(source, None, "", "found a directory, expected a stack file (YAML)")])
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise StackError([Problem(source, None, "", "no such stack file")]) from None
    except OSError as error:
        raise StackError([Problem(source, None, "", f"cannot read the stack file: {error.strerror or error}")]) from None
    if len(raw) > MAX_BYTES:
        raise StackError([Problem(source, None, "", f"found a file larger than {MAX_BYTES // 1024} kB, "
                                                    "expected a stack file (a few kB)")])
    text = _decode(raw, source)
    try:
        node, data = parse_yaml(text, source)
    except yaml.reader.ReaderError as error:
        line = text[:error.position].count("\n") + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        raise StackError([Problem(source, line, "", f"found the control character U+{error.character:04X} at column "
                                                    f"{column}, expected printable text")]) from None
    except yaml.YAMLError as error:
        line, message = _yaml_error(error)
        raise StackError([Problem(source, line, "", message)]) from None
    if not isinstance(data, dict):
        found = "an empty file" if data is None else kind_of(data)
        raise StackError([Problem(source, 1, "", f"found {found}, expected a mapping of sections (name, data, model, ...)")])
    positions.record(node)
    return data

