"""The HTML report's inline stylesheet and script (the page loads nothing from anywhere else).

The script only filters the item rows and expands or collapses them; the page reads fine
without it. Its SHA-256 goes into the page's Content-Security-Policy, so no other script
(say, one smuggled in through a test's output) could run even if escaping ever failed.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root {
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0969da;
  --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #cf222e; --fail-bg: #ffebe9;
  --err: #bc4c00; --err-bg: #fff1e5; --skip: #59636e; --skip-bg: #eff2f5;
  --warn: #9a6700; --warn-bg: #fff8c5; --bar: #54aeff;
  --mono: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
  font: 14px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial,
  sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 0 24px 48px; }
h1 { font-size: 22px; margin: 0; word-break: break-word; }
h2 { font-size: 18px; margin: 32px 0 12px; padding-bottom: 6px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 8px; }
.mono, code, pre { font-family: var(--mono); font-size: 12.5px; }
.muted { color: var(--muted); }
[hidden] { display: none !important; }
header.run { border-bottom: 1px solid var(--line); padding: 20px 24px 14px; margin: 0 -24px;
  border-left: 6px solid var(--skip); background: var(--soft); }
header.run.passed { border-left-color: var(--pass); }
header.run.failed { border-left-color: var(--fail); }
header.run.interrupted { border-left-color: var(--warn); }
.title { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.runid { margin-top: 4px; color: var(--muted); }
.facts { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 12px 0 0; padding: 0; }
.facts div { display: flex; gap: 6px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
nav.toc { margin: 12px 0 0; display: flex; gap: 16px; flex-wrap: wrap; }
nav.toc a { color: var(--accent); text-decoration: none; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
  font-weight: 600; border: 1px solid transparent; white-space: nowrap; }
.badge.big { font-size: 14px; padding: 2px 12px; }
.passed .badge, .badge.passed, .badge.pass { color: var(--pass); background: var(--pass-bg);
  border-color: #aceebb; }
.badge.failed, .badge.fail, .badge.regressed, .badge.worse { color: var(--fail);
  background: var(--fail-bg); border-color: #ffcecb; }
.badge.error { color: var(--err); background: var(--err-bg); border-color: #ffd8b5; }
.badge.skipped, .badge.running, .badge.neutral { color: var(--skip); background: var(--skip-bg);
  border-color: var(--line); }
.badge.interrupted, .badge.warn { color: var(--warn); background: var(--warn-bg);
  border-color: #f5e0a0; }
.badge.improved, .badge.better { color: var(--pass); background: var(--pass-bg);
  border-color: #aceebb; }
.counts { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 10px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .03em; background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: var(--fail-bg); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 0 28px; }
.note { padding: 8px 12px; border-radius: 6px; background: var(--warn-bg);
  border: 1px solid #f5e0a0; }
.errors { color: var(--fail); }
.charts { display: flex; flex-wrap: wrap; gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fff; }
.card h4 { margin: 0 0 2px; font-size: 13px; }
.card .caption { font-size: 12px; color: var(--muted); margin-bottom: 6px; }
svg.chart .bar { fill: var(--bar); }
svg.chart .bar:hover { fill: var(--accent); }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .tick { font: 11px var(--mono); fill: var(--muted); }
svg.interval .zero { stroke: #8c959f; stroke-dasharray: 2 2; }
svg.interval .ci { stroke: var(--muted); stroke-width: 2; }
svg.interval .point { fill: var(--muted); }
svg.interval.regressed .ci, svg.interval.worse .ci { stroke: var(--fail); }
svg.interval.regressed .point, svg.interval.worse .point { fill: var(--fail); }
svg.interval.improved .ci, svg.interval.better .ci { stroke: var(--pass); }
svg.interval.improved .point, svg.interval.better .point { fill: var(--pass); }
.scroll { overflow-x: auto; max-width: 100%; }
table.confusion { width: auto; }
table.confusion tr > th:first-child { position: sticky; left: 0; z-index: 1; }
table.confusion td, table.confusion th { text-align: center; padding: 3px 8px; }
table.confusion th.mono { text-transform: none; letter-spacing: 0; color: var(--fg);
  white-space: nowrap; }
table.confusion td.hit { background: var(--pass-bg); font-weight: 600; }
table.confusion td.miss { background: var(--fail-bg); }
.filters { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 8px 0 10px;
  position: sticky; top: 0; background: #fff; padding: 8px 0; z-index: 2; }
.filters input, .filters select, .filters button { font: inherit; padding: 5px 8px;
  border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.filters input { flex: 1 1 320px; }
.filters button { cursor: pointer; background: var(--soft); }
#f-count { color: var(--muted); margin-left: auto; }
.items { border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.row { display: grid;
  grid-template-columns: 78px minmax(0, 2.6fr) minmax(0, 1.2fr) minmax(0, 2fr) 80px;
  gap: 10px; align-items: center; padding: 6px 12px; }
.items-head { background: var(--soft); color: var(--muted); font-size: 12px; font-weight: 600;
  text-transform: uppercase; letter-spacing: .03em; border-bottom: 1px solid var(--line); }
.item { border-bottom: 1px solid var(--line); }
.item:last-child { border-bottom: 0; }
.item > summary { cursor: pointer; list-style: none; }
.item > summary::-webkit-details-marker { display: none; }
.item > summary:hover, .item[open] > summary { background: var(--soft); }
.item.failed > summary, .item.error > summary { box-shadow: inset 4px 0 0 var(--fail); }
.nodeid { overflow-wrap: anywhere; }
.item > summary .nodeid::before { content: "▸ "; color: var(--muted); }
.item[open] > summary .nodeid::before { content: "▾ "; }
.place { display: flex; flex-direction: column; min-width: 0; overflow-wrap: anywhere; }
.place-set { color: var(--muted); font-size: 12px; }
.row .num { text-align: right; font-variant-numeric: tabular-nums; }
.chips { display: flex; flex-wrap: wrap; gap: 4px; }
.chip { font: 11.5px var(--mono); padding: 0 6px; border-radius: 4px; background: var(--soft);
  border: 1px solid var(--line); white-space: nowrap; max-width: 100%; overflow: hidden;
  text-overflow: ellipsis; }
.chip.false, .chip.low { color: var(--fail); border-color: #ffcecb; background: var(--fail-bg); }
.item-body { padding: 10px 16px 16px 24px; border-top: 1px dashed var(--line); }
.errmsg { background: var(--fail-bg); border: 1px solid #ffcecb; color: #82071e;
  border-radius: 6px;
  padding: 8px 10px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0;
  font: 12.5px var(--mono); }
.skipmsg { background: var(--skip-bg); border-radius: 6px; padding: 6px 10px; }
dl.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 4px 14px;
  margin: 6px 0; }
dl.kv dt { color: var(--muted); font-size: 12px; padding-top: 2px; }
dl.kv dd { margin: 0; min-width: 0; }
pre { margin: 0; padding: 6px 8px; background: var(--soft); border: 1px solid var(--line);
  border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 18em;
  overflow: auto; }
.cut { display: block; color: var(--warn); font-style: italic; }
.esc { font-family: var(--mono); color: var(--err); background: var(--err-bg);
  border: 1px solid #ffd8b5; border-radius: 3px; padding: 0 2px; }
.msg { margin-bottom: 4px; }
.role { font: 600 11px var(--mono); text-transform: uppercase; color: var(--muted); }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding: 0; }
ul.tree ul { margin-left: 18px; border-left: 1px solid var(--line); padding-left: 8px; }
ul.tree li { margin: 2px 0; }
.obs > summary { cursor: pointer; display: flex; align-items: center; gap: 8px; padding: 3px 6px;
  border-radius: 6px; }
.obs > summary:hover { background: var(--soft); }
.obs > summary::before { content: "▸"; color: var(--muted); width: 10px; flex: 0 0 10px; }
.obs[open] > summary::before { content: "▾"; }
.obs.err > summary { background: var(--fail-bg); color: #82071e; }
.obs-body { margin: 4px 0 8px 22px; }
.kind { font: 600 10.5px var(--mono); text-transform: uppercase; padding: 0 5px;
  border-radius: 4px;
  border: 1px solid var(--line); color: var(--muted); min-width: 76px; text-align: center; }
.kind.generation { color: #8250df; border-color: #d8b9ff; background: #fbefff; }
.kind.event { color: var(--warn); border-color: #f5e0a0; }
.obs-name { font-weight: 600; overflow-wrap: anywhere; }
.obs-meta { color: var(--muted); font-size: 12px; }
.tl { flex: 0 0 140px; height: 6px; background: var(--soft); border-radius: 3px;
  position: relative;
  margin-left: auto; overflow: hidden; }
.tl > span { position: absolute; top: 0; bottom: 0; background: var(--bar); border-radius: 3px;
  min-width: 2px; }
.obs.err .tl > span { background: var(--fail); }
.dur { flex: 0 0 70px; text-align: right; font-variant-numeric: tabular-nums;
  color: var(--muted); font-size: 12px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""

JS = """
(function () {
  "use strict";
  var text = document.getElementById("f-text");
  var outcome = document.getElementById("f-outcome");
  var dataset = document.getElementById("f-dataset");
  var count = document.getElementById("f-count");
  if (!text || !outcome || !dataset || !count) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll(".items .item"));
  function apply() {
    var words = text.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var wantOutcome = outcome.value, wantDataset = dataset.value, shown = 0;
    rows.forEach(function (row) {
      var haystack = row.getAttribute("data-search") || "";
      var ok = (!wantOutcome || row.getAttribute("data-outcome") === wantOutcome) &&
        (!wantDataset || row.getAttribute("data-dataset") === wantDataset) &&
        words.every(function (word) { return haystack.indexOf(word) !== -1; });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " items shown";
  }
  function openAll(open) {
    rows.forEach(function (row) {
      if (!row.hidden && row.tagName === "DETAILS") { row.open = open; }
    });
  }
  text.addEventListener("input", apply);
  outcome.addEventListener("change", apply);
  dataset.addEventListener("change", apply);
  document.getElementById("f-expand").addEventListener("click", function () { openAll(true); });
  document.getElementById("f-collapse").addEventListener("click", function () { openAll(false); });
  apply();
})();
"""


def script_hash() -> str:
    """The CSP source expression allowing exactly `JS`."""
    digest = hashlib.sha256(JS.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy() -> str:
    """Nothing may load from anywhere; only the page's own inline style and script apply."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src {script_hash()}; base-uri 'none'; form-action 'none'"
    )
