"""What keeps a state dict from loading into a model, in a few words for a one-line error."""

from __future__ import annotations


def key_mismatch(expected: dict, state: dict, shown: int = 3) -> str:
    """What keeps `state` from loading where `expected` (a state dict) is, e.g. "missing 12 keys (a, b,
    c, ...), unexpected 1 key (d)"; "" when it fits."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        f"{k}: {tuple(getattr(state[k], 'shape', ()))}, the model's {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)
    ]
    return ", ".join(
        f"{label} {counted(keys, shown)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("another shape for", reshaped))
        if keys
    )


def counted(keys: list[str], shown: int = 3) -> str:
    """'12 keys (a, b, c, ...)'."""
    return f"{len(keys)} key{'s' * (len(keys) != 1)} ({', '.join(keys[:shown])}{', ...' * (len(keys) > shown)})"
