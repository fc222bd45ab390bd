"""HTML of the night report: the page frame, its stylesheet and script, and small table helpers.

Every value inserted into a page goes through :func:`esc` (``html.escape`` with quotes), so text
from uploads (quarantine reasons, designations) can never become markup. The script is inline and
has no dependency: the pages open from disk in any browser, with no server and no network.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["esc", "fmt", "page", "table", "kv_table", "STYLE", "SCRIPT"]

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222;
       background: #fafafa; }
header { background: #1d2b3a; color: #fff; padding: 12px 24px; }
header h1 { margin: 0; font-size: 20px; }
header .sub { color: #b8c4d0; font-size: 13px; }
header nav a { color: #9fd3ff; margin-right: 16px; text-decoration: none; }
main { padding: 8px 24px 40px; max-width: 1240px; }
section { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 8px 16px 16px;
          margin: 16px 0; }
h2 { font-size: 17px; border-bottom: 1px solid #eee; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 12px 0 4px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f5f7; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th.asc::after { content: " \\25B2"; }
table.sortable th.desc::after { content: " \\25BC"; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.figs img { max-width: calc(50% - 8px); border: 1px solid #eee; }
.cutouts { display: flex; gap: 16px; flex-wrap: wrap; }
.cutouts figure { margin: 0; text-align: center; }
.cutouts img { width: 220px; height: 220px; image-rendering: pixelated; border: 1px solid #ccc;
               background: #000; }
.cutouts .missing { width: 220px; height: 220px; display: flex; align-items: center;
                    justify-content: center; border: 1px dashed #bbb; color: #888; }
figcaption { font-size: 12px; color: #555; }
.note { color: #555; font-size: 13px; }
.warn { color: #a33; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; color: #fff; }
.b-new { background: #2a7f3f; } .b-sso { background: #8a4fb5; } .b-upd { background: #6b7785; }
.band { font-weight: 600; }
.filters { margin: 8px 0; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
.filters input[type=search] { width: 260px; padding: 3px 6px; }
.scroll { max-height: 640px; overflow: auto; border: 1px solid #eee; }
.scroll th { position: sticky; top: 0; }
.grid2 { display: grid; grid-template-columns: minmax(300px, 1fr) minmax(300px, 1fr); gap: 16px; }
.pager a { margin-right: 12px; }
code { font-size: 12px; }
"""

# Sorting by a column (numeric when every cell has data-v), and filtering rows by text, band and
# the new/SSO flags. Hand-written because pages must not load anything from the network.
SCRIPT = """
function sortTable(th) {
  const table = th.closest('table'), tbody = table.tBodies[0];
  const idx = Array.prototype.indexOf.call(th.parentNode.children, th);
  const asc = !th.classList.contains('asc');
  table.querySelectorAll('th').forEach(h => h.classList.remove('asc', 'desc'));
  th.classList.add(asc ? 'asc' : 'desc');
  const rows = Array.from(tbody.rows);
  const key = r => { const c = r.cells[idx]; const v = c.getAttribute('data-v');
                     return v === null ? c.textContent.trim() : parseFloat(v); };
  rows.sort((a, b) => { const x = key(a), y = key(b);
    if (typeof x === 'number' && typeof y === 'number') {
      if (isNaN(x)) return 1; if (isNaN(y)) return -1; return asc ? x - y : y - x; }
    return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x)); });
  rows.forEach(r => tbody.appendChild(r));
}
function filterAlerts() {
  const q = document.getElementById('q').value.trim().toLowerCase();
  const band = document.getElementById('fband').value;
  const onlyNew = document.getElementById('fnew').checked;
  const onlySso = document.getElementById('fsso').checked;
  const onlyPage = document.getElementById('fpage').checked;
  let shown = 0;
  for (const r of document.getElementById('alerts').tBodies[0].rows) {
    const ok = (!q || r.textContent.toLowerCase().includes(q)) &&
               (!band || r.dataset.band === band) && (!onlyNew || r.dataset.new === '1') &&
               (!onlySso || r.dataset.sso === '1') && (!onlyPage || r.dataset.page === '1');
    r.style.display = ok ? '' : 'none'; if (ok) shown++;
  }
  document.getElementById('nshown').textContent = shown;
}
document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('table.sortable th').forEach(th => th.addEventListener('click', () => sortTable(th)));
  ['q', 'fband', 'fnew', 'fsso', 'fpage'].forEach(id => { const e = document.getElementById(id);
    if (e) e.addEventListener('input', filterAlerts); });
});
"""


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attribute values (quotes included)."""
    return escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A value for a table cell: floats to ``digits`` significant decimals, None/NaN as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "\u2013"
        if value != 0 and (abs(value) >= 1e7 or abs(value) < 10 ** -digits):
            return f"{value:.{digits}e}"
        return f"{value:.{digits}f}"
    return str(value)


def page(title: str, body: str, *, subtitle: str = "", nav: Sequence[tuple[str, str]] = (),
         script: bool = False) -> str:
    """A whole HTML document: header with title, subtitle and navigation links, then ``body``.

    ``title``, ``subtitle`` and the navigation labels and targets are escaped here; ``body`` must
    already be HTML built from escaped values.
    """
    links = "".join(f'<a href="{esc(href)}">{esc(label)}</a>' for label, href in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style>"
        + (f"<script>{SCRIPT}</script>" if script else "")
        + f"</head><body><header><h1>{esc(title)}</h1>"
        + (f'<div class="sub">{esc(subtitle)}</div>' if subtitle else "")
        + (f"<nav>{links}</nav>" if links else "")
        + f"</header><main>{body}</main></body></html>\n"
    )


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, table_id: str = "",
          css: str = "", numeric: Sequence[bool] | None = None) -> str:
    """An HTML table of escaped, formatted cells; numeric columns right-aligned and sortable.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences
        Cell values (formatted with :func:`fmt`, then escaped).
    table_id, css : str
        ``id`` and ``class`` of the table.
    numeric : sequence of bool, optional
        Columns to align right and to sort by value (``data-v``).
    """
    numeric = list(numeric or [False] * len(header))
    head = "".join(f'<th class="num">{esc(h)}</th>' if n else f"<th>{esc(h)}</th>"
                   for h, n in zip(header, numeric, strict=True))
    body = []
    for row in rows:
        cells = []
        for v, n in zip(row, numeric, strict=True):
            if n:
                dv = v if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")
                cells.append(f'<td class="num" data-v="{esc(dv)}">{esc(fmt(v))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (f' class="{esc(css)}"' if css else "")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(items: Mapping[str, Any] | Iterable[tuple[str, Any]], *, skip_null: bool = True) -> str:
    """A two-column field/value table (escaped); null and NaN values left out when ``skip_null``."""
    pairs = items.items() if isinstance(items, Mapping) else items
    rows = []
    for k, v in pairs:
        if isinstance(v, (bytes, bytearray, list, dict)):
            continue
        if skip_null and (v is None or (isinstance(v, float) and math.isnan(v))):
            continue
        cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        rows.append(f"<tr><th>{esc(k)}</th><td{cls}>{esc(fmt(v, 6))}</td></tr>")
    return f"<table>{''.join(rows)}</table>" if rows else '<p class="note">none</p>'
