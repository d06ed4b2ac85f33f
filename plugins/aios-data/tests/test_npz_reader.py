"""The uncompressed-archive reader gives exactly what ``np.load`` gives, and leaves every other member to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aios_data import _files
from aios_data._files import _stored_npy, read_npz

ARRAYS = {
    "c_order": np.arange(24, dtype=np.float32).reshape(4, 6),
    "fortran": np.asfortranarray(np.arange(24.0).reshape(4, 6)),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "text": np.array(["a", "bc"]),
    "big_endian": np.arange(10, dtype=">i4"),
    "images": np.random.default_rng(0).random((50, 3, 8, 8)).astype(np.float32),
}


@pytest.fixture(params=[1, 4096])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of 1 byte and of 4 KiB: the CRC chained over many chunks, and over a few."""
    monkeypatch.setattr(_files, "NPY_CHUNK", request.param)
    return request.param


def test_stored_members_equal_np_load(tmp_path: Path, chunk: int) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, **ARRAYS)
    with np.load(path) as archive:
        for key, expected in ARRAYS.items():
            read = _stored_npy(archive.zip, key, path)
            assert read is not None, key
            assert read.dtype == expected.dtype and read.shape == expected.shape, key
            assert read.flags.f_contiguous == expected.flags.f_contiguous, key
            np.testing.assert_array_equal(read, expected)


def test_compressed_and_object_members_are_left_to_np_load(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "z.npz", x=ARRAYS["c_order"])
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    with np.load(tmp_path / "z.npz") as archive:
        assert _stored_npy(archive.zip, "x", tmp_path / "z.npz") is None
    with np.load(tmp_path / "o.npz", allow_pickle=False) as archive:
        assert _stored_npy(archive.zip, "x", tmp_path / "o.npz") is None


def test_read_npz_reads_both_kinds_alike(tmp_path: Path) -> None:
    x, y = ARRAYS["images"], np.arange(50) % 4
    np.savez(tmp_path / "s.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "z.npz", x=x, y=y)
    stored, compressed = read_npz(tmp_path / "s.npz", "x", "y"), read_npz(tmp_path / "z.npz", "x", "y")
    np.testing.assert_array_equal(stored.features, compressed.features)
    np.testing.assert_array_equal(stored.labels, compressed.labels)
    assert stored.image_shape == compressed.image_shape == (3, 8, 8)
