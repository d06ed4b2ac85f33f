"""The framework contract checks what downstream relies on: ONNX exports onnx-quant and oip can run, trained weights
that survive a save and a load, native files that run no code when loaded.

As in test_contract_kit.py (contract_kit_support.py), the kit runs in a separate pytest process against installed
distributions. ``aios-kit-onnx`` holds a small numpy framework that exports ONNX (built
with ``onnx.helper``) and frameworks that each break one thing downstream relies on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from contract_kit_support import assert_only_failure, contract_class
from support import make_distribution

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytest_plugins = ["pytester", "contract_kit_support"]  # run_kit

ONNX_DEMO = '''
    """Softmax regression exporting ONNX, and frameworks each breaking one thing downstream relies on."""

    import pickle
    import zipfile
    from pathlib import Path

    from aios_core import ModelArtifact, atomic_path, hookimpl
    from aios_kit_demo import GradientDescentTrainer, SoftmaxFramework, softmax


    class OnnxSoftmaxFramework(SoftmaxFramework):
        """Exports MatMul, Add and Softmax over one float32 input (batch, features)."""

        export_formats = ("onnx",)
        batch = "batch"
        input_type = "FLOAT"
        opsets = (("", 17),)
        outputs = ("probabilities",)

        def nodes(self, dataset):
            from onnx import helper

            return [helper.make_node("MatMul", ["input", "w"], ["scores"]),
                    helper.make_node("Add", ["scores", "b"], ["logits"]),
                    helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]

        def inputs(self, dataset):
            from onnx import TensorProto, helper

            return [helper.make_tensor_value_info("input", getattr(TensorProto, self.input_type),
                                                  [self.batch, dataset.num_features])]

        @hookimpl
        def aios_export_model(self, model, fmt, path, dataset):
            import onnx
            from onnx import TensorProto, helper, numpy_helper

            outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [self.batch, dataset.num_classes])
                       for name in self.outputs]
            initializers = [numpy_helper.from_array(model["w"], "w"), numpy_helper.from_array(model["b"], "b")]
            graph = helper.make_graph(self.nodes(dataset), "softmax", self.inputs(dataset), outputs, initializers)
            proto = helper.make_model(graph, ir_version=8,
                                      opset_imports=[helper.make_opsetid(domain, version) for domain, version in self.opsets])
            with atomic_path(path) as tmp:
                onnx.save(proto, str(tmp))
            return ModelArtifact(name="onnx", path=Path(path), format="onnx", producer=self.name)


    class ProbabilitiesThenLogits(OnnxSoftmaxFramework):
        """Also outputs the logits, after the probabilities (fine if the plugin documents it)."""

        outputs = ("probabilities", "logits")


    class LogitsFirst(OnnxSoftmaxFramework):
        outputs = ("logits", "probabilities")


    class FixedBatch(OnnxSoftmaxFramework):
        """Exported from a one-row sample without a dynamic axis."""

        batch = 1


    class Float64Input(OnnxSoftmaxFramework):
        input_type = "DOUBLE"

        def nodes(self, dataset):
            from onnx import TensorProto, helper

            cast = helper.make_node("Cast", ["input"], ["rows"], to=TensorProto.FLOAT)
            rest = super().nodes(dataset)
            rest[0].input[0] = "rows"
            return [cast, *rest]


    class TwoInputs(OnnxSoftmaxFramework):
        """Takes a temperature beside the rows."""

        def inputs(self, dataset):
            from onnx import TensorProto, helper

            return [*super().inputs(dataset), helper.make_tensor_value_info("temperature", TensorProto.FLOAT, [1])]

        def nodes(self, dataset):
            from onnx import helper

            rest = super().nodes(dataset)
            rest[1].output[0] = "hot"
            return [*rest[:2], helper.make_node("Div", ["hot", "temperature"], ["logits"]), rest[2]]


    class TwoOpsets(OnnxSoftmaxFramework):
        opsets = (("", 17), ("ai.onnx", 13))


    class Standardizing(OnnxSoftmaxFramework):
        """Standardizes its input again with the data set's statistics, which the datastore already did."""

        def nodes(self, dataset):
            import numpy as np
            from onnx import helper, numpy_helper

            scaling = dataset.preprocessing["standardize"]
            constants = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
                np.asarray(scaling[name], dtype=np.float32), name)) for name in ("mean", "std")]
            rest = super().nodes(dataset)
            rest[0].input[0] = "scaled"
            return [*constants, helper.make_node("Sub", ["input", "mean"], ["centered"]),
                    helper.make_node("Div", ["centered", "std"], ["scaled"]), *rest]


    class BatchCentering(OnnxSoftmaxFramework):
        """Centres each batch on its own mean, natively and in ONNX: an answer depends on the other rows."""

        def nodes(self, dataset):
            from onnx import helper

            rest = super().nodes(dataset)
            rest[0].input[0] = "centered"
            return [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[0], keepdims=1),
                    helper.make_node("Sub", ["input", "mean"], ["centered"]), *rest]

        @hookimpl
        def aios_load_predictor(self, artifact, threads):
            model = self.aios_load_model(artifact)
            if model is None:
                return None
            return lambda batch: softmax((batch - batch.mean(axis=0)) @ model["w"] + model["b"])


    class Weightless(SoftmaxFramework):
        """Saves the shapes only; loading draws the weights anew, as a build with seed 0 does."""

        def saved_arrays(self, model):
            import numpy as np

            return {"shape": np.asarray(model["w"].shape)}

        def loaded_model(self, arrays):
            import numpy as np

            features, classes = (int(size) for size in arrays["shape"])
            rng = np.random.default_rng(0)
            return {"w": rng.normal(0, 0.01, (features, classes)).astype(np.float32),
                    "b": np.zeros(classes, dtype=np.float32)}


    class Biasless(OnnxSoftmaxFramework):
        """Saves the weights but not the biases, which load as zeros (their value before training)."""

        def saved_arrays(self, model):
            return {"w": model["w"]}

        def loaded_model(self, arrays):
            import numpy as np

            return {"w": arrays["w"], "b": np.zeros(arrays["w"].shape[1], dtype=np.float32)}


    class Pickling(SoftmaxFramework):
        """Saves and loads with pickle."""

        @hookimpl
        def aios_save_model(self, model, path):
            with atomic_path(path) as tmp:
                tmp.write_bytes(pickle.dumps(model))
            return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer=self.name)

        @hookimpl
        def aios_load_model(self, artifact):
            if artifact.format == self.native_format:
                return pickle.loads(Path(artifact.path).read_bytes())


    class ZipPickling(SoftmaxFramework):
        """Saves a zip holding archive/data.pkl, as torch does, and unpickles it on load."""

        @hookimpl
        def aios_save_model(self, model, path):
            with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
                archive.writestr("archive/data.pkl", pickle.dumps(model))
            return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer=self.name)

        @hookimpl
        def aios_load_model(self, artifact):
            if artifact.format == self.native_format:
                with zipfile.ZipFile(artifact.path) as archive:
                    return pickle.loads(archive.read("archive/data.pkl"))


    class OnnxGradientDescentTrainer(GradientDescentTrainer):
        frameworks = ("softmax-onnx", "softmax-onnx-logits", "logits-first", "fixed-batch", "float64-input",
                      "two-inputs", "two-opsets", "standardizing", "batch-centering", "weightless", "biasless",
                      "pickling", "zip-pickling")
'''

FRAMEWORKS = {
    "softmax-onnx": "OnnxSoftmaxFramework", "softmax-onnx-logits": "ProbabilitiesThenLogits",
    "logits-first": "LogitsFirst", "fixed-batch": "FixedBatch", "float64-input": "Float64Input",
    "two-inputs": "TwoInputs", "two-opsets": "TwoOpsets", "standardizing": "Standardizing",
    "batch-centering": "BatchCentering", "weightless": "Weightless", "biasless": "Biasless",
    "pickling": "Pickling", "zip-pickling": "ZipPickling", "untrainable": "OnnxSoftmaxFramework",
}

ONNX_CHECKS = ("test_onnx_export_passes_the_onnx_checker", "test_onnx_export_imports_one_opset_per_domain",
               "test_onnx_export_takes_one_float32_input_of_any_batch_size",
               "test_onnx_export_outputs_probabilities_first", "test_onnx_export_answers_as_the_native_model",
               "test_onnx_export_predicts_a_row_alone_as_in_a_batch")


@pytest.fixture
def run_onnx_kit(run_kit, site: Path):
    """``run_onnx_kit(**classes)``: install aios-kit-onnx and run one FrameworkContract class per framework named.

    A keyword's value is the class body after ``component_name`` (usually ``pass``).
    """

    def run(**classes: str) -> pytest.RunResult:
        make_distribution(site, "aios-kit-onnx", {
            "aios.frameworks": {name: f"aios_kit_onnx:{cls}" for name, cls in FRAMEWORKS.items()},
            "aios.trainers": {"gd-onnx": "aios_kit_onnx:OnnxGradientDescentTrainer"},
        }, modules={"aios_kit_onnx": ONNX_DEMO})
        return run_kit("".join(contract_class(f"{test_class}(FrameworkContract)",
                                              FRAMEWORK_OF[test_class.removeprefix("Test")], body)
                               for test_class, body in classes.items()))

    return run


FRAMEWORK_OF = {"".join(part.title() for part in name.split("-")): name for name in FRAMEWORKS}
"""Test class name (without ``Test``) -> framework name: ``SoftmaxOnnx`` -> ``softmax-onnx``."""


def failed(result: pytest.RunResult) -> set[str]:
    """``Class::check`` of every failed check (parametrized ones without their id)."""
    return {line.split("::", 1)[1].split(" ")[0].split("[")[0] for line in result.outlines
            if line.startswith("FAILED test_plugin.py::")}


# ---------------------------------------------------------------- a good export passes
def test_an_onnx_export_downstream_can_run_passes_every_check(run_onnx_kit) -> None:
    result = run_onnx_kit(TestSoftmaxOnnx="pass", TestSoftmaxOnnxLogits='onnx_extra_outputs = ("logits",)')
    result.assert_outcomes(passed=2 * 19, skipped=2)  # the regression check: classification-only frameworks


def test_a_framework_no_installed_trainer_trains_skips_the_trained_weights_check(run_onnx_kit) -> None:
    result = run_onnx_kit(TestUntrainable="pass")
    result.assert_outcomes(passed=18, skipped=1 + 1)  # + the regression check
    result.stdout.fnmatch_lines([("SKIPPED*no installed trainer trains models of framework 'untrainable' (a trainer "
                                  "whose `frameworks` include 'untrainable'); install one or provide a `trainer_name` "
                                  "fixture")])


# ---------------------------------------------------------------- ONNX: what onnx-quant and oip feed and read
def test_onnx_exports_with_an_input_downstream_cannot_feed_fail(run_onnx_kit) -> None:
    result = run_onnx_kit(TestFixedBatch="pass", TestFloat64Input="pass", TestTwoInputs="pass")
    assert {f"{test_class}::test_onnx_export_takes_one_float32_input_of_any_batch_size"
            for test_class in ("TestFixedBatch", "TestFloat64Input", "TestTwoInputs")} <= failed(result)
    result.stdout.fnmatch_lines([
        ("*the ONNX export of framework 'fixed-batch' must take one float32 input of shape (n, 16) with a symbolic "
         "batch dimension: onnx-quant calibrates and times it through that one input, and oip feeds it batches of "
         "any size. Found:"),
        "*its input is 'input' float32 (1, 16): the batch dimension is fixed at 1; make it symbolic*"])
    result.stdout.fnmatch_lines(["*its input is 'input' float64 (batch, 16); expected float32*"])
    result.stdout.fnmatch_lines([("*it has 2 inputs ('input' float32 (batch, 16), 'temperature' float32 (1)); "
                                  "expected exactly one")])


def test_an_onnx_export_without_probabilities_first_fails(run_onnx_kit) -> None:
    result = run_onnx_kit(TestLogitsFirst="pass", TestSoftmaxOnnxLogits="pass")
    assert "TestLogitsFirst::test_onnx_export_outputs_probabilities_first" in failed(result)
    assert {check for check in failed(result) if check.startswith("TestSoftmaxOnnxLogits::")} == {
        "TestSoftmaxOnnxLogits::test_onnx_export_outputs_probabilities_first"}  # undeclared, its extra output alone
    result.stdout.fnmatch_lines([
        ("*the ONNX export of framework 'softmax-onnx-logits' must output class probabilities (n, 4) as its only "
         "output, or its first: oip answers requests with the first output and onnx-quant measures accuracy on it. "
         "Found:"),
        ("*its outputs are 'probabilities' float32 (batch, 4), 'logits' float32 (batch, 4), and the test class "
         "declares none (onnx_extra_outputs); export the probabilities as the only output, or as the first, listing "
         "the others in `onnx_extra_outputs` of the test class and in the plugin's documentation")])
    result.stdout.fnmatch_lines([("*its outputs are 'logits' float32 (batch, 4), 'probabilities' float32 (batch, 4), "
                                  "and the test class declares none (onnx_extra_outputs)*")])


def test_an_onnx_export_importing_the_default_opset_twice_fails(run_onnx_kit) -> None:
    result = run_onnx_kit(TestTwoOpsets="pass")
    assert_only_failure(
        result, "TestTwoOpsets::test_onnx_export_imports_one_opset_per_domain",
        ("*the ONNX export of framework 'two-opsets' must import one opset per domain, the default domain ('' or "
         "'ai.onnx', one entry) included; found domain 'ai.onnx': versions [[]17, 13[]]. onnx-quant's quantizer reads "
         "the model's opset from that one entry and stops with 'Failed to find proper ai.onnx domain' otherwise*"),
        passed=18, skipped=1)  # skipped: the regression check (the framework declares classification)


def test_an_onnx_export_answering_unlike_the_native_model_fails(run_onnx_kit) -> None:
    result = run_onnx_kit(TestStandardizing="pass")
    assert_only_failure(
        result, "TestStandardizing::test_onnx_export_answers_as_the_native_model",
        ("*ONNX Runtime on the ONNX export of framework 'standardizing' answers differently from the native model on "
         "the same 48 rows: max difference * in probability (allowed 0.0001); the served model must be the trained "
         "one*"),
        passed=18, skipped=1)


def test_an_onnx_export_whose_answers_depend_on_the_batch_fails(run_onnx_kit) -> None:
    result = run_onnx_kit(TestBatchCentering="pass")
    assert_only_failure(
        result, "TestBatchCentering::test_onnx_export_predicts_a_row_alone_as_in_a_batch",
        ("*ONNX Runtime on the ONNX export of framework 'batch-centering' predicts test row * alone differently from "
         "the same row in a batch of 48: max difference * (allowed 1e-05). oip batches concurrent requests together*"),
        passed=18, skipped=1)


# ---------------------------------------------------------------- native files: trained weights, no code
def test_a_save_that_drops_the_trained_weights_fails(run_onnx_kit) -> None:
    result = run_onnx_kit(TestWeightless="pass", TestBiasless="pass")
    assert failed(result) == {"TestWeightless::test_trained_model_saves_and_loads_with_its_weights",
                              "TestBiasless::test_trained_model_saves_and_loads_with_its_weights"}
    result.stdout.fnmatch_lines([
        ("*framework 'weightless''s trained model, saved, predicts exactly as the untrained model saved the same way, "
         "although training changed it; aios_save_model must write the trained weights, and aios_load_model restore "
         "them rather than build the architecture anew")])
    result.stdout.fnmatch_lines([
        ("*framework 'biasless''s trained model, saved, loaded and saved again predicts differently from the trained "
         "model in memory (read through its onnx export, which answers as the native file for the untrained model): "
         "max difference * in probability (allowed 0.0001); aios_save_model must write the trained weights, and "
         "aios_load_model restore them rather than build the architecture anew, all of them")])


def test_a_load_that_unpickles_the_file_fails(run_onnx_kit) -> None:
    result = run_onnx_kit(TestPickling="pass", TestZipPickling="pass")
    assert failed(result) == {"TestPickling::test_loading_a_native_file_runs_no_code_from_it",
                              "TestZipPickling::test_loading_a_native_file_runs_no_code_from_it"}
    result.stdout.fnmatch_lines([  # a plain pickle catches the first, only the zip-wrapped one the second
        "FAILED test_plugin.py::TestPickling::test_loading_a_native_file_runs_no_code_from_it[[]pickle[]]*",
        "FAILED test_plugin.py::TestZipPickling::test_loading_a_native_file_runs_no_code_from_it[[]zip-wrapped-pickle[]]*",
    ])
    result.stdout.fnmatch_lines([
        ("*aios_load_model of framework 'zip-pickling' ran code from the file: given a zip archive holding "
         "archive/data.pkl (torch's file layout) written at */model.softmax-npz, it unpickled it and the pickle "
         "created */code-ran. A model file someone shares could run anything the same way; read native files with "
         "a loader that runs no code (torch.load(weights_only=True), keras.saving.load_model(safe_mode=True), "
         "numpy.load(allow_pickle=False), safetensors), never pickle.load")])
    result.assert_outcomes(failed=2, passed=2 * 11, skipped=2 * (7 + 1))  # neither exports: no export or ONNX
    # check, and neither declares regression
