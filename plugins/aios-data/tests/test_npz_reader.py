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
            member = _stored_npy(archive.zip, key, path)
            assert member is not None, key
            assert member.dtype == expected.dtype and member.shape == expected.shape, key  # from the header
            read = member.read(None)
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


@pytest.mark.parametrize("compressed", [False, True])
def test_pending_features_are_read_when_asked_and_prepare_alike(tmp_path: Path, compressed: bool) -> None:
    """``pending``: an uncompressed archive's features are checked from their header and read later (the labels
    are split meanwhile); the data set is the one the eager read gives, also when rows are dropped (then the split
    made meanwhile is not the one kept). A compressed archive is read at once."""
    from aios_data import FilesDatastore
    from aios_data._prepare import PendingArray, prepare_dataset

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3, 4, 4)).astype(np.float32).transpose(0, 2, 3, 1)  # channels last: made first
    y = np.arange(300) % 3
    for drop in (False, True):
        if drop:
            x[7, 0, 0, 0] = np.nan
        path = tmp_path / f"t{drop}.npz"
        (np.savez_compressed if compressed else np.savez)(path, x=x, y=y)
        reports: list[tuple] = []
        pending = read_npz(path, "x", "y", lambda *report: reports.append(report), pending=True)
        eager = read_npz(path, "x", "y")
        assert isinstance(pending.features, PendingArray) != compressed
        assert pending.image_shape == eager.image_shape == (3, 4, 4)
        if not compressed:
            assert reports[-1] == ("reading", 1, 2, "arrays")  # the labels; the features when they are read
        params = FilesDatastore.Params(path=path)
        datasets = [prepare_dataset(raw, params, seed=3, hash_params={}, progress=lambda *report: reports.append(report))
                    for raw in (pending, eager)]
        assert ("reading", 2, 2, "arrays") in reports
        assert datasets[0].content_hash == datasets[1].content_hash
        assert datasets[0].preprocessing == datasets[1].preprocessing
        assert datasets[0].preprocessing["dropped_missing"] == int(drop)
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(datasets[0].views[name].index, datasets[1].views[name].index)
            np.testing.assert_array_equal(getattr(datasets[0], f"x_{name}"), getattr(datasets[1], f"x_{name}"))


@pytest.mark.parametrize("layout", ["float32", "float64", "fortran", "channels_last", "one_column", "uint8"])
def test_the_read_checks_nan_and_hashes_as_it_goes_as_a_pass_afterwards_would(tmp_path: Path, layout: str,
                                                                             chunk: int) -> None:
    """The pending read shows each piece to the NaN check and (float32) the content hash as it is read, or the
    laid-out array at once when its bytes move (Fortran order, channels last): the same data set as the eager read,
    with a NaN in any piece or none."""
    from aios_data import FilesDatastore
    from aios_data._prepare import prepare_dataset

    rng = np.random.default_rng(5)
    x = {"float32": rng.normal(size=(600, 7)).astype(np.float32),
         "float64": rng.normal(size=(600, 7)),
         "fortran": np.asfortranarray(rng.normal(size=(600, 7)).astype(np.float32)),
         "channels_last": rng.normal(size=(600, 4, 4, 3)).astype(np.float32),
         "one_column": rng.normal(size=600).astype(np.float32),
         "uint8": rng.integers(0, 255, size=(600, 9), dtype=np.uint8)}[layout]
    y = np.arange(600) % 3
    for nan_row in (None, 0, 599):
        if nan_row is not None and layout == "uint8":
            continue
        values = x.copy(order="K")
        if nan_row is not None:
            values.reshape(600, -1)[nan_row, -1] = np.nan
        path = tmp_path / f"{layout}{nan_row}.npz"
        np.savez(path, x=values, y=y)
        params = FilesDatastore.Params(path=path)
        pending, eager = (prepare_dataset(read_npz(path, "x", "y", pending=p), params, seed=1, hash_params={})
                          for p in (True, False))
        assert pending.content_hash == eager.content_hash
        assert pending.preprocessing == eager.preprocessing
        assert pending.preprocessing["dropped_missing"] == (nan_row is not None)
        np.testing.assert_array_equal(pending.x_test, eager.x_test)


_TWO_AT_ONCE = r"""
import sys, threading
import numpy as np
from aios_data import FilesDatastore, _files
from aios_data._files import read_data_file
from aios_data._prepare import prepare_dataset

_files.NPY_CHUNK = 4096  # many CRC-32 sums per read, each waited for on the shared threads
done = []
def load(path):
    params = FilesDatastore.Params(path=path)
    done.append(prepare_dataset(read_data_file(params, pending=True), params, seed=0, hash_params={}).content_hash)
threads = [threading.Thread(target=load, args=(path,)) for path in sys.argv[1:]]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(done))
"""


def test_two_pending_reads_at_once_finish(tmp_path: Path) -> None:
    """Two data sets prepared at once in one process, each NPZ read waiting for its CRC-32 sums on the shared
    background threads: neither read may hold a shared thread (both would wait for ever). In a child process,
    so that a hang fails the test by its timeout."""
    import subprocess
    import sys

    rng = np.random.default_rng(4)
    paths = []
    for index in range(2):
        paths.append(tmp_path / f"t{index}.npz")
        np.savez(paths[-1], x=rng.normal(size=(3000, 8)).astype(np.float32), y=np.arange(3000) % 3)
    result = subprocess.run([sys.executable, "-c", _TWO_AT_ONCE, *map(str, paths)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
