"""The deploy phase's smoke test compares each answer of the server with the in-process answer to the same call.

It fails, with the reason in ``problems``, when the served model answers differently
(here: its file was replaced after the in-process predictor loaded it). A model whose
answers depend on the batch (dynamic int8) is compared like with like: the batch
request with the batch, each single row with that row alone, sent one at a time so the
server's micro-batching does not mix them; the report warns about micro-batching.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aios_serve import OipDeployer
from aios_serve._deploy import TOLERANCE
from aios_serve_test_helpers import ModelReplacer, write_mlp

from aios_core import Dataset, ModelArtifact, RunContext, RunOptions, onnx_predictor
from aios_core.testing import plugin_manager


def _deploy(artifact: ModelArtifact, dataset: Dataset, run_context: Callable[..., RunContext], *extra: Any,
            **params: Any) -> dict[str, Any]:
    """``aios_deploy`` as the runner calls it (deploy phase started, monitors told), without --serve."""
    pm = plugin_manager(OipDeployer(OipDeployer.Params(smoke_requests=40, **params)), *extra)
    run = run_context(pm, options=RunOptions(serve=False))
    run.phase = "deploy"
    pm.hook.aios_on_phase_start(run=run, phase="deploy")
    return pm.hook.aios_deploy(artifact=artifact, dataset=dataset, run=run)


def _onnx(path: Path) -> ModelArtifact:
    return ModelArtifact(name="onnx", path=path, format="onnx", producer="test")


@pytest.fixture(scope="module")
def quantized(digits_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ModelArtifact]:
    """The helpers' MLP quantized by onnx-quant in one mode."""
    from aios_onnx_quant import OnnxQuantCompressor

    model = _onnx(write_mlp(tmp_path_factory.mktemp("fp32") / "model.onnx"))

    def make(mode: str) -> ModelArtifact:
        pm = plugin_manager(OnnxQuantCompressor(OnnxQuantCompressor.Params(mode=mode, latency_runs=5)))
        run = RunContext(name="quantize", seed=0, threads=1, dir=tmp_path_factory.mktemp(mode), stack={}, hook=pm.hook)
        return pm.hook.aios_compress(artifact=model, dataset=digits_dataset, run=run)

    return make


def test_a_model_replaced_after_the_reference_loaded_fails_with_the_reason(
        digits_dataset: Dataset, aios_run_context: Callable[..., RunContext], tmp_path: Path) -> None:
    artifact = _onnx(write_mlp(tmp_path / "model.onnx"))
    smoke = _deploy(artifact, digits_dataset, aios_run_context, ModelReplacer())["smoke_test"]
    assert smoke["passed"] is False
    assert smoke["max_abs_diff"] > TOLERANCE
    assert any("differ from the in-process predictions" in problem for problem in smoke["problems"]), smoke


def test_an_unchanged_model_passes(digits_dataset: Dataset, aios_run_context: Callable[..., RunContext],
                                   tmp_path: Path) -> None:
    smoke = _deploy(_onnx(write_mlp(tmp_path / "model.onnx")), digits_dataset, aios_run_context)["smoke_test"]
    assert smoke["passed"] is True and smoke["problems"] == [] and smoke["warnings"] == []
    assert smoke["batch_dependent"] is False and smoke["concurrent_clients"] == 4


def test_the_static_int8_model_passes_with_concurrent_clients(
        quantized: Callable[[str], ModelArtifact], digits_dataset: Dataset,
        aios_run_context: Callable[..., RunContext]) -> None:
    # static QDQ is the int8 variant onnx-quant's auto may keep (batch-independent); whether auto keeps it
    # or fp32 depends on measured speed (issue 12), so the test names the mode itself
    artifact = quantized("static")
    smoke = _deploy(artifact, digits_dataset, aios_run_context)["smoke_test"]
    assert smoke["passed"] is True and smoke["batch_dependent"] is False and smoke["concurrent_clients"] == 4


def test_a_batch_dependent_model_is_compared_like_with_like_and_warned_about(
        quantized: Callable[[str], ModelArtifact], digits_dataset: Dataset,
        aios_run_context: Callable[..., RunContext]) -> None:
    artifact = quantized("dynamic")
    predict, rows = onnx_predictor(artifact.path), digits_dataset.x_test
    alone = np.concatenate([predict(rows[index:index + 1]) for index in range(40)])
    assert np.abs(alone - predict(rows)[:40]).max() > TOLERANCE  # the answers really depend on the batch
    smoke = _deploy(artifact, digits_dataset, aios_run_context)["smoke_test"]
    assert smoke["passed"] is True, smoke["problems"]
    assert smoke["batch_dependent"] is True and smoke["concurrent_clients"] == 1
    (warning,) = smoke["warnings"]
    assert "max_batch_size" in warning and "mode: static" in warning


def test_without_micro_batching_a_batch_dependent_model_keeps_concurrent_clients(
        quantized: Callable[[str], ModelArtifact], digits_dataset: Dataset,
        aios_run_context: Callable[..., RunContext]) -> None:
    smoke = _deploy(quantized("dynamic"), digits_dataset, aios_run_context, max_batch_size=1)["smoke_test"]
    assert smoke["passed"] is True and smoke["batch_dependent"] is True and smoke["concurrent_clients"] == 4


def test_the_child_server_requires_the_run_s_token_and_its_timing_reads_its_metrics(run_dir: Path) -> None:
    import httpx
    from aios_serve._repository import spec_from_run_dir
    from aios_serve.server import ChildServer, ServerSettings

    spec = spec_from_run_dir(run_dir)
    with ChildServer(spec, ServerSettings(token="s3cret")) as server:
        timing = server.timing(spec.name, spec.version)
        assert timing() == (0, 0.0)
        url = f"{server.url}/v2/models/{spec.name}/infer"
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        count, seconds = timing()
        assert count == 1 and seconds > 0
    assert server._process is None


def test_a_child_server_that_cannot_start_is_reported_in_one_line_and_reaped(tmp_path: Path) -> None:
    from aios_serve._repository import ModelSpec
    from aios_serve.server import ChildServer, ServerSettings

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    server = ChildServer(ModelSpec(name="broken", version="1", path=broken), ServerSettings())
    with pytest.raises(RuntimeError) as raised:
        server.start()
    message = str(raised.value)
    assert "\n" not in message and "exited with status" in message and "ONNX Runtime cannot load it" in message
    assert server._process is None and server._folder is None  # stopped, reaped, its bundle removed
