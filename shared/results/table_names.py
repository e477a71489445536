"""What every result table's layout shares (`formats`' and `predict_table`'s): the schema metadata key that
holds the rest of the result, and column names made unique."""

from __future__ import annotations

METADATA_KEY = "fitexplain"


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name~2`, `name~3`... when taken (two features and classes that would share a name);
    the name returned is added to `taken`."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}~{n}"
    taken.add(candidate)
    return candidate
