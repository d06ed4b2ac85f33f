"""How an error raised inside a component reaches the console: one line, the engine's own last word.

Engines wrap their failures: Ray puts the worker's whole traceback into the message of
the exception it raises on the driver, PyArrow and TensorFlow add context lines. The
console and ``RunFailed`` show only the error's last line (``ArrowInvalid: URI has
empty scheme``); the full traceback goes to ``run.log``.
"""

from __future__ import annotations

import re

__all__ = ["PipelineFailed", "one_line"]


class PipelineFailed(Exception):
    """An orchestrator's pipeline failed (``aios_run_pipeline``); the message is the one line the user sees,
    naming the step and the reason (the runner's own line, e.g. a gate's message)."""

_NAMED = re.compile(r"^[\w.]+(?:Error|Exception|Invalid|Failed|Failure|Interrupt)\w*:")
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)+([A-Za-z_]\w*(?:Error|Exception|Invalid|Failed|Failure|Interrupt)\b.*)$")


_MEMORY_LEVERS = {
    "data": "the data does not fit in memory as loaded: store the features as float32 (a float32 NPZ array or "
            "Parquet column is used as it is, any other type is held as loaded while its float32 copy is made), "
            "prefer Parquet or NPZ to CSV, or load fewer rows",
    "train": "lower trainer.batch_size or the model's size, store the features as float32, or train on a machine "
             "with more memory (a Ray cluster: aios-ray-train)",
}
_MEMORY_LEVERS["tune"] = _MEMORY_LEVERS["compress-native"] = _MEMORY_LEVERS["train"]


def one_line(error: BaseException, limit: int = 400, phase: str | None = None) -> str:
    """``Type: message`` on one line: for a message of several lines, the last line that names an error
    (``SomeError: ...``, as a wrapped traceback ends), else the first line.

    ``pyarrow.lib.ArrowInvalid: URI has empty scheme`` becomes ``ArrowInvalid: URI has empty
    scheme``; a message longer than ``limit`` characters is cut with an ellipsis. A ``MemoryError``
    keeps what was being allocated (NumPy's message names the size, shape and dtype) and adds what
    to change, for ``phase`` when it is given: ``MemoryError: Unable to allocate 7.45 GiB for an
    array with shape (1000000, 1000) and data type float64; out of memory in the data phase: ...``.
    """
    if isinstance(error, MemoryError):
        return _out_of_memory(error, phase)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    named = [line for line in lines[1:] if _NAMED.match(line)]
    if named:
        match = _QUALIFIED.match(named[-1])
        text = match.group(1) if match else named[-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _out_of_memory(error: MemoryError, phase: str | None) -> str:
    """One line: the allocation that failed (NumPy's ``_ArrayMemoryError`` says ``MemoryError``) and the levers."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    where = f" in the {phase} phase" if phase else ""
    levers = _MEMORY_LEVERS.get(phase or "", "free memory or use a machine with more (see docs/large-data.md)")
    return f"MemoryError: {message + '; ' if message else ''}out of memory{where}: {levers}"
