"""The ``{{ cookiecutter.plugin_name }}`` tuner: random search over the combinations of a space's choices."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import Any

from aios_core import TuneResult


def random_search(objective: Callable[[dict[str, Any]], float], space: dict[str, list[Any]], trials: int, *,
                  seed: int, log: logging.Logger) -> TuneResult:
    """Call ``objective`` on up to ``trials`` distinct combinations (drawn with ``seed``); the lowest value wins.

    The runner's objective also takes keywords this search does not use (the ``aios_tune`` hook):
    ``number`` (the trial's number), ``report`` (called after each epoch; raise ``aios_core.TrialPruned``
    from it to prune the trial) and ``objectives`` (several metrics to optimize at once).
    """
    keys = list(space)
    sizes = [len(space[key]) for key in keys]
    combinations = math.prod(sizes)
    picked = random.Random(seed).sample(range(combinations), min(trials, combinations))
    tried: list[dict[str, Any]] = []
    for number, flat in enumerate(picked, start=1):
        params = {}
        for key, size in zip(reversed(keys), reversed(sizes)):  # flat index -> one choice per key
            flat, choice = divmod(flat, size)
            params[key] = space[key][choice]
        params = {key: params[key] for key in keys}
        value = float(objective(params))
        log.info("trial %d/%d: %s -> %.6g", number, len(picked), params, value)
        tried.append({"number": number, "params": params, "value": value})
    best = min(tried, key=lambda trial: trial["value"] if math.isfinite(trial["value"]) else math.inf)
    return TuneResult(best_params=best["params"], best_value=best["value"], trials=tried)
