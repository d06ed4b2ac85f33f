"""The model repository extension's load and unload, one implementation for both forms of the protocol.

The HTTP routes (``POST /v2/repository/models/{name}/load|unload``, ``aios_serve._app``) and
the gRPC RPCs (``RepositoryModelLoad``, ``RepositoryModelUnload``, ``aios_serve._grpc``) read
their parameters and call these; the same rules hold for both: off with several workers
(each holds its own models), off without a token unless ``repository_api`` turns it on, a
run directory loaded as the request's model name. Errors are ``ProtocolError`` /
``RepositoryError`` with the HTTP status each form maps to its own (403, 404, 400).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aios_serve._inference import ServerState
from aios_serve._repository import LoadedModel, spec_from_run_dir
from aios_serve._tensors import ProtocolError

log = logging.getLogger("aios.serve")


def check_enabled(state: ServerState) -> None:
    """Raise 403 unless this server loads and unloads models on request."""
    if state.settings.workers > 1:
        raise ProtocolError(f"the repository API is off with {state.settings.workers} workers (each holds its own "
                            "models); serve with workers: 1 to load and unload over the API", 403)
    if not state.settings.repository_api_on:
        raise ProtocolError("the repository API is off on this server: it is on by default only with a token "
                            "(token_env); turn it on with repository_api: true (--repository-api)", 403)


def string_parameters(parameters: dict[str, Any], *names: str) -> list[str | None]:
    """The values of ``names`` in a request's parameters, each a string or absent (400 otherwise)."""
    values = [parameters.get(name) for name in names]
    if any(value is not None and not isinstance(value, str) for value in values):
        raise ProtocolError(f"parameters {' and '.join(names)} must be strings")
    return values


async def load(state: ServerState, name: str, run_dir: str | None, version: str | None) -> LoadedModel:
    """Load a known model (its newest version, or ``version``), or add the run directory ``run_dir`` as ``name``."""
    check_enabled(state)
    loop = asyncio.get_running_loop()
    if run_dir:
        spec = await loop.run_in_executor(state.executor, lambda: spec_from_run_dir(run_dir, name=name, version=version))
        model = await loop.run_in_executor(state.executor, state.repository.add, spec)
    else:
        model = await loop.run_in_executor(state.executor, state.repository.load, name, version)
    assert model is not None
    state.metrics.set_loaded(model.name, model.version, True)
    log.info("loaded model %s version %s from %s", model.name, model.version, model.spec.source)
    return model


def unload(state: ServerState, name: str, version: str | None) -> list[str]:
    """Unload one version of ``name``, or all of them; the versions unloaded (404 for an unknown name)."""
    check_enabled(state)
    versions = state.repository.unload(name, version)
    for unloaded in versions:
        state.metrics.set_loaded(name, unloaded, False)
        state.batchers.pop((name, unloaded), None)
    log.info("unloaded model %s versions %s", name, versions)
    return versions
