"""``OrchestratorContract``: an orchestrator compiles a stack into a pipeline definition, one step per phase."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from aios_core.testing._harness import fail, label_of
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from pathlib import Path

    from aios_core.components import Component

__all__ = ["OrchestratorContract"]


class OrchestratorContract(ComponentContract):
    """An orchestrator compiles a stack into a pipeline definition and can run it.

    Besides every component's checks: ``aios_compile_pipeline`` writes a non-empty file at
    the path it is given and returns that path, for a stack the kit loads with the
    orchestrator in its ``orchestrator`` section. The stack is the fixture
    ``pipeline_stack_file`` (default: the kernel's bundled default stack, whose plugins
    must then be installed: the check skips, saying so, when they are not). Running a
    pipeline needs the orchestrator's runtime; test it in your own suite.
    """

    kind = "orchestrator"
    required_hooks = ("aios_compile_pipeline", "aios_run_pipeline")
    _example_name = "airflow"

    @pytest.fixture
    def pipeline_stack_file(self) -> str:
        from aios_core.stack import DEFAULT_STACK

        return str(DEFAULT_STACK)

    @pytest.fixture
    def pipeline_stack(self, pipeline_stack_file: str, component_name: str, component_params: dict[str, Any]) -> Any:
        from aios_core.stack import StackError, load_stack

        overrides = [f"orchestrator.plugin={component_name}"]
        overrides += [f"orchestrator.{key}={value}" for key, value in component_params.items()]
        try:
            return load_stack(pipeline_stack_file, overrides)
        except StackError as error:
            pytest.skip(f"the stack {pipeline_stack_file} does not load here ({error.problems[0]}); install its "
                        "plugins or override the `pipeline_stack_file` fixture")

    def test_compiles_a_stack_into_a_file(self, pipeline_stack: Any, component_name: str, tmp_path: Path) -> None:
        from aios_core.plugins import new_plugin_manager, register

        component: Component = pipeline_stack.components["orchestrator"]
        pm = new_plugin_manager(builtins=False)
        register(pm, component, "orchestrator")
        output = tmp_path / "pipeline.out"
        label = label_of(self.kind, component_name)
        try:
            returned = pm.hook.aios_compile_pipeline(stack=pipeline_stack, phases=pipeline_stack.phases,
                                                     output=output)
        except Exception as error:
            fail(f"{label}: aios_compile_pipeline raised {type(error).__name__}: {error}")
        if not output.is_file() or output.stat().st_size == 0:
            fail(f"{label}: aios_compile_pipeline wrote nothing at {output}; write the pipeline definition there")
        if returned is None or str(returned) != str(output):
            fail(f"{label}: aios_compile_pipeline returned {returned!r}; return the path it wrote ({output})")
