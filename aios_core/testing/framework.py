"""``FrameworkContract``: a framework builds a model, saves and loads it unchanged, exports every declared format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aios_core.records import ModelArtifact
from aios_core.testing._harness import check_probabilities, fail, label_of, manager_with, predictor_for
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from aios_core.components import Component, Framework
    from aios_core.context import RunContext
    from aios_core.records import Dataset

__all__ = ["Built", "FrameworkContract"]


@dataclass(frozen=True)
class Built:
    """What the ``built`` fixture holds: the framework's model for the data set, and where it was built."""

    plugin_manager: pluggy.PluginManager
    """Holds the framework alone, registered as a run registers it."""
    run: RunContext
    """A run in a temporary run directory; write files under ``run.artifacts_dir``."""
    model: Any
    """What ``aios_build_model`` returned (never None)."""


class FrameworkContract(ComponentContract):
    """A framework builds a model for a data set, saves and loads it unchanged, and exports every declared format.

    Optional fixture: ``dataset`` (default ``tiny_dataset``). ``component_params`` are
    the model parameters (e.g. ``{"architecture": "cnn"}``).
    """

    kind = "framework"
    required_attributes = ("native_format", "export_formats")
    _example_name = "torch"

    def hooks_required_of(self, component: Component) -> tuple[str, ...]:
        hooks = ("aios_build_model", "aios_save_model", "aios_load_model", "aios_load_predictor")
        return hooks + (("aios_export_model",) if getattr(component, "export_formats", ()) else ())

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    @pytest.fixture
    def built(self, component: Framework, dataset: Dataset, aios_run_context: Callable[..., RunContext]) -> Built:
        """The framework's model for ``dataset``, built through ``aios_build_model``."""
        pm = manager_with(component)
        run = aios_run_context(pm)
        model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
        if model is None:
            fail(f"aios_build_model of {label_of(self.kind, component.name)} returned None; it must return a model")
        return Built(plugin_manager=pm, run=run, model=model)

    def test_saved_model_loads_and_predicts_identically(self, component: Framework, dataset: Dataset,
                                                        built: Built) -> None:
        import numpy as np

        pm, run = built.plugin_manager, built.run
        label = label_of(self.kind, component.name)
        saved = self._artifact(pm.hook.aios_save_model(model=built.model, path=run.artifacts_dir /
                                                       f"model.{component.native_format}"),
                               component.native_format, f"aios_save_model of {label}")
        loaded = pm.hook.aios_load_model(artifact=saved)
        if loaded is None:
            fail(f"aios_load_model of {label} returned None for its own file {saved.path}")
        resaved = self._artifact(pm.hook.aios_save_model(model=loaded, path=run.artifacts_dir /
                                                         f"reloaded.{component.native_format}"),
                                 component.native_format, f"aios_save_model of {label}")
        before = check_probabilities(predictor_for(pm, saved, f"{label}'s saved model"), dataset,
                                     f"{label}'s saved model")
        after = check_probabilities(predictor_for(pm, resaved, f"{label}'s reloaded model"), dataset,
                                    f"{label}'s reloaded model")
        if not np.allclose(before, after, rtol=0.0, atol=1e-6):
            fail(f"{label}: a model saved, loaded (aios_load_model) and saved again predicts differently from the "
                 f"original file (max difference {np.max(np.abs(before - after)):.3g}); saving must keep every weight")

    def test_each_export_format_exports_and_predicts_probabilities(self, component: Framework, dataset: Dataset,
                                                                   built: Built) -> None:
        label = label_of(self.kind, component.name)
        if not component.export_formats:
            pytest.skip(f"{label} declares no export_formats")
        pm, run = built.plugin_manager, built.run
        for fmt in component.export_formats:
            artifact = self._artifact(
                pm.hook.aios_export_model(model=built.model, fmt=fmt, path=run.artifacts_dir / f"model.{fmt}",
                                          dataset=dataset),
                fmt, f"aios_export_model of {label} (fmt={fmt!r})")
            check_probabilities(predictor_for(pm, artifact, f"{label}'s {fmt} export"), dataset,
                                f"{label}'s {fmt} export")

    @staticmethod
    def _artifact(artifact: Any, fmt: str, who: str) -> ModelArtifact:
        if not isinstance(artifact, ModelArtifact):
            fail(f"{who} returned {artifact!r}; it must return an aios_core.ModelArtifact")
        if artifact.format != fmt:
            fail(f"{who} returned an artifact of format {artifact.format!r}; expected {fmt!r}")
        if not Path(artifact.path).is_file():
            fail(f"{who} returned an artifact whose file {artifact.path} does not exist")
        return artifact
