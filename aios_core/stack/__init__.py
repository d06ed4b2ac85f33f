"""Stack files: reading, ``${ENV}`` interpolation, ``--set`` overrides, validation, JSON Schema.

A stack is one YAML file naming a component for each role (``data``, ``model``,
``trainer``, ...). Every problem found is reported as one line that names the file,
the line, the field path, what was found and what was expected.

Modules, lowest first: ``problems`` (positions and messages), ``schema`` (the file's own
fields), ``yaml_file`` (bounded YAML with strict keys), ``reading`` (interpolation,
overrides, ``read_stack_file``), ``validated`` (the ``Stack`` record), ``resolution`` (components, fit and lock checks,
``load_stack``), ``environment`` (the components' own checks), ``json_schema``.
"""

from __future__ import annotations

from aios_core.stack.json_schema import stack_json_schema
from aios_core.stack.problems import Problem, StackError
from aios_core.stack.reading import StackFileContents, read_stack_file
from aios_core.stack.resolution import Stack, load_stack
from aios_core.stack.schema import (
    DEFAULT_MONITORS,
    DEFAULT_STACK,
    ComponentSection,
    EvaluateSettings,
    ModelSection,
    StackFile,
    TrainerSection,
)

__all__ = ["DEFAULT_MONITORS", "DEFAULT_STACK", "ComponentSection", "EvaluateSettings", "ModelSection", "Problem",
           "Stack", "StackError", "StackFile", "StackFileContents", "TrainerSection", "load_stack", "read_stack_file",
           "stack_json_schema"]
