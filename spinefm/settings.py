"""Checks the settings dataclasses share."""

from __future__ import annotations

from collections.abc import Iterable


def check_fractions(settings: object, names: Iterable[str], prefix: str = "") -> None:
    """ValueError naming the first of `names` whose value on `settings` lies outside [0, 1]."""
    for name in names:
        value = getattr(settings, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{prefix}{name} must lie in [0, 1], not {value}")
