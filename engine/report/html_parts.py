"""Small HTML pieces the report pages share."""

from __future__ import annotations

import base64
import html
import io

from tagmill.engine.images import decoded_or_none


def html_table(header: list[str], rows: list[tuple], escape_last: bool = True) -> str:
    """A table of text cells; `escape_last=False` keeps the last column's HTML (a link)."""
    def cell(value, last: bool) -> str:
        return f"<td>{value if last and not escape_last else html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(c, i == len(row) - 1) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def jpeg_thumbnail(data: bytes, size: int) -> str:
    """Encoded image bytes as a base64 JPEG at most `size` pixels a side; empty when they do not decode."""
    image = decoded_or_none(data)
    if image is None:
        return ""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode()
