"""scikit-learn's bundled data sets, read from the installed package (no download)."""

from __future__ import annotations

from aios_data._prepare import FIELD, RawData

_IMAGE_SHAPES = {"digits": (1, 8, 8)}


def load_bundled(name: str) -> RawData:
    """``sklearn.datasets.load_<name>()`` as raw data, with its feature and class names."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    feature_names = getattr(bunch, "feature_names", None)
    return RawData(
        name=name,
        source=f"scikit-learn's {name} data set",
        features=bunch.data,
        labels=bunch.target,
        label_field=f"{FIELD}.dataset",
        class_names=[str(target) for target in bunch.target_names],
        feature_names=[str(feature) for feature in feature_names] if feature_names is not None else None,
        image_shape=_IMAGE_SHAPES.get(name),
    )
