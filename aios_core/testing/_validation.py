"""Validation before a run as ``load_stack`` does it: the context components get, and what their answers must be.

``aios validate`` and ``aios run`` ask the datastore what its data will look like
(``aios_describe_data``), then every component what cannot work (``aios_validate``),
and turn each ``(field, message)`` pair into a problem located at that field of the
component's section. The contracts call the hooks the same way here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aios_core.testing._harness import fail, fail_raised, manager_with
from aios_core.vocabulary import LIST_ROLES, ROLE_KINDS

if TYPE_CHECKING:
    from pathlib import Path

    from aios_core.components import Component
    from aios_core.context import ValidationContext
    from aios_core.records import DataDescription, Dataset

_SELECTORS = {"model": "framework"}
"""The key that names the component in each section (``plugin`` in the others)."""


def section_of(kind: str) -> tuple[str, str]:
    """The stack section a component of ``kind`` is configured in, and the key that names it there."""
    role = next(role for role, role_kind in ROLE_KINDS.items() if role_kind == kind)
    return role, _SELECTORS.get(role, "plugin")


def validation_context(component: Component, directory: Path, data: DataDescription | None) -> ValidationContext:
    """A ``ValidationContext`` as ``load_stack`` builds it for a stack that configures ``component`` alone.

    Seed 0, one thread, the resolved stack (top-level settings, the component's section
    with its validated parameters, no compressors, default evaluate settings), and
    ``source``: the stack written as YAML under ``directory``.
    """
    import yaml

    from aios_core.context import ValidationContext
    from aios_core.stack.schema import EvaluateSettings

    role, selector = section_of(component.kind)
    section = {selector: component.name, **component.params.model_dump(mode="json")}
    stack: dict[str, Any] = {"name": "contract", "description": "", "seed": 0, "threads": 1}
    stack[role] = [section] if role in LIST_ROLES else section
    stack.setdefault("compressors", [])
    stack["evaluate"] = EvaluateSettings().model_dump(mode="json")
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "contract-stack.yaml"
    source.write_text(yaml.safe_dump(stack, sort_keys=False), encoding="utf-8")
    return ValidationContext(stack=stack, seed=0, threads=1, source=str(source), data=data)


def describe(dataset: Dataset) -> DataDescription:
    """What a datastore would say about ``dataset`` before loading it."""
    from aios_core.records import DataDescription

    shape = tuple(int(size) for size in dataset.image_shape) if dataset.image_shape is not None else None
    return DataDescription(num_features=dataset.num_features, num_classes=dataset.num_classes, image_shape=shape)


def implements(component: Component, hook: str) -> bool:
    """Whether ``component`` marks a method as an implementation of ``hook``."""
    pm = manager_with(component)
    return any(impl.plugin is component for impl in getattr(pm.hook, hook).get_hookimpls())


def check_validate(component: Component, context: ValidationContext, label: str) -> None:
    """``aios_validate`` answers ``context`` without raising, with a list of ``(field, message)`` string pairs whose
    fields lie in the component's section: a parameter's dotted path, or ``""`` for the section itself."""
    pm = manager_with(component)
    try:
        results = pm.hook.aios_validate(context=context)
    except Exception as error:
        fail_raised(f"aios_validate of {label} raised on a valid configuration (its component_params); a validator "
                    "returns (field, message) pairs for what cannot work and never raises", error)
    _, selector = section_of(component.kind)
    known = {"", selector, *component.Params.model_fields}
    for result in results:  # pluggy leaves out a None: "no problem", as load_stack reads it
        if not isinstance(result, (list, tuple)):
            fail(f"aios_validate of {label} returned {type(result).__name__} {result!r}; return a list of "
                 "(field, message) pairs, [] when everything can work")
        for pair in result:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
                fail(f"aios_validate of {label} returned {pair!r} in its list; each problem is a (field, message) "
                     "pair of strings, e.g. (\"path\", \"found 'data.csv', which does not exist; expected ...\")")
            field = pair[0].split(".")[0]
            if field not in known:
                fail(f"aios_validate of {label} reported a problem at field {pair[0]!r}, which is not one of its "
                     f"parameters ({', '.join(sorted(known - {''}))}); the field is a dotted path inside the "
                     "component's own section, so the error points at the line to fix ('' for the section itself)")


def check_description(description: Any, dataset: Dataset, label: str) -> None:
    """``aios_describe_data`` said what ``aios_load_dataset`` then gave, for every field it did not leave None."""
    from aios_core.records import DataDescription

    if description is None:
        return  # unknown until loaded: the other components' checks then see no data description
    if not isinstance(description, DataDescription):
        fail(f"aios_describe_data of {label} returned {type(description).__name__}; it must return an "
             "aios_core.DataDescription (or None when the data cannot be described before loading)")
    loaded = describe(dataset)
    wrong = []
    for field in ("num_features", "num_classes", "image_shape"):
        said, found = getattr(description, field), getattr(loaded, field)
        if said is not None and (tuple(said) if field == "image_shape" else said) != found:
            wrong.append(f"{field}={said!r}, but the loaded Dataset has {found!r}")
    if wrong:
        fail(f"aios_describe_data of {label} said " + "; ".join(wrong) + ". The other components' aios_validate "
             "judge the stack by this description (a cnn needs an image shape), so it must be what "
             "aios_load_dataset returns, or None for what is unknown before loading")
