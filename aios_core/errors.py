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


def one_line(error: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line: for a message of several lines, the last line that names an error
    (``SomeError: ...``, as a wrapped traceback ends), else the first line.

    ``pyarrow.lib.ArrowInvalid: URI has empty scheme`` becomes ``ArrowInvalid: URI has empty
    scheme``; a message longer than ``limit`` characters is cut with an ellipsis.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    named = [line for line in lines[1:] if _NAMED.match(line)]
    if named:
        match = _QUALIFIED.match(named[-1])
        text = match.group(1) if match else named[-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."
