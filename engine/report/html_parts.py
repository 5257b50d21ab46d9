"""Small HTML pieces the report pages share."""

from __future__ import annotations

import base64
import html

from tagmill.engine.images import decoded_or_none, jpeg_thumbnail


def html_table(header: list[str], rows: list[tuple], escape_last: bool = True) -> str:
    """A table of text cells; `escape_last=False` keeps the last column's HTML (a link)."""
    def cell(value, last: bool) -> str:
        return f"<td>{value if last and not escape_last else html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(c, i == len(row) - 1) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def thumbnail_base64(data: bytes | None, size: int, quality: int) -> str:
    """Encoded image bytes as a base64 JPEG at most `size` pixels a side; empty when there are none or they
    do not decode."""
    image = decoded_or_none(data)
    return base64.b64encode(jpeg_thumbnail(image, size, quality)).decode() if image is not None else ""
