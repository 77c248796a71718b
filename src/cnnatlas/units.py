"""How counts, bytes and shapes are written in tables and pictures."""

from __future__ import annotations

from collections.abc import Iterable


def fmt_count(n: float, compact: bool = False) -> str:
    """1234567 → '1.23 M' (tables: G to three decimals, M and k to two); compact → '1.23M' (three
    significant digits, for pictures)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            if compact:
                return f"{n / scale:.3g}{unit}"
            return f"{n / scale:.3f} {unit}" if unit == "G" else f"{n / scale:.2f} {unit}"
    return f"{n:g}"


def fmt_bytes(n: float) -> str:
    """3_500_000 → '3.34 MiB'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def axes_text(values: Iterable) -> str:
    """(7, 7) → '7'; (3, 7, 7) → '3×7×7'."""
    values = list(values)
    return str(values[0]) if len(set(values)) == 1 else "×".join(str(v) for v in values)
