"""The ``files`` datastore: CSV, Parquet, NPZ and IDX files, cleaning and one-hot encoding."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aios_core import Dataset

from aios_data import FilesDatastore

Load = Callable[..., Dataset]


def animals(rows_per_class: int = 8) -> pd.DataFrame:
    """A table of 3 animal classes with a numeric, an integer and a colour column."""
    rng = np.random.default_rng(0)
    names = np.repeat(["emu", "cat", "dog"], rows_per_class)
    return pd.DataFrame({
        "weight": np.round(rng.normal(10, 3, len(names)), 3),
        "legs": np.where(names == "emu", 2, 4),
        "color": rng.choice(["red", "green", "blue"], len(names)),
        "target": names,
    })


def all_rows(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([ds.x_train, ds.x_val, ds.x_test]), np.concatenate([ds.y_train, ds.y_val, ds.y_test])


# ---------------------------------------------------------------- CSV and Parquet
def test_csv_loads_with_sorted_class_names(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "animals.csv"
    animals().drop(columns="color").to_csv(path, index=False)
    ds = load(FilesDatastore, path=path)
    assert ds.name == "animals"
    assert ds.class_names == ["cat", "dog", "emu"]
    assert ds.feature_names == ["weight", "legs"]
    x, y = all_rows(ds)
    assert x.dtype == np.float32 and x.shape == (24, 2) and y.dtype == np.int64
    assert np.array_equal(np.bincount(y), [8, 8, 8])
    assert ds.image_shape is None


def test_csv_cleaning_counts_missing_and_duplicate_rows(load: Load, tmp_path: Path) -> None:
    table = animals().drop(columns="color")
    table.loc[1, "weight"] = np.nan
    table.loc[9, "target"] = None
    table = pd.concat([table, table.iloc[[2, 3, 10]], table.iloc[[1]]], ignore_index=True)
    path = tmp_path / "animals.csv"
    table.to_csv(path, index=False)
    ds = load(FilesDatastore, path=path, clean={"drop_missing": True, "drop_duplicates": True})
    assert ds.preprocessing["dropped_missing"] == 3  # rows 1, 9 and the copy of row 1
    assert ds.preprocessing["dropped_duplicates"] == 3
    assert len(all_rows(ds)[1]) == 28 - 6


def test_cleaning_can_keep_missing_values_and_duplicates(load: Load, tmp_path: Path) -> None:
    table = animals().drop(columns="color")
    table.loc[4, "weight"] = np.nan
    table = pd.concat([table, table.iloc[[2]]], ignore_index=True)
    path = tmp_path / "animals.csv"
    table.to_csv(path, index=False)
    ds = load(FilesDatastore, path=path, clean={"drop_missing": False, "drop_duplicates": False})
    x, y = all_rows(ds)
    assert len(y) == 25 and np.isnan(x[:, 0]).sum() == 1
    assert ds.preprocessing["dropped_missing"] == ds.preprocessing["dropped_duplicates"] == 0
    assert np.all(np.isfinite(ds.preprocessing["mean"])) and np.all(np.isfinite(ds.preprocessing["std"]))


def test_numeric_labels_are_named_in_numeric_order(load: Load, tmp_path: Path) -> None:
    table = animals().drop(columns="color")
    table["target"] = table["target"].map({"cat": 10, "dog": 2, "emu": 1})
    path = tmp_path / "numbers.csv"
    table.to_csv(path, index=False)
    ds = load(FilesDatastore, path=path)
    assert ds.class_names == ["1", "2", "10"]


def test_one_hot_expands_a_column_in_place(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "animals.csv"
    animals().to_csv(path, index=False)
    ds = load(FilesDatastore, path=path, preprocess={"one_hot": ["color"], "scaling": "none"})
    assert ds.feature_names == ["weight", "legs", "color=blue", "color=green", "color=red"]
    assert ds.preprocessing["one_hot"] == {"color": ["blue", "green", "red"]}
    assert ds.preprocessing["columns"] == ["weight", "legs", "color"]
    x, _ = all_rows(ds)
    assert np.array_equal(x[:, 2:].sum(axis=1), np.ones(len(x)))


def test_preprocessing_record_reproduces_the_rows_from_raw_values(load: Load, tmp_path: Path) -> None:
    """What a server does: apply ``Dataset.preprocessing`` to a raw row (an FP32 tensor's values) and get the model's
    input, bit for bit."""
    table = animals()
    path = tmp_path / "animals.csv"
    table.to_csv(path, index=False)
    ds = load(FilesDatastore, path=path, preprocess={"one_hot": ["color"]})
    record = ds.preprocessing

    def serve(raw: dict) -> np.ndarray:
        values: list[float] = []
        for column in record["columns"]:
            if column in record["one_hot"]:
                values.extend(float(raw[column] == category) for category in record["one_hot"][column])
            else:
                values.append(float(raw[column]))
        fp32 = np.array(values, dtype=np.float32).astype(np.float64)
        return ((fp32 - record["mean"]) / record["std"]).astype(np.float32)

    served = {serve(row).tobytes() for row in table.to_dict("records")}
    x, _ = all_rows(ds)
    assert all(row.tobytes() in served for row in x)


def test_parquet_gives_the_same_data_set_as_csv(load: Load, tmp_path: Path) -> None:
    table = animals()
    table.to_csv(tmp_path / "animals.csv", index=False)
    table.to_parquet(tmp_path / "animals.parquet", index=False)
    from_csv = load(FilesDatastore, path=tmp_path / "animals.csv", preprocess={"one_hot": ["color"]})
    from_parquet = load(FilesDatastore, path=tmp_path / "animals.parquet", preprocess={"one_hot": ["color"]})
    assert from_parquet.name == "animals"
    assert np.array_equal(from_csv.x_train, from_parquet.x_train)
    assert np.array_equal(from_csv.y_test, from_parquet.y_test)
    assert from_csv.content_hash == from_parquet.content_hash


def test_one_table_hashes_alike_as_csv_parquet_and_npz(load: Load, tmp_path: Path) -> None:
    """The hash covers the rows as encoded (features as float32, labels), not how the file stored them: CSV
    decimals parse as float64, Parquet keeps float32 columns (or float64 ones), NPZ holds one matrix without
    column names; and the data sets are the same, bit for bit."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.repeat([0, 1, 2], 20)
    table = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(target=y)
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    table.astype({"a": np.float64}).to_parquet(tmp_path / "t64.parquet", index=False)
    np.savez(tmp_path / "t.npz", x=x, y=y)
    loaded = [load(FilesDatastore, path=tmp_path / f"t{kind}") for kind in (".csv", ".parquet", "64.parquet", ".npz")]
    assert pd.read_csv(tmp_path / "t.csv")["a"].dtype == np.float64  # the CSV really is read as float64
    assert len({ds.content_hash for ds in loaded}) == 1
    csv, parquet, parquet64, npz = loaded
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        for other in (csv, parquet64, npz):  # the features are float32 from the read on: the same rows, scaled alike
            assert np.array_equal(getattr(parquet, part), getattr(other, part))
    other = table.assign(a=table["a"] + np.float32(1e-3))
    other.to_parquet(tmp_path / "other.parquet", index=False)
    assert load(FilesDatastore, path=tmp_path / "other.parquet").content_hash != loaded[0].content_hash


def test_a_table_is_held_once_its_splits_views_scaled_as_recorded(load: Load, tmp_path: Path) -> None:
    """The features stay one float32 matrix, whatever the format: each split is a view of it (its rows' numbers),
    scaled as read, equal to what the recorded standardization gives."""
    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, size=(400, 6)).astype(np.float32)
    y = np.arange(400) % 4
    pd.DataFrame(x, columns=list("abcdef")).assign(target=y).to_parquet(tmp_path / "t.parquet", index=False)
    pd.DataFrame(x, columns=list("abcdef")).assign(target=y).to_csv(tmp_path / "t.csv", index=False)
    np.savez(tmp_path / "t.npz", x=x, y=y)
    parquet, npz, csv = (load(FilesDatastore, path=tmp_path / f"t.{fmt}") for fmt in ("parquet", "npz", "csv"))
    assert set(npz.views) == set(parquet.views) == set(csv.views) == {"train", "val", "test"}
    assert npz.views["train"].x is npz.views["test"].x  # one matrix for the three splits: the array as loaded
    scaling = npz.preprocessing
    for name in ("train", "val", "test"):
        view = npz.views[name]
        assert f"x_{name}" not in vars(npz)
        expected = ((x[view.index].astype(np.float64) - scaling["mean"]) / scaling["std"]).astype(np.float32)
        batches = list(npz.batches(name, 64))  # split order without a seed
        np.testing.assert_array_equal(np.concatenate([features for features, _ in batches]), expected)
        np.testing.assert_array_equal(np.concatenate([labels for _, labels in batches]), y[view.index])
        assert f"x_{name}" not in vars(npz)  # batches gathered their own rows only
        np.testing.assert_array_equal(getattr(npz, f"x_{name}"), expected)  # gathered on first access
        np.testing.assert_array_equal(getattr(parquet, f"x_{name}"), expected)
        np.testing.assert_array_equal(getattr(csv, f"x_{name}"), expected)
    reference = npz.preprocessing["drift_reference"]
    assert reference["min"] == list(np.floor(npz.x_train.min(axis=0).astype(np.float64) * 1e6) / 1e6)
    assert reference["max"] == list(np.ceil(npz.x_train.max(axis=0).astype(np.float64) * 1e6) / 1e6)


def test_a_moved_file_keeps_its_content_hash(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "animals.csv"
    animals().drop(columns="color").to_csv(path, index=False)
    (tmp_path / "moved").mkdir()
    moved = Path(shutil.copy(path, tmp_path / "moved" / "animals.csv"))
    assert load(FilesDatastore, path=path).content_hash == load(FilesDatastore, path=moved).content_hash


def test_changed_data_changes_the_content_hash(load: Load, tmp_path: Path) -> None:
    table = animals().drop(columns="color")
    table.to_csv(tmp_path / "a.csv", index=False)
    table.loc[0, "weight"] += 1
    table.to_csv(tmp_path / "b.csv", index=False)
    assert load(FilesDatastore, path=tmp_path / "a.csv").content_hash != \
        load(FilesDatastore, path=tmp_path / "b.csv").content_hash


def test_target_names_the_label_column(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "animals.csv"
    animals().drop(columns="color").rename(columns={"target": "species"}).to_csv(path, index=False)
    ds = load(FilesDatastore, path=path, target="species")
    assert ds.class_names == ["cat", "dog", "emu"] and ds.feature_names == ["weight", "legs"]


@pytest.mark.parametrize("name", ["animals.csv.gz", "ANIMALS.CSV", "animals.txt"])
def test_format_comes_from_the_name_or_the_parameter(load: Load, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    animals().drop(columns="color").to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    ds = load(FilesDatastore, path=path, format="csv" if name.endswith(".txt") else "auto")
    assert ds.class_names == ["cat", "dog", "emu"] and ds.name.lower() == "animals"


def test_image_shape_can_be_given_for_a_table_of_pixels(load: Load, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.integers(0, 255, size=(12, 6)), columns=[f"p{k}" for k in range(6)])
    table["target"] = np.repeat([0, 1], 6)
    table.to_csv(tmp_path / "pixels.csv", index=False)
    ds = load(FilesDatastore, path=tmp_path / "pixels.csv", image_shape=[1, 2, 3],
              preprocess={"scaling": "scale", "scale_factor": 255}, split={"validation": 0.25, "test": 0.25})
    assert ds.image_shape == (1, 2, 3)
    assert ds.preprocessing["scaling"] == "scale" and ds.preprocessing["factor"] == 255
    assert 0 <= all_rows(ds)[0].min() and all_rows(ds)[0].max() <= 1


# ---------------------------------------------------------------- NPZ
def test_npz_loads_features_and_labels(load: Load, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "points.npz", x=rng.normal(size=(30, 5)), y=np.repeat([3, 5, 7], 10))
    ds = load(FilesDatastore, path=tmp_path / "points.npz")
    x, y = all_rows(ds)
    assert ds.name == "points" and x.shape == (30, 5) and x.dtype == np.float32
    assert ds.class_names == ["3", "5", "7"] and np.array_equal(np.bincount(y), [10, 10, 10])
    assert ds.image_shape is None and ds.feature_names is None


def test_npz_keys_and_string_labels(load: Load, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "points.npz", features=rng.normal(size=(20, 2)), names=np.repeat(["b", "a"], 10))
    ds = load(FilesDatastore, path=tmp_path / "points.npz", x_key="features", y_key="names")
    assert ds.class_names == ["a", "b"]


def test_npz_images_become_flat_rows_with_their_shape(load: Load, tmp_path: Path,
                                                     tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny_images
    np.savez(tmp_path / "images.npz", x=images, y=labels)
    ds = load(FilesDatastore, path=tmp_path / "images.npz", preprocess={"scaling": "none"})
    assert ds.image_shape == (1, 4, 5) and ds.x_train.shape[1] == 20
    rows = {image.reshape(-1).astype(np.float32).tobytes() for image in images}
    assert all(row.tobytes() in rows for row in all_rows(ds)[0])


def test_npz_channels_last_images_become_channels_first(load: Load, tmp_path: Path,
                                                        tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny_images
    rgb = np.stack([images, images // 2, images // 3], axis=-1)  # (n, 4, 5, 3)
    np.savez(tmp_path / "rgb.npz", x=rgb, y=labels)
    ds = load(FilesDatastore, path=tmp_path / "rgb.npz", preprocess={"scaling": "none"})
    assert ds.image_shape == (3, 4, 5)
    first = ds.x_train[0].reshape(3, 4, 5)
    assert np.array_equal(first[1], (first[0] // 2))


# ---------------------------------------------------------------- IDX
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_images_and_labels_load(load: Load, mnist_files: Callable[[str], Path], suffix: str,
                                    tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny_images
    path = mnist_files(suffix)
    ds = load(FilesDatastore, path=path, preprocess={"scaling": "scale", "scale_factor": 255})
    assert ds.name == "train-images-idx3-ubyte"
    assert ds.image_shape == (1, 4, 5) and ds.class_names == ["0", "1", "2"]
    x, y = all_rows(ds)
    assert x.shape == (18, 20) and x.dtype == np.float32 and y.dtype == np.int64
    pixels = {(image.reshape(-1) / 255).astype(np.float32).tobytes(): int(label)
              for image, label in zip(images, labels)}
    assert all(pixels[row.tobytes()] == label for row, label in zip(x, y))


def test_idx_gzip_and_plain_files_give_the_same_hash(load: Load, tmp_path: Path,
                                                     mnist_files: Callable[[str], Path]) -> None:
    plain, packed = mnist_files(""), mnist_files(".gz")
    assert load(FilesDatastore, path=plain).content_hash == load(FilesDatastore, path=packed).content_hash


def test_idx_labels_path_can_be_named(load: Load, tmp_path: Path, write_idx: Callable[..., Path],
                                      tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny_images
    write_idx(tmp_path / "pictures.idx", images)
    write_idx(tmp_path / "answers.idx", labels)
    ds = load(FilesDatastore, path=tmp_path / "pictures.idx", labels_path=tmp_path / "answers.idx")
    assert ds.name == "pictures" and ds.image_shape == (1, 4, 5)


def test_idx_labels_may_be_compressed_when_images_are_not(load: Load, tmp_path: Path, write_idx: Callable[..., Path],
                                                          tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny_images
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    assert load(FilesDatastore, path=tmp_path / "t10k-images-idx3-ubyte").num_classes == 3


def test_idx_reads_wider_value_types(load: Load, tmp_path: Path, write_idx: Callable[..., Path],
                                     tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny_images
    write_idx(tmp_path / "train-images-idx3-ubyte", images.astype(np.float32) / 255, type_code=0x0D)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels.astype(np.int32), type_code=0x0C)
    ds = load(FilesDatastore, path=tmp_path / "train-images-idx3-ubyte", preprocess={"scaling": "none"})
    assert all_rows(ds)[0].max() == pytest.approx(250 / 255)


def test_idx_bytes_are_hashed_raw(load: Load, mnist_files: Callable[[str], Path], tmp_path: Path) -> None:
    path = mnist_files("")
    before = load(FilesDatastore, path=path).content_hash
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert load(FilesDatastore, path=path).content_hash != before


def test_the_hash_is_the_same_when_no_thread_can_be_started(load: Load, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash runs on a second thread; under a cap on address space there may be none to start."""
    import threading

    table = animals()
    table.to_csv(tmp_path / "animals.csv", index=False)
    threaded = load(FilesDatastore, path=tmp_path / "animals.csv", preprocess={"one_hot": ["color"]})

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    here = load(FilesDatastore, path=tmp_path / "animals.csv", preprocess={"one_hot": ["color"]})
    assert here.content_hash == threaded.content_hash
