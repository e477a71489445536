"""Which content coding a client accepts for a response body (Accept-Encoding, RFC 9110)."""

from __future__ import annotations

from api.quality_values import weighted_elements


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110): `gzip` (or `x-gzip`) with a q-value above
    0, else `*` above 0 when gzip is not named; `gzip;q=0` refuses it. No header: not sent compressed."""
    if not header:
        return False
    named: float | None = None
    anything: float | None = None
    for coding, weight in weighted_elements(header):
        q = 0.0 if weight is None else weight
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            anything = q
    if named is not None:
        return named > 0
    return anything is not None and anything > 0
