"""``DatastoreContract``: a datastore returns well-formed, non-empty splits, the same ones for the same seed."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pytest

from aios_core.records import Dataset
from aios_core.testing._harness import build, fail, fail_raised, label_of, manager_with
from aios_core.testing._validation import check_description, implements, validation_context
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from aios_core.components import Component
    from aios_core.context import RunContext

__all__ = ["DatastoreContract"]


class DatastoreContract(ComponentContract):
    """A datastore returns well-formed, non-empty splits, the same ones for the same seed."""

    kind = "datastore"
    required_hooks = ("aios_load_dataset",)
    _example_name = "sklearn"

    @pytest.fixture
    def load_with_seed(self, component_class: type[Component], component_name: str,
                       component_params: dict[str, Any],
                       aios_run_context: Callable[..., RunContext]) -> Callable[[int], Dataset]:
        """``load_with_seed(seed)``: the Dataset a fresh instance returns for a fresh run with ``seed``."""

        def load(seed: int) -> Dataset:
            component = build(component_class, self.contract_params(component_class, component_params),
                              component_name)
            pm = manager_with(component)
            run = aios_run_context(pm, seed=seed)
            run.phase = "data"
            dataset = pm.hook.aios_load_dataset(run=run)
            if not isinstance(dataset, Dataset):
                fail(f"aios_load_dataset of {label_of(self.kind, component_name)} returned {type(dataset).__name__}; "
                     "it must return an aios_core.Dataset")
            return dataset

        return load

    def test_dataset_splits_are_well_formed(self, component_name: str, component_class: type[Component],
                                            load_with_seed: Callable[[int], Dataset]) -> None:
        import numpy as np

        dataset = load_with_seed(0)
        label = label_of(self.kind, component_name)
        problems = []
        regression = dataset.task == "regression"
        if dataset.task not in getattr(component_class, "tasks", ("classification",)):
            problems.append(f"task is {dataset.task!r}, which the datastore does not declare in `tasks`")
        if regression and dataset.class_names:
            problems.append("class_names must be empty for a regression data set (target_names names the targets)")
        if not regression and len(dataset.class_names) < 2:
            problems.append(f"class_names has {len(dataset.class_names)} entries; a classifier needs at least 2")
        features = dataset.x_train.shape[1] if getattr(dataset.x_train, "ndim", 0) == 2 else None
        for split in ("train", "val", "test"):
            x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
            if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2):
                problems.append(f"x_{split} must be a float32 array of shape (n, features), "
                                f"found {type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
                continue
            if regression and not (isinstance(y, np.ndarray) and y.dtype == np.float32 and y.ndim == 2
                                   and y.shape[1] == dataset.num_targets):
                problems.append(f"y_{split} of a regression data set must be a float32 array of shape (n, targets), "
                                f"found {type(y).__name__} {getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}")
                continue
            if not regression and not (isinstance(y, np.ndarray) and y.dtype == np.int64 and y.ndim == 1):
                problems.append(f"y_{split} must be an int64 array of shape (n,), "
                                f"found {type(y).__name__} {getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}")
                continue
            if len(x) == 0:
                problems.append(f"the {split} split is empty")
            if len(x) != len(y):
                problems.append(f"x_{split} has {len(x)} rows but y_{split} has {len(y)} labels")
            if x.shape[1] != features:
                problems.append(f"x_{split} has {x.shape[1]} features, x_train has {features}")
            if not np.all(np.isfinite(x)):
                problems.append(f"x_{split} holds {int(np.sum(~np.isfinite(x)))} NaN or infinite values")
            if regression and not np.all(np.isfinite(y)):
                problems.append(f"y_{split} holds {int(np.sum(~np.isfinite(y)))} NaN or infinite targets")
            elif not regression and len(y) and (y.min() < 0 or y.max() >= len(dataset.class_names)):
                problems.append(f"y_{split} holds labels {int(y.min())}..{int(y.max())}, outside "
                                f"0..{len(dataset.class_names) - 1} (indices into class_names)")
        if dataset.image_shape is not None and features is not None and math.prod(dataset.image_shape) != features:
            problems.append(f"image_shape {tuple(dataset.image_shape)} holds {math.prod(dataset.image_shape)} values, "
                            f"but rows have {features} features")
        if not (isinstance(dataset.content_hash, str) and dataset.content_hash):
            problems.append("content_hash is empty; set it with aios_core.hash_arrays(raw arrays, parameters)")
        try:
            json.dumps(dataset.summary())
        except (TypeError, ValueError) as error:
            problems.append(f"summary() is not JSON-able (check class_names and preprocessing): {error}")
        if problems:
            fail(f"aios_load_dataset of {label} returned a malformed Dataset:\n  " + "\n  ".join(problems))

    def test_described_data_is_the_loaded_data(self, component: Component, tmp_path: Path,
                                               load_with_seed: Callable[[int], Dataset]) -> None:
        label = label_of(self.kind, component.name)
        if not implements(component, "aios_describe_data"):
            pytest.skip(f"{label} does not implement aios_describe_data")
        context = validation_context(component, tmp_path / "describe", None)
        try:
            description = manager_with(component).hook.aios_describe_data(context=context)
        except Exception as error:
            fail_raised(f"aios_describe_data of {label} raised on a valid configuration (its component_params); "
                        "return None when the data cannot be described before loading", error)
        check_description(description, load_with_seed(0), label)

    def test_same_seed_gives_the_same_dataset(self, component_name: str, load_with_seed: Callable[[int], Dataset]) -> None:
        import numpy as np

        first, second = load_with_seed(0), load_with_seed(0)
        label = label_of(self.kind, component_name)
        if first.content_hash != second.content_hash:
            fail(f"{label} gave content_hash {first.content_hash[:12]} then {second.content_hash[:12]} for the same "
                 "seed; the hash must identify the raw data and parameters only (no time, no random values)")
        different = [name for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
                     if not np.array_equal(getattr(first, name), getattr(second, name))]
        if different or first.class_names != second.class_names:
            fail(f"{label} gave different {', '.join(different) or 'class_names'} for the same seed; draw every "
                 "random choice (split, shuffle) from run.seed")
