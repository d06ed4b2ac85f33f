"""``DeployerContract``: a deployer deploys a model, answers a request, and reports it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from aios_core.context import RunOptions
from aios_core.testing._harness import fail, frameworks_for, label_of
from aios_core.testing._model_consumer import ModelConsumerContract, prepared_call

if TYPE_CHECKING:
    from collections.abc import Callable

    from aios_core.components import Component
    from aios_core.context import RunContext
    from aios_core.records import Dataset, ModelArtifact

__all__ = ["DeployerContract"]


class DeployerContract(ModelConsumerContract):
    """A deployer deploys a model, answers a request, and reports it.

    The contract for "answers a request": with ``run.options.serve`` false,
    ``aios_deploy`` sends at least one request to what it deployed (rows of
    ``dataset.test``), compares the answers with ``run.load_predictor(artifact)``, stops,
    and returns a JSON-able report holding ``"smoke_test": {"passed": True, ...}``.
    Optional fixtures: ``input_artifact`` (default: a small model in one of the
    deployer's ``formats`` from an installed framework; the checks skip if none writes
    one), ``supporting_components`` and ``dataset``, as for compressors.
    """

    kind = "deployer"
    required_hooks = ("aios_deploy",)
    required_attributes = ("formats",)
    accepted_formats_attribute = "formats"
    _example_name = "fastapi"

    @pytest.fixture
    def deployment(self, component: Component, input_artifact: ModelArtifact, dataset: Dataset,
                   supporting_components: list[Component], aios_run_context: Callable[..., RunContext]) -> Any:
        """The report ``aios_deploy`` returned for ``input_artifact``, with ``run.options.serve`` false."""
        return _deploy(component, input_artifact, dataset, supporting_components, aios_run_context)

    def test_serves_a_regression_model(self, component: Component, regression_input: tuple[Dataset, ModelArtifact],
                                       aios_run_context: Callable[..., RunContext]) -> None:
        """For a deployer that declares regression: a model trained on the tiny regression set is deployed and its
        smoke test (answers compared with ``run.load_predictor``: predictions, not class probabilities) passes."""
        dataset, artifact = regression_input
        report = _deploy(component, artifact, dataset, frameworks_for({artifact.format}), aios_run_context)
        smoke = report.get("smoke_test") if isinstance(report, dict) else None
        if not isinstance(smoke, dict) or smoke.get("passed") is not True:
            fail(f"{label_of(self.kind, component.name)} declares regression, but deploying a regression model "
                 f"(predictions (n, {dataset.num_targets})) reports smoke_test {smoke!r}; answer with the model's "
                 "predictions and compare them with run.load_predictor(artifact)")

    def test_report_is_json(self, component: Component, deployment: Any) -> None:
        label = label_of(self.kind, component.name)
        if not isinstance(deployment, dict):
            fail(f"aios_deploy of {label} returned {type(deployment).__name__}; it must return a dict (the report)")
        try:
            json.dumps(deployment)
        except (TypeError, ValueError) as error:
            fail(f"the report of {label} is not JSON-able ({error}); it is recorded in the run's state.json")

    def test_answers_its_smoke_test_request(self, component: Component, deployment: Any) -> None:
        label = label_of(self.kind, component.name)
        smoke = deployment.get("smoke_test") if isinstance(deployment, dict) else None
        if not isinstance(smoke, dict) or "passed" not in smoke:
            fail(f"the report of {label} has no \"smoke_test\": {{\"passed\": ...}} entry (keys: "
                 f"{sorted(deployment) if isinstance(deployment, dict) else deployment!r}); a deployer sends rows of "
                 "dataset.test to what it deployed, compares the answers with run.load_predictor(artifact) and "
                 "reports {\"smoke_test\": {\"passed\": true, ...}}")
        if smoke["passed"] is not True:
            fail(f"{label} reports a failed smoke test: {smoke!r}")


def _deploy(component: Component, artifact: ModelArtifact, dataset: Dataset, supporting: list[Component],
            aios_run_context: Callable[..., RunContext]) -> Any:
    """What ``aios_deploy`` returns for ``artifact``, with ``run.options.serve`` false, in phase ``deploy``."""
    pm, run = prepared_call("deployer", "formats", component, artifact, supporting, aios_run_context, "deploy",
                            options=RunOptions(serve=False))
    return pm.hook.aios_deploy(artifact=artifact, dataset=dataset, run=run)
