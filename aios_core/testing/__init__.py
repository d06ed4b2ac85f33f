"""The AIOS contract test kit: one test class per kind, for plugin authors' own test suites.

Subclass the class of your component's kind and name the component::

    import pytest
    from aios_core.testing import TrainerContract

    class TestMyTrainer(TrainerContract):
        @pytest.fixture
        def component_name(self):
            return "my-trainer"

pytest then checks the installed component as AIOS uses it: entry point, parameters,
hooks, validation, light import, aios-kernel range, and what its kind promises (for a
framework, what onnx-quant and oip rely on too), on a tiny real data set. The fixtures
come from ``aios_core.testing.plugin``, which pytest loads by itself (entry point
``pytest11``). Names load on first use, so pytest's loading of the plugin stays cheap.
See docs/testing-plugins.md.
"""

from __future__ import annotations

from aios_core._lazy import lazy_exports

_EXPORTS = {
    "ComponentContract": "aios_core.testing.component",
    "FrameworkContract": "aios_core.testing.framework",
    "DatastoreContract": "aios_core.testing.datastore",
    "TrainerContract": "aios_core.testing.trainer",
    "TunerContract": "aios_core.testing.tuner",
    "CompressorContract": "aios_core.testing.compressor",
    "DeployerContract": "aios_core.testing.deployer",
    "MonitorContract": "aios_core.testing.monitor",
    "OrchestratorContract": "aios_core.testing.orchestrator",
    "Built": "aios_core.testing.framework",
    "OnnxExport": "aios_core.testing.framework",
    "Training": "aios_core.testing.trainer",
    "Tuning": "aios_core.testing.tuner",
    "Compression": "aios_core.testing.compressor",
    "HEAVY_MODULES": "aios_core.testing._harness",
    "tiny_dataset": "aios_core.testing._data",
    "tiny_regression_dataset": "aios_core.testing._data",
    "digits_dataset": "aios_core.testing.tools",
    "plugin_manager": "aios_core.testing.tools",
    "run_aios": "aios_core.testing.tools",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
