"""The torch trainer's steps, public for trainers that run them elsewhere (``aios-ray-train`` runs them on Ray).

Importing this module imports torch; the plugin's entry-point module does not.
"""

from aios_torch._training import (
    batch_score,
    epoch_score,
    evaluate,
    loss_function,
    make_optimizer,
    make_scheduler,
    score_name,
    validation_metrics,
)

__all__ = ["batch_score", "epoch_score", "evaluate", "loss_function", "make_optimizer", "make_scheduler", "score_name",
           "validation_metrics"]
