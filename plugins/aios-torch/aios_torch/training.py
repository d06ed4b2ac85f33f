"""The torch trainer's steps, public for trainers that run them elsewhere (``aios-ray-train`` runs them on Ray).

Importing this module imports torch; the plugin's entry-point module does not.
"""

from aios_torch._training import evaluate, make_optimizer, make_scheduler

__all__ = ["evaluate", "make_optimizer", "make_scheduler"]
