"""Stack files: reading, ``${ENV}`` interpolation, ``--set`` overrides, validation, JSON Schema.

A stack is one YAML file naming a component for each role (``data``, ``model``,
``trainer``, ...). Every problem found is reported as one line that names the file,
the line, the field path, what was found and what was expected.
"""

from __future__ import annotations

import difflib
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from aios_core import HOOK_API_VERSION, __version__
from aios_core.components import Component, Params
from aios_core.plugins import ComponentEntry, PluginError, find_entry, installed, load_component, strict_mode

ROLE_KINDS = {
    "data": "datastore", "model": "framework", "trainer": "trainer", "tuner": "tuner",
    "compressors": "compressor", "deployer": "deployer", "monitors": "monitor",
}
"""Each stack section and the kind of component it selects (lists: one per item)."""
DEFAULT_MONITORS = [{"plugin": "console"}, {"plugin": "jsonl"}]
DEFAULT_STACK = Path(__file__).with_name("stacks") / "digits-torch.yaml"


class Problem(NamedTuple):
    """One thing wrong with a stack, printed as ``file:line: field.path: message``."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class StackError(Exception):
    """A stack cannot run; ``problems`` holds every problem found, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# ---------------------------------------------------------------- the file's structure
class ComponentSection(BaseModel):
    """``plugin: NAME`` plus the component's own parameters."""

    model_config = ConfigDict(extra="allow")
    plugin: str = Field(min_length=1)


class ModelSection(BaseModel):
    """``framework: NAME`` plus the framework's model parameters."""

    model_config = ConfigDict(extra="allow")
    framework: str = Field(min_length=1)


class TrainerSection(BaseModel):
    """The trainer; ``plugin`` defaults to the framework's own trainer of the same name."""

    model_config = ConfigDict(extra="allow")
    plugin: str | None = Field(None, min_length=1)


class EvaluateSettings(Params):
    """How the evaluate phase measures every model artifact, and the gates a run must pass."""

    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1, 256], min_length=1)
    latency_runs: PositiveInt = 100
    min_accuracy: float | None = Field(None, ge=0, le=1)
    max_accuracy_drop: float | None = Field(None, ge=0, le=1)
    max_size_ratio: float | None = Field(None, gt=0)


class StackFile(Params):
    """The top level of a stack file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)
    description: str = ""
    seed: int = Field(0, ge=0)
    threads: PositiveInt = 1
    data: ComponentSection
    model: ModelSection
    trainer: TrainerSection = Field(default_factory=TrainerSection)
    tuner: ComponentSection | None = None
    compressors: list[ComponentSection] = Field(default_factory=list)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    deployer: ComponentSection | None = None
    monitors: list[ComponentSection] = Field(default_factory=lambda: [ComponentSection(**m) for m in DEFAULT_MONITORS])


# ---------------------------------------------------------------- reading with positions
class _Positions:
    """Where each field path came from: the file and line, or ``--set``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[tuple, int] = {}
        self.overridden: set[tuple] = set()

    def record(self, node: Any, path: tuple = ()) -> None:
        import yaml

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.lines[path + (key.value,)] = key.start_mark.line + 1
                self.record(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.record(item, path + (index,))

    def problem(self, path: tuple, message: str) -> Problem:
        dotted = ".".join(str(p) for p in path)
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.overridden:
                return Problem("--set", None, dotted, message)
            if path[:depth] in self.lines:
                return Problem(self.source, self.lines[path[:depth]], dotted, message)
        return Problem(self.source, None, dotted, message)


def _read_yaml(path: Path, positions: _Positions) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StackError([Problem(str(path), None, "", "no such stack file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise StackError([Problem(str(path), None, "", f"cannot read the stack file: {error}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        reason = getattr(error, "problem", None) or str(error)
        raise StackError([Problem(str(path), mark.line + 1 if mark else None, "",
                                  f"invalid YAML: {reason}")]) from None
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise StackError([Problem(str(path), 1, "", f"found {found}, expected a mapping of sections (name, data, model, ...)")])
    positions.record(node)
    return data


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, path: tuple, positions: _Positions, problems: list[Problem]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), positions, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), positions, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(positions.problem(path, f"found '{match.group(0)}', but environment variable {name} is not set; "
                                                f"set it or write ${{{name}:-default}}"))
        return match.group(0)

    return _ENV_REFERENCE.sub(substitute, value)


def _apply_override(data: dict[str, Any], override: str, positions: _Positions) -> Problem | None:
    """Apply one ``--set a.b.0.c=value`` (the value is parsed as YAML)."""
    import yaml

    dotted, sep, raw = override.partition("=")
    if not sep or not dotted or any(not part for part in dotted.split(".")):
        return Problem("--set", None, override, "expected FIELD.PATH=VALUE, e.g. --set trainer.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    parts: list[Any] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    target: Any = data
    for depth, part in enumerate(parts[:-1]):
        child = parts[depth + 1]
        if isinstance(target, list):
            if not isinstance(part, int) or part >= len(target):
                return Problem("--set", None, dotted, f"no item {part} in {'.'.join(map(str, parts[:depth])) or 'the stack'} "
                                                      f"(it has {len(target)})")
        elif not isinstance(target, dict):
            return Problem("--set", None, dotted, f"{'.'.join(map(str, parts[:depth]))} is not a section")
        elif part not in target or target[part] is None:
            target[part] = [] if isinstance(child, int) else {}
        target = target[part]
    last = parts[-1]
    if isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        return Problem("--set", None, dotted, "cannot set this path")
    positions.overridden.add(tuple(parts))
    return None


# ---------------------------------------------------------------- validation errors
def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(item: dict[str, Any]) -> str:
    """Pydantic's message, phrased as what was expected."""
    if item["type"] == "string_pattern_mismatch":
        return f"a string matching the pattern {item['ctx']['pattern']}"
    message = item["msg"]
    for prefix, replacement in (("Input should be ", ""), ("Value error, ", ""), ("String should ", "a string that should "),
                                ("List should ", "a list that should "), ("Dictionary should ", "a mapping that should ")):
        if message.startswith(prefix):
            return replacement + message[len(prefix):]
    return message


def _expected_fields(model: type[BaseModel], selector: str | None) -> list[str]:
    names = [selector] if selector else []
    return names + [n for n in model.model_fields if n != selector]


def _validation_problems(error: ValidationError, data: Any, prefix: tuple, positions: _Positions,
                         model: type[BaseModel], selector: str | None = None) -> list[Problem]:
    problems = []
    for item in error.errors():
        path: list[Any] = []
        node: Any = data
        loc = list(item["loc"])
        for index, part in enumerate(loc):
            if isinstance(node, dict) and part in node:
                node = node[part]
                path.append(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
                path.append(part)
            elif index == len(loc) - 1 and isinstance(part, str) and item["type"] in ("missing", "extra_forbidden"):
                path.append(part)
        full = prefix + tuple(path)
        if item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "extra_forbidden":
            container: Any = model
            for part in path[:-1]:
                annotation = getattr(container, "model_fields", {}).get(part)
                inner = getattr(annotation, "annotation", None) if annotation else None
                container = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else container
            allowed = _expected_fields(container, selector if container is model else None)
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            message = (f"unknown field; expected one of: {', '.join(allowed)}" if allowed
                       else "unknown field; this component takes no parameters")
            message += f"; did you mean '{close[0]}'?" if close else ""
        else:
            expected = _expected(item)
            message = f"found {_describe(item.get('input'))}, expected {expected}"
        problems.append(positions.problem(full, message))
    return problems


# ---------------------------------------------------------------- the loaded stack
@dataclass
class Stack:
    """A validated stack: its settings, its configured components and the resolved form."""

    source: str
    settings: StackFile
    components: dict[str, Component]
    entries: dict[str, ComponentEntry]
    resolved: dict[str, Any]
    skipped: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.settings.name

    def role(self, role: str) -> Component | None:
        return self.components.get(role)

    def roles(self, section: str) -> list[str]:
        """The roles of a list section in order, e.g. ``compressors.0``, ``compressors.1``."""
        return [r for r in self.components if r.split(".")[0] == section]

    def lock(self) -> dict[str, Any]:
        """The resolved stack plus the versions that ran it: a lock file ``aios run --lock`` reproduces."""
        distributions = {entry.distribution: entry.version for entry in self.entries.values()}
        return {**self.resolved, "lock": {
            "aios_core": __version__, "hook_api": HOOK_API_VERSION, "python": platform.python_version(),
            "distributions": dict(sorted(distributions.items())),
        }}


def _select(role: str, section: dict[str, Any], selector: str, positions: _Positions, problems: list[Problem],
            skipped: list[str]) -> tuple[ComponentEntry, Component] | None:
    """Find, import and configure the component a section names.

    A monitor whose plugin is installed but broken is skipped (noted in ``skipped``)
    unless AIOS_STRICT_PLUGINS is set: watching a run must never stop it.
    """
    kind = ROLE_KINDS[role.split(".")[0]]
    path = _path(role)
    name = section[selector]
    try:
        entry = find_entry(kind, name)
    except PluginError as error:
        problems.append(positions.problem(path + (selector,), f"found '{name}': {error}"))
        return None
    try:
        cls = load_component(entry)
    except PluginError as error:
        problem = positions.problem(path + (selector,), f"found '{name}': {error}")
        if kind == "monitor" and not strict_mode():
            skipped.append(str(problem))
        else:
            problems.append(problem)
        return None
    raw = {k: v for k, v in section.items() if k != selector}
    try:
        params = cls.Params.model_validate(raw)
    except ValidationError as error:
        problems.extend(_validation_problems(error, raw, path, positions, cls.Params))
        return None
    try:
        return entry, cls(params, name=name)
    except Exception as error:  # a plugin's constructor may fail in any way; report it by name
        problems.append(positions.problem(path, f"{entry.label} could not be set up: {type(error).__name__}: {error}"))
        return None


def _check_fit(stack: Stack, positions: _Positions, problems: list[Problem]) -> None:
    """Check that the components fit together: trainer/framework, compressor and deployer formats."""
    framework, trainer = stack.role("model"), stack.role("trainer")
    if framework is None:
        return
    if trainer is not None and framework.name not in trainer.frameworks:
        problems.append(positions.problem(("trainer", "plugin"), (
            f"trainer '{trainer.name}' cannot train models of framework '{framework.name}' (model.framework); "
            f"it trains: {', '.join(trainer.frameworks) or 'nothing declared'}")))
    formats: set[str] = set(framework.formats)
    producer = f"framework '{framework.name}'"
    for role in stack.roles("compressors"):
        compressor = stack.components[role]
        if not formats & set(compressor.input_formats):
            problems.append(positions.problem((*_path(role), "plugin"), (
                f"compressor '{compressor.name}' takes {', '.join(compressor.input_formats)} models, "
                f"but {producer} produces {', '.join(sorted(formats))}")))
        formats, producer = {compressor.output_format}, f"compressor '{compressor.name}'"
    deployer = stack.role("deployer")
    if deployer is not None and not formats & set(deployer.formats):
        problems.append(positions.problem(("deployer", "plugin"), (
            f"deployer '{deployer.name}' serves {', '.join(deployer.formats)} models, "
            f"but {producer} produces {', '.join(sorted(formats))}")))


def _path(role: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in role.split("."))


def _check_lock(lock: Any, stack: Stack, positions: _Positions, problems: list[Problem]) -> None:
    locked = lock.get("distributions", {}) if isinstance(lock, dict) else {}
    running = {entry.distribution: entry.version for entry in stack.entries.values()}
    for distribution, version in locked.items():
        if running.get(distribution, version) != version:
            problems.append(positions.problem(("lock", "distributions", distribution), (
                f"found {distribution} {running[distribution]} installed, expected {version} as locked; "
                f"pip install {distribution}=={version}")))


@dataclass
class StackFileContents:
    """A stack file read and checked for structure, before any component is loaded."""

    data: dict[str, Any]
    settings: StackFile
    positions: _Positions
    lock: Any = None

    def sections(self) -> dict[str, tuple[dict[str, Any], str]]:
        """Each role (``data``, ``compressors.0``, ...) with its section and the key naming its component."""
        sections: dict[str, tuple[dict[str, Any], str]] = {
            "data": (self.data["data"], "plugin"), "model": (self.data["model"], "framework")}
        trainer = dict(self.data.get("trainer") or {})
        trainer.setdefault("plugin", self.settings.model.framework)
        sections["trainer"] = (trainer, "plugin")
        for role in ("tuner", "deployer"):
            if self.data.get(role):
                sections[role] = (self.data[role], "plugin")
        for role in ("compressors", "monitors"):
            items = self.data.get(role, DEFAULT_MONITORS if role == "monitors" else [])
            for index, item in enumerate(items):
                sections[f"{role}.{index}"] = (item, "plugin")
        return sections

    def problem(self, role: str, key: str, message: str) -> Problem:
        """A problem located at ``role.key`` (e.g. ``compressors.0``, ``plugin``)."""
        return self.positions.problem((*_path(role), key), message)


def read_stack_file(path: str | os.PathLike[str], overrides: tuple[str, ...] | list[str] = (), *,
                    locked: bool = False) -> StackFileContents:
    """Read, interpolate, override and check the structure of a stack file; no plugin is loaded."""
    path = Path(path)
    positions = _Positions(str(path))
    data = _read_yaml(path, positions)
    problems: list[Problem] = []
    lock = data.pop("lock", None)
    if lock is not None and not locked:
        problems.append(positions.problem(("lock",), "unknown field; this is a lock file: run it with aios run --lock FILE"))
    data = _interpolate(data, (), positions, problems)
    for override in overrides:
        problem = _apply_override(data, override, positions)
        if problem:
            problems.append(problem)
    if problems:
        raise StackError(problems)
    try:
        settings = StackFile.model_validate(data)
    except ValidationError as error:
        raise StackError(_validation_problems(error, data, (), positions, StackFile)) from None
    return StackFileContents(data, settings, positions, lock)


def load_stack(path: str | os.PathLike[str], overrides: tuple[str, ...] | list[str] = (), *,
               locked: bool = False) -> Stack:
    """Read and validate a stack file and configure its components; raise StackError listing every problem.

    With ``locked``, the file is a lock file written by a run: the installed plugin
    versions must equal the locked ones.
    """
    contents = read_stack_file(path, overrides, locked=locked)
    settings, positions, lock = contents.settings, contents.positions, contents.lock
    sections = contents.sections()
    problems: list[Problem] = []

    components: dict[str, Component] = {}
    entries: dict[str, ComponentEntry] = {}
    skipped: list[str] = []
    for role, (section, selector) in sections.items():
        selected = _select(role, section, selector, positions, problems, skipped)
        if selected is not None:
            entries[role], components[role] = selected

    resolved: dict[str, Any] = {"name": settings.name, "description": settings.description,
                                "seed": settings.seed, "threads": settings.threads}
    for role, component in components.items():
        selector = sections[role][1]
        value = {selector: component.name, **component.params.model_dump(mode="json")}
        section, _, index = role.partition(".")
        if index:
            resolved.setdefault(section, []).append(value)
        else:
            resolved[section] = value
    resolved.setdefault("compressors", [])
    resolved["evaluate"] = settings.evaluate.model_dump(mode="json")
    stack = Stack(str(path), settings, components, entries, resolved, skipped)
    if not problems:
        _check_fit(stack, positions, problems)
        if locked:
            _check_lock(lock, stack, positions, problems)
    if problems:
        raise StackError(problems)
    return stack


# ---------------------------------------------------------------- JSON Schema
def stack_json_schema() -> dict[str, Any]:
    """A JSON Schema for stack files, with the parameters of every installed, loadable component."""
    from pydantic import create_model

    def variants(kind: str, selector: str, required: bool = True) -> Any:
        models = []
        for entry in installed(kind):
            try:
                cls = load_component(entry)
            except PluginError:
                if strict_mode():
                    raise
                continue
            models.append(create_model(f"{kind}_{entry.name}".replace("-", "_"), __base__=cls.Params,
                                       __doc__=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None,
                                       **{selector: (Literal[entry.name], ...) if required
                                          else (Literal[entry.name] | None, None)}))
        if not models:
            return dict[str, Any]
        union = models[0]
        for model in models[1:]:
            union = union | model
        return union

    schema_model = create_model(
        "StackFile", __base__=StackFile,
        data=(variants("datastore", "plugin"), ...), model=(variants("framework", "framework"), ...),
        trainer=(variants("trainer", "plugin", required=False) | None, None), tuner=(variants("tuner", "plugin") | None, None),
        compressors=(list[variants("compressor", "plugin")], []),  # type: ignore[misc]
        deployer=(variants("deployer", "plugin") | None, None),
        monitors=(list[variants("monitor", "plugin")], DEFAULT_MONITORS),  # type: ignore[misc]
    )
    schema = schema_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "AIOS stack file"
    return schema
