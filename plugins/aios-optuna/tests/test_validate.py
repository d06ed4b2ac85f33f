"""A bad search space is refused at ``aios validate``, before a run directory exists: one line per mistake."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import stack_text

from aios_core.stack import StackError, load_stack
from aios_optuna._space import parse_space

BAD_SPACE = {
    "model.hiden_units": [[8], [16]],
    "trainer.learning_rate": {"low": 0.1, "high": 0.01},
    "model.activation": [],
    "trainer.weight_decay": {"low": 0.0, "high": 0.1, "log": True},
    "model.dropout": [0.2, 1.5],
    "data.dataset": ["digits"],
}


def _problems(tmp_path, tuner: dict) -> list[str]:
    path = tmp_path / "stack.yaml"
    path.write_text(stack_text(tuner))
    with pytest.raises(StackError) as raised:
        load_stack(path)
    return [str(problem) for problem in raised.value.problems]


def test_each_mistake_in_the_space_is_one_line_naming_its_line(tmp_path) -> None:
    problems = _problems(tmp_path, {"space": BAD_SPACE})
    text = (tmp_path / "stack.yaml").read_text().splitlines()
    assert len(problems) == 6, problems
    expected = [
        ("model.hiden_units", "unknown parameter: framework 'torch' has no parameter 'hiden_units'",
         "did you mean 'model.hidden_units'?", "model.hiden_units:"),
        ("trainer.learning_rate", "low 0.1 > high 0.01", "swap them", "trainer.learning_rate:"),
        ("model.activation", "empty choices", "", "model.activation: []"),
        ("trainer.weight_decay.low", "log range must lie above 0", "", "low: 0.0"),
        ("model.dropout.1", "found 1.5, expected less than 1", "", "- 1.5"),
        ("data.dataset", "expected model.<parameter> or trainer.<parameter>", "", "data.dataset:"),
    ]
    for problem, (field, message, hint, line_text) in zip(problems, expected):
        where, _, rest = problem.partition(": ")
        source, _, line = where.rpartition(":")
        assert source == str(tmp_path / "stack.yaml")
        assert rest.startswith(f"tuner.space.{field}: "), problem
        assert message in rest and hint in rest, problem
        assert text[int(line) - 1].strip() == line_text, problem


def test_aios_validate_refuses_a_bad_space_without_a_traceback(tmp_path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(stack_text({"space": {"trainer.learning_rate": {"low": 0.1, "high": 0.01}}}))
    result = subprocess.run([sys.executable, "-m", "aios_core", "validate", str(path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "tuner.space" in line]
    assert len(lines) == 1 and "low 0.1 > high 0.01" in lines[0], result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_parameters_the_tuner_cannot_combine_are_refused(tmp_path) -> None:
    several = _problems(tmp_path, {"objectives": ["val_accuracy", "size_bytes"], "pruner": "hyperband",
                                   "space": {"model.hidden_units": [[8], [16]]}})
    assert len(several) == 1 and "hyperband needs one objective" in several[0]
    cmaes = _problems(tmp_path, {"sampler": "cmaes", "space": {"model.hidden_units": [[8], [16]]}})
    assert len(cmaes) == 1 and cmaes[0].split(": ")[1] == "tuner.sampler" and "ranges only" in cmaes[0]
    select = _problems(tmp_path, {"objectives": ["val_loss", "size_bytes"], "select": {"max_accuracy_drop": 0.01},
                                  "space": {"model.hidden_units": [[8], [16]]}})
    assert len(select) == 1 and "needs val_accuracy" in select[0]


def test_an_integer_parameter_gets_an_integer_range() -> None:
    dimensions, problems = parse_space({"trainer.batch_size": {"low": 32, "high": 128, "step": 32},
                                        "trainer.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                                        "model.hidden_units": [[64], [128, 64]]})
    assert problems == []
    kinds = {d.name: d.kind for d in dimensions}
    assert kinds == {"trainer.batch_size": "int", "trainer.learning_rate": "float", "model.hidden_units": "categorical"}
    hidden = dimensions[2]
    assert hidden.labels() == ("[64]", "[128, 64]") and hidden.value("[128, 64]") == [128, 64]


def test_a_float_step_with_a_log_range_is_refused() -> None:
    _, problems = parse_space({"trainer.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}})
    assert [path for path, _ in problems] == [("space", "trainer.learning_rate", "step")]


def test_a_storage_password_is_kept_out_of_the_lock_file(tmp_path, monkeypatch) -> None:
    space = {"model.hidden_units": [[8], [16]]}
    inline = _problems(tmp_path, {"storage": "postgresql://aios:secret@db.example.com/aios", "space": space})
    assert len(inline) == 1 and "tuner.storage: the URL holds a password" in inline[0]
    assert "storage_env: AIOS_OPTUNA_STORAGE" in inline[0] and "secret" not in inline[0]
    monkeypatch.delenv("AIOS_TEST_STORAGE", raising=False)
    unset = _problems(tmp_path, {"storage_env": "AIOS_TEST_STORAGE", "space": space})
    assert len(unset) == 1 and "tuner.storage_env: found 'AIOS_TEST_STORAGE', but that environment variable" in unset[0]


def test_the_storage_url_comes_from_the_named_variable(tmp_path, monkeypatch) -> None:
    from aios_optuna import OptunaParams
    from aios_optuna._study import storage_url

    class Run:
        dir = tmp_path

    monkeypatch.setenv("AIOS_TEST_STORAGE", f"sqlite:///{tmp_path / 'shared.db'}")
    params = OptunaParams(storage_env="AIOS_TEST_STORAGE", space={"model.dropout": [0.0]})
    assert storage_url(params, Run()) == f"sqlite:///{tmp_path / 'shared.db'}"
    assert storage_url(OptunaParams(space={"model.dropout": [0.0]}), Run()) == f"sqlite:///{tmp_path}/tune/study.db"
