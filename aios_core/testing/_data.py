"""The kit's data set: small, deterministic, learnable in a few epochs, shaped like a 1x4x4 image."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aios_core.records import Dataset

GENERATOR = "aios_core.testing.tiny_dataset/1"


def tiny_dataset(seed: int = 0, *, classes: int = 4, rows_per_class: int = 60) -> Dataset:
    """Gaussian classes in 16 features (a 1x4x4 image), split 60/20/20 per class and standardized.

    The same ``seed`` gives the same arrays and ``content_hash``. Class means are far
    apart compared with the noise, so an MLP or a small CNN lowers its loss within a
    few epochs; the whole set is ``classes * rows_per_class`` rows (240 by default).
    """
    import numpy as np

    from aios_core.records import Dataset, hash_arrays

    if classes < 2 or rows_per_class < 5:
        raise ValueError(f"tiny_dataset needs classes >= 2 and rows_per_class >= 5, got {classes} and {rows_per_class}")
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, size=(classes, 16))
    x = np.concatenate([mean + rng.normal(0.0, 1.0, size=(rows_per_class, 16)) for mean in means])
    y = np.repeat(np.arange(classes, dtype=np.int64), rows_per_class)
    raw = x.astype(np.float32)

    n_val = n_test = max(1, round(rows_per_class * 0.2))
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in range(classes):
        rows = rng.permutation(np.flatnonzero(y == label))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test:n_test + n_val])
        parts["train"].append(rows[n_test + n_val:])
    index = {split: rng.permutation(np.concatenate(chunks)) for split, chunks in parts.items()}

    mean = raw[index["train"]].mean(axis=0)
    std = raw[index["train"]].std(axis=0)
    std[std == 0] = 1.0

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = index[name]
        return np.ascontiguousarray((raw[rows] - mean) / std, dtype=np.float32), np.ascontiguousarray(y[rows])

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = split("train"), split("val"), split("test")
    settings = {"generator": GENERATOR, "seed": seed, "classes": classes, "rows_per_class": rows_per_class}
    return Dataset(
        name="tiny", x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        class_names=[f"class-{label}" for label in range(classes)],
        content_hash=hash_arrays(raw, y, settings),
        image_shape=(1, 4, 4),
        feature_names=[f"pixel-{row}-{column}" for row in range(4) for column in range(4)],
        preprocessing={"standardize": {"mean": mean.round(6).tolist(), "std": std.round(6).tolist()}, **settings},
    )


REGRESSION_GENERATOR = "aios_core.testing.tiny_regression_dataset/1"


def tiny_regression_dataset(seed: int = 0, *, rows: int = 240) -> Dataset:
    """A regression set: 16 features (a 1x4x4 image), one target, a smooth function of the features plus
    noise, split 60/20/20 at random; features and target standardized on the train split.

    An MLP lowers its MSE within a few epochs; ``target_scaling`` records the target's mean
    and std (the raw target is about 50 +- 10), so un-scaling can be checked.
    """
    import numpy as np

    from aios_core.records import Dataset, hash_arrays

    if rows < 20:
        raise ValueError(f"tiny_regression_dataset needs rows >= 20, got {rows}")
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(rows, 16))
    weights = rng.normal(0.0, 1.0, size=16)
    y = 50.0 + 10.0 * np.tanh(x @ weights / 4.0) + rng.normal(0.0, 1.0, size=rows)
    order = rng.permutation(rows)
    n_test = n_val = rows // 5
    index = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    mean, std = x[index["train"]].mean(axis=0), x[index["train"]].std(axis=0)
    target_mean, target_std = float(y[index["train"]].mean()), float(y[index["train"]].std())

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        chosen = index[name]
        return (np.ascontiguousarray((x[chosen] - mean) / std, dtype=np.float32),
                np.ascontiguousarray(((y[chosen] - target_mean) / target_std).reshape(-1, 1), dtype=np.float32))

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = split("train"), split("val"), split("test")
    settings = {"generator": REGRESSION_GENERATOR, "seed": seed, "rows": rows}
    return Dataset(
        name="tiny-regression", x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test,
        y_test=y_test, class_names=[], content_hash=hash_arrays(x, y, settings), image_shape=(1, 4, 4),
        feature_names=[f"pixel-{row}-{column}" for row in range(4) for column in range(4)],
        preprocessing={"standardize": {"mean": mean.round(6).tolist(), "std": std.round(6).tolist()}, **settings},
        task="regression", target_names=["target"],
        target_scaling={"scaling": "standardize", "mean": [target_mean], "std": [target_std]},
    )
