"""Small but real components of the kinds no first-party plugin provides yet (tuner, deployer),
installed by the tests as the distribution ``aios-test-plugins``."""

from __future__ import annotations

import random
import shutil
from typing import Any

from pydantic import Field

from aios_core import Deployer, Monitor, Params, TuneResult, Tuner, hookimpl, write_json


class RandomSearchTuner(Tuner):
    """Random search over a list of choices per parameter."""

    class Params(Params):
        trials: int = Field(2, ge=1)
        space: dict[str, list[Any]] = Field(default_factory=dict)

    @hookimpl
    def aios_tune(self, objective, run):
        rng = random.Random(run.seed)
        trials = []
        for _ in range(self.params.trials):
            params = {key: rng.choice(values) for key, values in self.params.space.items()}
            trials.append({"params": params, "value": objective(params)})
        best = min(trials, key=lambda t: t["value"])
        return TuneResult(best_params=best["params"], best_value=best["value"], trials=trials)


class BundleDeployer(Deployer):
    """Copies the model into a bundle folder and smoke-tests it with the predictor hook."""

    formats = ("onnx",)

    class Params(Params):
        rows: int = Field(16, ge=1)

    @hookimpl
    def aios_deploy(self, artifact, dataset, run):
        bundle = run.dir / "bundle"
        bundle.mkdir(exist_ok=True)
        shutil.copy2(artifact.path, bundle / artifact.path.name)
        write_json(bundle / "classes.json", dataset.class_names)
        predict = run.load_predictor(artifact)
        predicted = predict(dataset.x_test[: self.params.rows]).argmax(axis=1)
        return {"bundle": str(bundle), "smoke_rows": self.params.rows,
                "smoke_accuracy": float((predicted == dataset.y_test[: self.params.rows]).mean())}


class EventRecorder(Monitor):
    """Writes the lifecycle events it receives, in order, to events.json in the run directory."""

    def __init__(self, params=None, name=None):
        super().__init__(params, name)
        self.events: list[str] = []
        self.dir = None

    def _record(self, event):
        self.events.append(event)
        if self.dir is not None:
            write_json(self.dir / "events.json", self.events)

    @hookimpl
    def aios_on_run_start(self, run):
        self.dir = run.dir
        self._record("run_start")

    @hookimpl
    def aios_on_phase_start(self, phase):
        self._record(f"phase_start:{phase}")

    @hookimpl
    def aios_on_epoch_end(self, phase, epoch):
        self._record(f"epoch:{phase}:{epoch}")

    @hookimpl
    def aios_on_phase_end(self, phase):
        self._record(f"phase_end:{phase}")

    @hookimpl
    def aios_on_run_end(self, status):
        self._record(f"run_end:{status}")
