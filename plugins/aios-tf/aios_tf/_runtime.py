"""Importing TensorFlow and Keras quietly, and setting their threads and determinism once.

TensorFlow's C++ runtime writes notes to stderr when it loads (oneDNN, CPU features);
the level is set before the first import. During a run the kernel sends stderr to
``run.log``, so what remains lands there, not on the console.
"""

from __future__ import annotations

import logging
import os
from typing import Any

_configured_threads: int | None = None


def keras() -> Any:
    """The ``keras`` module on the TensorFlow backend, imported with TensorFlow's log noise turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        raise RuntimeError(
            f"the keras framework runs Keras on TensorFlow, but KERAS_BACKEND is {os.environ['KERAS_BACKEND']!r}; "
            "unset it or set KERAS_BACKEND=tensorflow"
        )
    import tensorflow  # noqa: F401, I001  (loads the backend before keras picks it)
    import keras

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return keras


def tensorflow() -> Any:
    keras()
    import tensorflow

    return tensorflow


def configure(threads: int, *, deterministic: bool = False) -> None:
    """Use ``threads`` intra-op threads (settable only before TensorFlow first runs an op) and, if asked, deterministic ops."""
    global _configured_threads
    tf = tensorflow()
    threads = max(1, int(threads))
    if _configured_threads is None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            _configured_threads = threads
        except RuntimeError:  # the runtime already started (another caller in this process); keep its setting
            _configured_threads = tf.config.threading.get_intra_op_parallelism_threads() or threads
    if deterministic:
        tf.config.experimental.enable_op_determinism()
