"""The pipeline's roles and the one registry of the adapters that serve them.

A checkpoint names its role and its adapter (`spinefm.checkpoints`). An adapter is registered under
a name with `@register_adapter("name")`, or named by its "module:Class" path, so a new model family
(a YOLO detector, say) is one adapter class plus one stage config: nothing in the pipeline changes.
"""

from __future__ import annotations

from spinefm.checkpoints import import_object
from spinefm.pipeline.core.types import ALL_ROLES

_ADAPTERS: dict[str, type] = {}


def register_adapter(name: str):
    """Class decorator: the adapter checkpoints name `name`; its class attribute `role` is one of
    ALL_ROLES."""

    def register(cls: type) -> type:
        if getattr(cls, "role", None) not in ALL_ROLES:
            raise ValueError(f"adapter {cls.__name__} must set role to one of {ALL_ROLES}")
        if _ADAPTERS.get(name, cls) is not cls:
            raise ValueError(f"an adapter is already registered as {name!r}: {_ADAPTERS[name].__name__}")
        _ADAPTERS[name] = cls
        return cls

    return register


def adapter_class(name: str) -> type:
    """The adapter registered as `name`, or the class a "module:Class" name imports."""
    cls = import_object(name) if ":" in name else _ADAPTERS.get(name)
    if cls is None:
        raise ValueError(
            f"no adapter registered as {name!r}; registered: {sorted(_ADAPTERS)} (or name one as 'module:Class')"
        )
    if getattr(cls, "role", None) not in ALL_ROLES:
        raise ValueError(f"{name!r} is not an adapter: its role must be one of {ALL_ROLES}")
    return cls
