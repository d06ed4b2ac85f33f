"""scikit-learn's bundled data sets, read from the installed package (no download), and what each holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from aios_data._prepare import RawData


class BundledSet(NamedTuple):
    """What one of scikit-learn's bundled data sets holds, known without loading it."""

    rows: int
    features: int
    classes: int  # 0: a regression set
    image_shape: tuple[int, int, int] | None


BUNDLED_SETS = {
    "digits": BundledSet(1797, 64, 10, (1, 8, 8)),
    "iris": BundledSet(150, 4, 3, None),
    "wine": BundledSet(178, 13, 3, None),
    "breast_cancer": BundledSet(569, 30, 2, None),
    "diabetes": BundledSet(442, 10, 0, None),
}


def load_bundled(name: str) -> RawData:
    """``sklearn.datasets.load_<name>()`` as raw data, with its feature and class names."""
    from sklearn import datasets

    from aios_data._prepare import FIELD, RawData

    bunch = getattr(datasets, f"load_{name}")()
    feature_names = getattr(bunch, "feature_names", None)
    return RawData(
        name=name,
        source=f"scikit-learn's {name} data set",
        features=bunch.data,
        labels=bunch.target,
        label_field=f"{FIELD}.dataset",
        class_names=[str(target) for target in bunch.target_names] if hasattr(bunch, "target_names") else None,
        task="regression" if BUNDLED_SETS[name].classes == 0 else "classification",
        feature_names=[str(feature) for feature in feature_names] if feature_names is not None else None,
        image_shape=BUNDLED_SETS[name].image_shape,
    )
