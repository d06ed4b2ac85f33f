"""The names every layer of AIOS shares: kinds, entry-point groups, stack roles, the core distribution.

This module imports nothing, so any module (the loader, the index, the CLI, the
template's hooks) can use it without pulling in another layer.
"""

from __future__ import annotations

__all__ = ["CORE_DISTRIBUTION", "CORE_PACKAGE", "FORMER_CORE_DISTRIBUTION", "KINDS", "KIND_GROUPS", "LIST_ROLES",
           "PHASES", "ROLE_KINDS", "TASKS", "canonical_name"]

KINDS = ("framework", "datastore", "trainer", "tuner", "compressor", "deployer", "monitor", "orchestrator")
"""The eight kinds of component, in the order the docs and listings show them."""

KIND_GROUPS = {kind: f"aios.{kind}s" for kind in KINDS}
"""The entry-point group a distribution registers each kind's components in (``aios.frameworks``, ...)."""

ROLE_KINDS = {
    "data": "datastore", "model": "framework", "trainer": "trainer", "tuner": "tuner",
    "compressors": "compressor", "deployer": "deployer", "monitors": "monitor", "orchestrator": "orchestrator",
}
"""Each stack section (a role) and the kind of component it selects."""

LIST_ROLES = ("compressors", "monitors")
"""Sections that hold a list of components; their roles are ``compressors.0``, ``compressors.1``, ..."""

PHASES = ("data", "tune", "train", "compress-native", "export", "compress", "evaluate", "deploy")
"""The phases of a run, in the order the runner (``aios_core.runner``) goes through them; a stack
has ``tune`` and ``deploy`` only when it has a tuner, a deployer, ``compress-native`` only when it
has compressors of the native model and ``compress`` only when it has compressors of exports."""

TASKS = ("classification", "regression")
"""What a stack's model predicts: a class (probabilities over ``class_names``) or numbers (``predictions``,
one column per target). A component declares the tasks it supports (``Component.tasks``)."""

CORE_DISTRIBUTION = "aios-kernel"
"""The kernel's distribution name (its import package is ``aios_core``). Not ``aios-core``: on the
public package index that name belongs to an unrelated project."""

FORMER_CORE_DISTRIBUTION = "aios-core"
"""The kernel's distribution name before the rename: never installed as AIOS, since it is someone else's."""

CORE_PACKAGE = "aios_core"


def canonical_name(name: str) -> str:
    """PEP 503 normal form, so ``AIOS_Torch`` and ``aios-torch`` are the same name."""
    out, run = [], False
    for char in name:
        if char in "-_.":
            if not run:
                out.append("-")
            run = True
        else:
            out.append(char.lower())
            run = False
    return "".join(out)
