"""Counts in messages read as English: "1 row", "2 rows"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun`, in the plural unless the count is one (`many` for irregular nouns)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
