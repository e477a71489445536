"""The elements of a comma-separated request header with their quality values (RFC 9110 §12.4.2)."""

from __future__ import annotations

from collections.abc import Iterator


def weighted_elements(header: str) -> Iterator[tuple[str, float | None]]:
    """Each element of the header (`gzip`, `application/json`, `*`: stripped, case kept) with its q-value:
    1.0 when it has none, None when the value is not a number. The caller decides what a malformed or an
    out-of-range q means."""
    for part in header.split(","):
        element, *params = (piece.strip() for piece in part.split(";"))
        q: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = None
        yield element, q
