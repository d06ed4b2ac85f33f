"""The contract kit (aios_core.testing): both deployers deploy a model and pass their smoke test.

The input model needs no framework and not even the ``onnx`` package (aios-serve does not
depend on it, and the contract runs with only aios-kernel beside the plugin): a file
shipped with the tests, ``data/tiny-mlp.onnx``, the helpers' MLP (fixed random weights)
sized for the kit's ``tiny_dataset``; ``test_the_shipped_model_is_the_helpers_mlp``
checks it is still what ``write_mlp`` makes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aios_core import Dataset, ModelArtifact
from aios_core.testing import DeployerContract

SHIPPED_MODEL = Path(__file__).parent / "data" / "tiny-mlp.onnx"


class OnnxInput:
    """The kit's input model, replaced by an ONNX classifier of the tiny data set's shape."""

    @pytest.fixture
    def input_artifact(self, tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
        assert (tiny_dataset.num_features, tiny_dataset.num_classes) == (16, 4), "data/tiny-mlp.onnx is 16 -> 4"
        path = shutil.copyfile(SHIPPED_MODEL, tmp_path_factory.mktemp("contract-input") / "model.onnx")
        return ModelArtifact(name="onnx", path=Path(path), format="onnx", producer="test")


def test_the_shipped_model_is_the_helpers_mlp(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="the test extra installs onnx")
    from aios_serve_test_helpers import write_mlp

    assert write_mlp(tmp_path / "mlp.onnx", features=16, classes=4).read_bytes() == SHIPPED_MODEL.read_bytes()


class TestOipDeployer(OnnxInput, DeployerContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "oip"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"smoke_requests": 24}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"port": 70000}, {"max_batch_size": 0}, {"max_delay_ms": -1},
                {"token_env": "not a variable"}]


class TestKServeDeployer(OnnxInput, DeployerContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "kserve"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"smoke_requests": 24}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"service_name": "Not_A_DNS_Name"}, {"max_batch_size": 0}]
