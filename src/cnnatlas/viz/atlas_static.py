"""The atlas's stylesheet and script: plain CSS and JavaScript, no library, nothing fetched."""

STYLE = """
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #d9dee5; --bg: #ffffff; --band: #f5f7fa; --accent: #1d4ed8;
        --pass: #166534; --pass-bg: #dcfce7; --fail: #991b1b; --fail-bg: #fee2e2; --skip: #92400e; --skip-bg: #fef3c7; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--bg); }
header.top { background: #0f172a; color: #e2e8f0; padding: 0.7rem 1.5rem; display: flex; gap: 1.5rem;
             align-items: baseline; flex-wrap: wrap; }
header.top a { color: #e2e8f0; text-decoration: none; }
header.top a.brand { font-weight: 700; font-size: 1.15rem; }
header.top nav a { margin-right: 1.1rem; opacity: 0.85; }
header.top nav a:hover, header.top nav a.here { opacity: 1; text-decoration: underline; }
main { max-width: 1280px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.7rem; margin: 0.6rem 0 0.3rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.6rem; border-bottom: 1px solid var(--line); padding-bottom: 0.2rem; }
p.lead { color: var(--muted); margin-top: 0; max-width: 70rem; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--band); position: sticky; top: 0; z-index: 1; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:hover td { background: #fafbfc; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa5b1; font-size: 0.8em; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--accent); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--accent); }
table.facts { width: auto; min-width: 40rem; }
table.facts th { position: static; width: 14rem; }
.muted { color: var(--muted); }
.small { font-size: 0.82rem; }
.badge { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 0.8rem; font-size: 0.8rem; font-weight: 600; }
.badge.passed, .badge.exact { color: var(--pass); background: var(--pass-bg); }
.badge.failed, .badge.differs { color: var(--fail); background: var(--fail-bg); }
.badge.skipped, .badge.approx, .badge.none { color: var(--skip); background: var(--skip-bg); }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.3rem; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1rem; align-items: start; }
.scroll { max-height: 900px; overflow: auto; border: 1px solid var(--line); border-radius: 4px; padding: 0.5rem;
          background: #fff; }
.scroll img { border: 0; max-width: none; }
input.filter { padding: 0.35rem 0.6rem; font-size: 0.95rem; width: 20rem; margin: 0.4rem 0 0.6rem;
               border: 1px solid var(--line); border-radius: 4px; }
.summary-line { display: flex; gap: 1.2rem; flex-wrap: wrap; margin: 0.4rem 0 1rem; }
.summary-line span { background: var(--band); padding: 0.3rem 0.7rem; border-radius: 4px; }
footer { color: var(--muted); font-size: 0.8rem; margin-top: 3rem; }
code { background: var(--band); padding: 0 0.25rem; border-radius: 3px; }
"""

SCRIPT = """
(function () {
  "use strict";
  function key(cell, type) {
    var raw = cell ? cell.getAttribute("data-sort") : null;
    if (raw === null) { raw = cell ? cell.textContent.trim() : ""; }
    if (type === "num") {
      var v = parseFloat(raw);
      return isNaN(v) ? null : v;
    }
    return raw === "" ? null : raw.toLowerCase();
  }
  function sortTable(table, col, th) {
    var type = th.getAttribute("data-type") || "text";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var ths = table.tHead.rows[0].cells;
    for (var i = 0; i < ths.length; i++) { ths[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = dir === "ascending" ? 1 : -1;
    rows.sort(function (a, b) {
      var ka = key(a.cells[col], type), kb = key(b.cells[col], type);
      if (ka === null && kb === null) { return 0; }
      if (ka === null) { return 1; }   /* missing values last, whichever the direction */
      if (kb === null) { return -1; }
      if (ka < kb) { return -sign; }
      if (ka > kb) { return sign; }
      return 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function init() {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      var ths = table.tHead.rows[0].cells;
      Array.prototype.forEach.call(ths, function (th, col) {
        th.tabIndex = 0;
        th.title = "sort by " + th.textContent.trim();
        th.addEventListener("click", function () { sortTable(table, col, th); });
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, col, th); }
        });
      });
    });
    var filters = document.querySelectorAll("input.filter");
    Array.prototype.forEach.call(filters, function (input) {
      var table = document.getElementById(input.getAttribute("data-table"));
      input.addEventListener("input", function () {
        var q = input.value.trim().toLowerCase();
        Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
          r.style.display = !q || r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
        });
      });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
"""
