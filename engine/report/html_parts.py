"""Small HTML pieces the report pages share."""

from __future__ import annotations

import html


def html_table(header: list[str], rows: list[tuple], escape_last: bool = True) -> str:
    """A table of text cells; `escape_last=False` keeps the last column's HTML (a link)."""
    def cell(value, last: bool) -> str:
        return f"<td>{value if last and not escape_last else html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(c, i == len(row) - 1) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
