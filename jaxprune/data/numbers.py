"""Plain decimal numbers as dataset text files write them, and nothing else Python's ``float`` takes.

``float`` also reads ``1_000`` (digit groups), which in a data file is damage, not a value. NaN
and infinities pass here, so that the loader's own finiteness check names them.
"""

from __future__ import annotations

import re

PLAIN_NUMBER = re.compile(r"\s*[-+]?((\d+\.?\d*|\.\d+)(e[-+]?\d+)?|nan|inf|infinity)\s*", re.IGNORECASE)


def plain_floats(fields: list[str]) -> list[float]:
    """The fields as floats; ValueError if any is not a plain decimal number (e.g. ``0.21_496``)."""
    for f in fields:
        if not PLAIN_NUMBER.fullmatch(f):
            raise ValueError(f)
    return [float(f) for f in fields]
