"""The nearest-centroid model: class means and a shared variance from running sums, and its ``.npz`` file format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aios_core import atomic_path

FILE_FORMAT = "nearest-centroid/1"
"""Written into every file, so ``load`` can tell its own files (and their version) from others."""


@dataclass
class NearestCentroid:
    """A Gaussian per class with a shared, isotropic variance, fitted from running sums by ``partial_fit``.

    ``counts`` (classes,), ``sums`` (classes, features) and ``squares`` (classes,) are the
    rows seen per class, their sum and the sum of their squared norms: enough to compute
    the centroids and the variance, and to go on learning after a save and a load. An
    unfitted model (no rows seen) has no centroids and predicts the uniform distribution.
    """

    counts: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    priors: str = "uniform"
    min_variance: float = 1e-3

    @classmethod
    def unfitted(cls, features: int, classes: int, priors: str = "uniform",
                 min_variance: float = 1e-3) -> NearestCentroid:
        return cls(np.zeros(classes, dtype=np.int64), np.zeros((classes, features)), np.zeros(classes),
                   priors, min_variance)

    @property
    def fitted(self) -> bool:
        return bool(self.counts.sum() > 0)

    def partial_fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Learn from one batch of rows ``x`` (n, features) with class indices ``y`` (n,)."""
        x = np.asarray(x, dtype=np.float64)
        classes = len(self.counts)
        self.counts += np.bincount(y, minlength=classes)
        np.add.at(self.sums, y, x)
        self.squares += np.bincount(y, weights=np.einsum("ij,ij->i", x, x), minlength=classes)

    def linear(self) -> tuple[np.ndarray, np.ndarray]:
        """``weights`` (features, classes) and ``biases`` (classes,): ``softmax(x @ weights + biases)`` is
        ``predict_proba(x)``.

        The log-density of class k is ``-|x - c_k|^2 / 2v`` plus a constant; the ``|x|^2``
        term is the same for every class and cancels in the softmax, leaving a linear function
        of ``x``. A class with no rows yet gets probability 0 (bias ``-inf``).
        """
        classes, features = self.sums.shape
        weights, biases = np.zeros((features, classes)), np.zeros(classes)
        seen = self.counts > 0
        if not seen.any():
            return weights.astype(np.float32), biases.astype(np.float32)
        centroids = self.sums[seen] / self.counts[seen, None]
        within = self.squares[seen].sum() - (self.counts[seen] * np.einsum("ij,ij->i", centroids, centroids)).sum()
        variance = max(within / (self.counts.sum() * features), self.min_variance)
        weights[:, seen] = centroids.T / variance
        biases[seen] = -np.einsum("ij,ij->i", centroids, centroids) / (2.0 * variance)
        if self.priors == "frequency":
            biases[seen] += np.log(self.counts[seen] / self.counts.sum())
        biases[~seen] = -np.inf
        return weights.astype(np.float32), biases.astype(np.float32)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) for a float32 batch (n, features)."""
        weights, biases = self.linear()
        return softmax(np.asarray(x, dtype=np.float32) @ weights + biases)

    def copy(self) -> NearestCentroid:
        return NearestCentroid(self.counts.copy(), self.sums.copy(), self.squares.copy(), self.priors,
                               self.min_variance)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


def save(model: NearestCentroid, path: Path) -> None:
    """Write ``model`` to ``path`` atomically, as plain arrays (no pickled objects)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle, so numpy keeps the name as it is
        np.savez(handle, format=np.array(FILE_FORMAT), counts=model.counts, sums=model.sums,
                 squares=model.squares, priors=np.array(model.priors), min_variance=np.array(model.min_variance))


def load(path: Path) -> NearestCentroid:
    """Read a model written by ``save``; refuses pickled objects and files of other formats (ValueError)."""
    data = np.load(path, allow_pickle=False)  # a pickle raises ValueError here instead of running
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a {FILE_FORMAT} model file (a single array, not an .npz archive)")
    with data:
        found = str(data["format"]) if "format" in data.files else None
        if found != FILE_FORMAT:
            raise ValueError(f"{path}: not a {FILE_FORMAT} model file (found format {found!r})")
        model = NearestCentroid(data["counts"].astype(np.int64), data["sums"].astype(np.float64),
                                data["squares"].astype(np.float64), str(data["priors"]), float(data["min_variance"]))
    if model.sums.shape != (len(model.counts), model.sums.shape[1]) or model.squares.shape != model.counts.shape:
        raise ValueError(f"{path}: inconsistent array shapes {model.counts.shape}, {model.sums.shape}, "
                         f"{model.squares.shape}")
    return model
