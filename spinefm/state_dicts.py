"""What keeps a state dict from loading into a model, in a few words for a one-line error."""

from __future__ import annotations


def mismatched_keys(expected: dict, state: dict) -> tuple[list[str], list[str], list[str]]:
    """The keys of `expected` (a state dict) that `state` lacks, the keys of `state` that `expected`
    lacks, and the keys both hold with another shape."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and shape(state[k]) != shape(expected[k])]
    return missing, unexpected, reshaped


def shape(value) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


def key_mismatch(expected: dict, state: dict, shown: int = 3) -> str:
    """What keeps `state` from loading where `expected` (a state dict) is, e.g. "missing 12 keys (a, b,
    c, ...), unexpected 1 key (d)"; "" when it fits."""
    missing, unexpected, reshaped_keys = mismatched_keys(expected, state)
    reshaped = [f"{k}: {shape(state[k])}, the model's {shape(expected[k])}" for k in reshaped_keys]
    return ", ".join(
        f"{label} {counted(keys, shown)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("another shape for", reshaped))
        if keys
    )


def counted(keys: list[str], shown: int = 3) -> str:
    """'12 keys (a, b, c, ...)'."""
    return f"{len(keys)} key{'s' * (len(keys) != 1)} ({', '.join(keys[:shown])}{', ...' * (len(keys) > shown)})"
