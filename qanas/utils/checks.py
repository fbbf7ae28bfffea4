"""Range checks of option values shared by the library jobs (search, training, scoring).

Each check raises `ConfigError` naming the option, the bad value and what to pass
instead, before any work starts.
"""

from __future__ import annotations

import math

from qanas.errors import ConfigError


def check_positive(value, flag: str, unit: str = "") -> None:
    """Refuses a budget-like value that is zero, negative or not finite (None passes)."""
    if value is None:
        return
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag} must be a positive number{' of ' + unit if unit else ''}; "
                          f"got {value!r}. Omit it for no limit")
