"""A JSON Schema for stack files, with the parameters of every installed component (``aios schema``)."""

from __future__ import annotations

from typing import Any, Literal

from aios_core.plugins import PluginError, installed, load_component, strict_mode
from aios_core.stack.schema import DEFAULT_MONITORS, StackFile


def stack_json_schema() -> dict[str, Any]:
    """A JSON Schema for stack files, with the parameters of every installed, loadable component."""
    from pydantic import create_model

    def variants(kind: str, selector: str, required: bool = True) -> Any:
        models = []
        for entry in installed(kind):
            try:
                cls = load_component(entry)
            except PluginError:
                if strict_mode():
                    raise
                continue
            models.append(create_model(f"{kind}_{entry.name}".replace("-", "_"), __base__=cls.Params,
                                       __doc__=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None,
                                       **{selector: (Literal[entry.name], ...) if required
                                          else (Literal[entry.name] | None, None)}))
        if not models:
            return dict[str, Any]
        union = models[0]
        for model in models[1:]:
            union = union | model
        return union

    schema_model = create_model(
        "StackFile", __base__=StackFile,
        data=(variants("datastore", "plugin"), ...), model=(variants("framework", "framework"), ...),
        trainer=(variants("trainer", "plugin", required=False) | None, None), tuner=(variants("tuner", "plugin") | None, None),
        compressors=(list[variants("compressor", "plugin")], []),  # type: ignore[misc]
        deployer=(variants("deployer", "plugin") | None, None),
        monitors=(list[variants("monitor", "plugin")], DEFAULT_MONITORS),  # type: ignore[misc]
        orchestrator=(variants("orchestrator", "plugin") | None, None),
    )
    schema = schema_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "AIOS stack file"
    return schema
