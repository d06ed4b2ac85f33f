"""Streaming from S3-compatible object storage: ``s3://`` URIs through pyarrow's S3 file system.

A real S3 server runs on 127.0.0.1 (moto's server mode, ``ThreadedMotoServer``, a free port);
pyarrow uploads a few Parquet files to it, and the ``files`` datastore streams
``s3://bucket/prefix/`` as docs/large-data.md tells a user to point it at such storage: the
endpoint from the standard ``AWS_ENDPOINT_URL`` variable, or in the URI itself
(``?endpoint_override=HOST:PORT&scheme=http``). Either way the splits, their rows and the
content hash are those of the same files read from a local directory.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aios_core import Dataset

from aios_data import FilesDatastore

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
fs = pytest.importorskip("pyarrow.fs")
moto_server = pytest.importorskip("moto.server")

BUCKET = "tables"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
Load = Callable[..., Dataset]


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5)).astype(np.float32)
    return pa.table({f"f{i}": x[:, i] for i in range(5)} | {"label": (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.7)})


def _rows(dataset: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*dataset.batches(split, 500))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a real S3 server, holding nothing yet."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def uploaded(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three Parquet files in a local directory and the same bytes under ``s3://tables/events/``."""
    local = tmp_path_factory.mktemp("events")
    for part in range(3):
        pq.write_table(_table(700, seed=part), local / f"part-{part}.parquet", row_group_size=250)
    s3 = fs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True, region="us-east-1",
                         access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    s3.create_dir(BUCKET)
    fs.copy_files(str(local), f"{BUCKET}/events", source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3)
    assert len(s3.get_file_info(fs.FileSelector(f"{BUCKET}/events"))) == 3
    return local


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The standard AWS variables a user sets (credentials, region); no endpoint yet, none from the machine."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def _same_as_local(remote: Dataset, local: Dataset) -> None:
    assert remote.content_hash == local.content_hash
    assert remote.preprocessing["streaming"]["files"] == 3
    assert remote.summary()["sizes"] == local.summary()["sizes"]
    assert remote.preprocessing["mean"] == local.preprocessing["mean"]
    for split in ("train", "val", "test"):
        for remote_part, local_part in zip(_rows(remote, split), _rows(local, split), strict=True):
            np.testing.assert_array_equal(remote_part, local_part)


def test_an_s3_prefix_streams_as_the_local_copy_with_the_endpoint_from_aws_endpoint_url(
        uploaded: Path, endpoint: str, aws: pytest.MonkeyPatch, load: Load) -> None:
    local = load(FilesDatastore, seed=4, path=uploaded, target="label", streaming=True, window_rows=600)
    aws.setenv("AWS_ENDPOINT_URL", endpoint)
    remote = load(FilesDatastore, seed=4, path=f"s3://{BUCKET}/events/", target="label", streaming=True,
                  window_rows=600)
    _same_as_local(remote, local)
    assert remote.preprocessing["streaming"]["row_groups"] == 9


def test_an_s3_uri_can_carry_its_endpoint_and_its_streams_travel_pickled(
        uploaded: Path, endpoint: str, aws: pytest.MonkeyPatch, load: Load) -> None:
    host = endpoint.removeprefix("http://")
    local = load(FilesDatastore, seed=4, path=uploaded, target="label", streaming=True)
    remote = load(FilesDatastore, seed=4, path=f"s3://{BUCKET}/events/?endpoint_override={host}&scheme=http",
                  target="label", streaming=True)
    _same_as_local(remote, local)
    copy = pickle.loads(pickle.dumps(remote.streams["test"]))  # what a Ray read task gets: the URI, no open file
    np.testing.assert_array_equal(copy.read(0, copy.rows)[1], _rows(local, "test")[1])


def test_validate_refuses_an_s3_prefix_it_cannot_reach_in_one_line(
        aws: pytest.MonkeyPatch, write_stack: Any, stack_problems: Any) -> None:
    aws.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there: a wrong or missing endpoint
    write_stack(path=f"s3://{BUCKET}/events/", target="label", streaming=True)
    (problem,) = stack_problems()
    assert f": data.path: found 's3://{BUCKET}/events', which cannot be streamed (" in problem, problem
    assert "Could not connect" in problem and "expected a Parquet file, a directory of them, or an s3://" in problem
