"""Rendering the report as one self-contained HTML page (inline CSS, PNGs as data: URIs).

Every string from the run passes through `html.escape`; the page loads nothing from
files or the network and needs no JavaScript.
"""

from __future__ import annotations

from html import escape

from qanas.report.model import Section, Table

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1180px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc;
     padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top;
         word-break: break-word; max-width: 640px; }
th { background: #f3f3f3; } caption { caption-side: top; text-align: left; font-weight: bold;
     padding: 0.3em 0; }
figure { margin: 1em 0 1.6em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #333; max-width: 1000px; }
.missing { color: #8a6d3b; background: #fcf8e3; padding: 0.4em 0.8em; border-radius: 4px; }
.error { color: #a94442; background: #f2dede; padding: 0.4em 0.8em; border-radius: 4px; }
td.nw { white-space: nowrap; }
.note { color: #555; font-style: italic; } .kind { font-weight: bold; }
nav a { margin-right: 0.9em; font-size: 0.9em; }
"""


def render_table(table: Table) -> str:
    """A `Table` as an HTML table."""
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(_cell(str(c)) for c in row) + "</tr>"
                   for row in table.rows)
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: str) -> str:
    """A table cell; short values (numbers, units) never wrap, long ones (archs) do."""
    cls = ' class="nw"' if len(value) <= 32 else ""
    return f"<td{cls}>{escape(value)}</td>"


def render_section(section: Section, first_figure: int) -> tuple[str, int]:
    """One section; figures are numbered from `first_figure`. Returns (html, next number)."""
    parts = [f'<section id="{escape(section.key)}"><h2>{escape(section.title)}</h2>']
    if section.error:
        parts.append(f'<p class="error">Could not be rendered: {escape(section.error)}</p>'
                     "</section>")
        return "".join(parts), first_figure
    if not section.present:
        parts.append(f'<p class="missing">Not part of this run: '
                     f"{escape(section.missing_reason)}.</p></section>")
        return "".join(parts), first_figure
    for table in section.tables:
        parts.append(render_table(table))
    number = first_figure
    for fig in section.figures:
        parts.append(
            f'<figure><img alt="{escape(fig.title)}" '
            f'src="data:image/png;base64,{fig.png_base64}">'
            f"<figcaption><b>Figure {number}. {escape(fig.title)}.</b> {escape(fig.caption)} "
            f"<br>Unit: {escape(fig.unit)}. Source: {escape(fig.source)}. "
            f'<span class="kind">{escape(fig.kind)}</span>.</figcaption></figure>')
        number += 1
    for note in section.notes:
        parts.append(f'<p class="note">{escape(note)}</p>')
    parts.append("</section>")
    return "".join(parts), number


def render_page(title: str, summary: Table, sections: list[Section]) -> str:
    """The whole page: title, navigation, summary, the sections, in order."""
    missing = [s for s in sections if not s.present and not s.error]
    broken = [s for s in sections if s.error]
    nav = "".join(f'<a href="#{escape(s.key)}">{escape(s.title)}</a>' for s in sections)
    body = [f"<h1>{escape(title)}</h1><nav>{nav}</nav>", "<h2>Summary</h2>",
            render_table(summary)]
    if missing:
        body.append('<p class="missing">Not part of this run: '
                    + escape(", ".join(s.title for s in missing)) + ".</p>")
    if broken:
        body.append('<p class="error">Sections of this run that could not be rendered: '
                    + escape(", ".join(s.title for s in broken)) + ".</p>")
    number = 1
    for section in sections:
        html, number = render_section(section, number)
        body.append(html)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
