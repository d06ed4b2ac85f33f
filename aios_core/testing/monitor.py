"""``MonitorContract``: a monitor receives a run's lifecycle events, in order, without raising."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from aios_core.records import ModelArtifact
from aios_core.testing._harness import fail, fail_raised, label_of, manager_with
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from aios_core.components import Component
    from aios_core.context import RunContext
    from aios_core.plugins import ComponentEntry
    from aios_core.records import Dataset

__all__ = ["MonitorContract"]

_LIFECYCLE_HOOKS = ("aios_on_run_start", "aios_on_phase_start", "aios_on_step", "aios_on_epoch_end",
                    "aios_on_progress", "aios_on_phase_end", "aios_on_trial_start", "aios_on_trial_end", "aios_on_artifact",
                    "aios_on_error", "aios_on_run_end")


class MonitorContract(ComponentContract):
    """A monitor receives a run's lifecycle events, in order, without raising."""

    kind = "monitor"
    _example_name = "my-monitor"

    def test_hooks_match_the_specs(self, component_entry: ComponentEntry, component: Component) -> None:
        super().test_hooks_match_the_specs(component_entry, component)
        pm = manager_with(component)
        if not {caller.name for caller in pm.get_hookcallers(component) or ()} & set(_LIFECYCLE_HOOKS):
            fail(f"{label_of(self.kind, component_entry.name)} implements no lifecycle hook; a monitor implements "
                 f"some of {', '.join(_LIFECYCLE_HOOKS)} (methods marked @aios_core.hookimpl)")

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    def _drive(self, component: Component, run_context: Callable[..., RunContext],
               events: Callable[[pluggy.PluginManager, RunContext], list[tuple[str, Callable[[], Any]]]]
               ) -> tuple[list[str], list[str]]:
        """Send ``events`` through a plugin manager holding the monitor; (expected, received) hook names."""
        pm = manager_with(component)
        implemented = {caller.name for caller in pm.get_hookcallers(component) or ()}
        received: list[str] = []

        def before(hook_name: str, hook_impls: list[Any], kwargs: dict[str, Any]) -> None:
            if any(impl.plugin is component for impl in hook_impls):
                received.append(f"{hook_name}({kwargs['phase']})" if "phase" in kwargs else hook_name)

        def after(outcome: Any, hook_name: str, hook_impls: list[Any], kwargs: dict[str, Any]) -> None:
            pass

        undo = pm.add_hookcall_monitoring(before, after)
        run = run_context(pm)
        expected: list[str] = []
        try:
            for event, send in events(pm, run):
                if event.split("(")[0] in implemented:
                    expected.append(event)
                try:
                    send()
                except Exception as error:
                    fail_raised(f"{label_of(self.kind, component.name)} raised on {event}", error)
        finally:
            undo()
        return expected, received

    def test_receives_a_completed_runs_events_in_order(self, component: Component, dataset: Dataset,
                                                       aios_run_context: Callable[..., RunContext]) -> None:
        def events(pm: pluggy.PluginManager, run: RunContext) -> list[tuple[str, Callable[[], Any]]]:
            hook = pm.hook
            artifact_path = run.artifacts_dir / "model.bin"
            history = [{"epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5 + 0.2 * epoch, "val_loss": 1.1 / epoch,
                        "val_accuracy": 0.5 + 0.15 * epoch, "lr": 0.001, "seconds": 0.01} for epoch in (1, 2)]
            artifact = ModelArtifact(name="native", path=artifact_path, format="bin", producer="aios-contract")
            data_summary = {**dataset.summary(), "seconds": 0.01}
            train_summary = {"history": history, "best_epoch": 2, "stopped_early": False, "final": history[1],
                             "artifact": artifact.to_json(), "seconds": 0.02}
            trial_params = {"trainer.learning_rate": 0.01}
            tune_summary = {"best_params": trial_params, "best_value": history[0]["val_loss"], "trials": 1,
                            "seconds": 0.01}
            trial = run.for_trial(1)
            state = {"status": "completed",
                     "phases": {"data": data_summary, "tune": tune_summary, "train": train_summary},
                     "started": "2024-01-01T00:00:00", "finished": "2024-01-01T00:00:01"}

            def phase(name: str) -> Callable[[], None]:
                def start() -> None:
                    run.phase = name
                    hook.aios_on_phase_start(run=run, phase=name)
                return start

            def write_artifact() -> None:
                artifact_path.parent.mkdir(parents=True, exist_ok=True)
                artifact_path.write_bytes(b"\0" * 2048)
                hook.aios_on_artifact(run=run, artifact=artifact)

            return [
                ("aios_on_run_start", lambda: hook.aios_on_run_start(run=run)),
                ("aios_on_phase_start(data)", phase("data")),
                ("aios_on_progress(data)", lambda: run.report_progress("reading", 500, 1000, "rows")),
                ("aios_on_progress(data)", lambda: run.report_progress("reading", 1000, 1000, "rows")),
                ("aios_on_progress(data)", lambda: run.report_progress("scaling", 3, None, "passes")),
                ("aios_on_phase_end(data)", lambda: hook.aios_on_phase_end(run=run, phase="data", summary=data_summary)),
                ("aios_on_phase_start(tune)", phase("tune")),
                ("aios_on_trial_start", lambda: hook.aios_on_trial_start(run=trial, trial=1, params=trial_params)),
                ("aios_on_epoch_end(tune)", lambda: trial.report_epoch(1, dict(history[0]))),
                ("aios_on_trial_end", lambda: hook.aios_on_trial_end(run=trial, trial=1, status="completed",
                                                                     value=history[0]["val_loss"],
                                                                     metrics=dict(history[0]))),
                ("aios_on_phase_end(tune)", lambda: hook.aios_on_phase_end(run=run, phase="tune", summary=tune_summary)),
                ("aios_on_phase_start(train)", phase("train")),
                ("aios_on_step(train)", lambda: run.report_step(1, 2, 4, {"loss": 1.2})),
                ("aios_on_epoch_end(train)", lambda: run.report_epoch(1, dict(history[0]))),
                ("aios_on_step(train)", lambda: run.report_step(2, 2, 4, {"loss": 0.6})),
                ("aios_on_epoch_end(train)", lambda: run.report_epoch(2, dict(history[1]))),
                ("aios_on_artifact", write_artifact),
                ("aios_on_phase_end(train)",
                 lambda: hook.aios_on_phase_end(run=run, phase="train", summary=train_summary)),
                ("aios_on_run_end", lambda: hook.aios_on_run_end(run=run, status="completed", summary=state)),
            ]

        expected, received = self._drive(component, aios_run_context, events)
        if received != expected:
            fail(f"{label_of(self.kind, component.name)} received the lifecycle events\n  {received}\n"
                 f"but a completed run sends it, in this order,\n  {expected}")

    def test_survives_a_failed_run(self, component: Component, aios_run_context: Callable[..., RunContext]) -> None:
        def events(pm: pluggy.PluginManager, run: RunContext) -> list[tuple[str, Callable[[], Any]]]:
            hook = pm.hook
            error = RuntimeError("aios contract kit: a simulated failure of the data phase")
            state = {"status": "failed", "phases": {}, "started": "2024-01-01T00:00:00",
                     "finished": "2024-01-01T00:00:01"}

            def start() -> None:
                run.phase = "data"
                hook.aios_on_phase_start(run=run, phase="data")

            return [
                ("aios_on_run_start", lambda: hook.aios_on_run_start(run=run)),
                ("aios_on_phase_start(data)", start),
                ("aios_on_error(data)", lambda: hook.aios_on_error(run=run, phase="data", error=error)),
                ("aios_on_run_end", lambda: hook.aios_on_run_end(run=run, status="failed", summary=state)),
            ]

        expected, received = self._drive(component, aios_run_context, events)
        if received != expected:
            fail(f"{label_of(self.kind, component.name)} received the events\n  {received}\n"
                 f"but a failed run sends it, in this order,\n  {expected}")
