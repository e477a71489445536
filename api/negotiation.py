"""Which form of a result to send: `?format=` when given, else the best match of the Accept header.

Accept is read as RFC 9110 says: each format takes the q-value of the most specific media range that
matches one of its media types (`application/json` over `application/*` over `*/*`); the format with the
highest q wins, then the more specific match, then the one the client listed first, then JSON. No
Accept header, or `*/*`, is JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fastapi import HTTPException, status

from api.quality_values import weighted_elements
from shared.results.formats import FORMATS, ResultFormat

# mypy reads Enum's functional form only with literal members; these come from FORMATS.
ResultFormatName = enum.StrEnum("ResultFormatName", {name: name for name in FORMATS})  # type: ignore[misc]


@dataclass(frozen=True)
class MediaRange:
    type: str
    subtype: str
    q: float
    position: int

    def specificity(self, media_type: str) -> int | None:
        """2 for an exact match, 1 for `type/*`, 0 for `*/*`; None when the range does not match."""
        kind, _, sub = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 0
        if self.type != kind:
            return None
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == sub else None


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header; a malformed range or q-value is skipped."""
    ranges = []
    for position, (media, q) in enumerate(weighted_elements(header)):
        kind, slash, sub = media.lower().partition("/")
        if not slash or not kind or not sub or (kind == "*" and sub != "*"):
            continue
        if q is not None and 0.0 <= q <= 1.0:
            ranges.append(MediaRange(kind, sub, q, position))
    return ranges


def accepted_format(header: str | None) -> ResultFormat | None:
    """The format the Accept header prefers, JSON without one; None when it accepts none of them."""
    if header is None or not header.strip():
        return FORMATS["json"]
    ranges = parse_accept(header)
    best: tuple[float, int, int, int] | None = None
    chosen = None
    for order, fmt in enumerate(FORMATS.values()):
        for media_type in fmt.media_types:
            matches = [(r.specificity(media_type), r) for r in ranges]
            found = [(level, r) for level, r in matches if level is not None]
            if not found:
                continue
            level, match = max(found, key=lambda item: (item[0], item[1].q))
            key = (match.q, level, -match.position, -order)
            if match.q > 0 and (best is None or key > best):
                best, chosen = key, fmt
    return chosen


def choose_format(format_name: str | None, accept: str | None) -> ResultFormat:
    """`?format=` wins over Accept; 406 naming the media types when Accept matches none."""
    if format_name is not None:
        return FORMATS[str(format_name)]
    chosen = accepted_format(accept)
    if chosen is None:
        offered = ", ".join(media for fmt in FORMATS.values() for media in fmt.media_types)
        raise HTTPException(
            status.HTTP_406_NOT_ACCEPTABLE,
            detail=f"No form of the result matches Accept: {accept}. Accept one of {offered}, "
            f"or ask with ?format={'|'.join(FORMATS)}.",
        )
    return chosen
