"""Small tables as Markdown, for the result's report: `st.table` and `st.dataframe` convert to
Arrow through pandas (0.25 s to import, then the conversion), on the server's GIL while the
browser fetches the video just shown: the report made the video playable up to 0.3 s later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def markdown_table(rows: Sequence[Mapping[str, object]]) -> str:
    """The rows (each a column name to its value, the first row's names for the header) as Markdown."""
    if not rows:
        return ""
    header = list(rows[0])
    lines = [_row(header), _row(["---"] * len(header))]
    lines += [_row([_cell(row.get(name)) for name in header]) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value: object) -> str:
    """A value that cannot break the table: pipes escaped, lines joined, Markdown's specials kept literal
    (Streamlit's too: `$` starts LaTeX, `:name:` an emoji)."""
    text = "" if value is None else str(value)
    for special in "\\|*_`[]<>#$~:":
        text = text.replace(special, "\\" + special)
    return " ".join(text.split())
