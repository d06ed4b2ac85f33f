"""Ray Data reads a split streamed from S3-compatible object storage: each read task opens the ``s3://`` URI.

The ``files`` datastore streams ``s3://`` Parquet files from a real S3 server on 127.0.0.1
(moto's server mode); the URI carries the endpoint and the credentials (``access:secret@``,
pyarrow's form), so the Ray workers, started before the test with their own environment, need
nothing else. The rows Ray's read tasks return are those the driver's own ``Dataset.batches``
reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from aios_data import FilesDatastore

from aios_core import RunContext
from aios_core.testing import plugin_manager

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
moto_server = pytest.importorskip("moto.server")

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture(scope="module")
def s3_uri() -> Iterator[str]:
    """``s3://testing:testing@tables/events/?endpoint_override=...``: three Parquet files on a local S3 server."""
    from pyarrow import fs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        s3 = fs.S3FileSystem(endpoint_override=f"http://{host}:{port}", allow_bucket_creation=True,
                             region="us-east-1", access_key="testing", secret_key="testing")
        s3.create_dir("tables")
        rng = np.random.default_rng(0)
        for part in range(3):
            x = rng.normal(size=(400, 4)).astype(np.float32)
            table = pa.table({f"f{i}": x[:, i] for i in range(4)} | {"label": (x[:, 0] > 0).astype(np.int64)})
            pq.write_table(table, f"tables/events/part-{part}.parquet", filesystem=s3, row_group_size=100)
        yield f"s3://testing:testing@tables/events/?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    finally:
        server.stop()


def test_ray_read_tasks_stream_a_split_from_s3(s3_uri: str, tmp_path: Any) -> None:
    from aios_ray_train._data import ray_datasets

    pm = plugin_manager(FilesDatastore(FilesDatastore.Params(path=s3_uri, target="label", streaming=True,
                                                             window_rows=150)))
    dataset = pm.hook.aios_load_dataset(run=RunContext(name="t", seed=3, threads=1, dir=tmp_path, stack={},
                                                       hook=pm.hook))
    expected = np.concatenate([x for x, _ in dataset.batches("train", 10_000)])
    blocks = list(ray_datasets(dataset)["train"].iter_batches(batch_size=None, batch_format="numpy"))
    assert len(blocks) > 1  # one read task per window, each opening the URI where Ray runs it
    rows = np.concatenate([block["x"] for block in blocks]).reshape(len(expected), -1)
    assert sorted(map(bytes, rows)) == sorted(map(bytes, expected))
