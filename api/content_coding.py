"""Which content coding a client accepts for a response body (Accept-Encoding, RFC 9110)."""

from __future__ import annotations


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110): `gzip` (or `x-gzip`) with a q-value above
    0, else `*` above 0 when gzip is not named; `gzip;q=0` refuses it. No header: not sent compressed."""
    if not header:
        return False
    named: float | None = None
    anything: float | None = None
    for part in header.split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            anything = q
    if named is not None:
        return named > 0
    return anything is not None and anything > 0
