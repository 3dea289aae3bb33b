"""Eval reports: the metrics of a run as a Markdown page and a self-contained HTML page.

Input is the ``metrics`` dict of :class:`molmo2.eval.runner.EvalResult` (``task``, ``groups`` of
``{"num": n, metric: value}`` per ``kind/medium``, ``headline`` per group, ``num_items`` /
``num_scored`` / ``num_missing``, ``model``, ``data``). One summary table gives each group's headline
number; then one table per task kind lists every metric of its groups, because pointing, counting and
tracking report different keys. Values are printed as fractions with 3 decimals (NaN as ``-``); the
HTML page escapes everything and needs no network (inline CSS only).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3f}"
    return "-" if v is None else str(v)


def _tables(metrics: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the summary table and of one detail table per kind."""
    groups: Mapping[str, Mapping[str, Any]] = metrics.get("groups", {})
    headline: Mapping[str, Mapping[str, Any]] = metrics.get("headline", {})
    summary = [[g, _fmt(v.get("num")), headline.get(g, {}).get("metric", "-"),
                _fmt(headline.get(g, {}).get("value"))] for g, v in groups.items()]
    tables = [("Summary", ["group", "n", "metric", "value"], summary)]
    kinds: dict[str, list[str]] = {}
    for g in groups:
        kinds.setdefault(g.split("/")[0], []).append(g)
    for kind, names in kinds.items():
        keys = [k for k in groups[names[0]] if k != "num"]
        rows = [[g, _fmt(groups[g].get("num")), *(_fmt(groups[g].get(k)) for k in keys)] for g in names]
        tables.append((kind.capitalize(), ["group", "n", *keys], rows))
    return tables


def _info(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    scored = f"{metrics.get('num_scored', 0)} of {metrics.get('num_items', 0)}"
    if metrics.get("num_missing"):
        scored += f" ({metrics['num_missing']} without a prediction)"
    return [("task", _fmt(metrics.get("task"))), ("model", _fmt(metrics.get("model"))),
            ("data", _fmt(metrics.get("data"))), ("items scored", scored)]


def markdown_report(metrics: Mapping[str, Any], title: str | None = None) -> str:
    """The report as Markdown (GitHub tables)."""
    lines = [f"# {title or 'Eval: ' + str(metrics.get('task', ''))}", ""]
    lines += [f"- {k}: {v}" for k, v in _info(metrics)]
    for name, header, rows in _tables(metrics):
        lines += ["", f"## {name}", "", _md_row(header), _md_row(["---"] * len(header))]
        lines += [_md_row(r) for r in rows] or [_md_row(["(no items)"] + [""] * (len(header) - 1))]
    return "\n".join(lines) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def html_report(metrics: Mapping[str, Any], title: str | None = None) -> str:
    """The report as one self-contained HTML page."""
    esc = html.escape
    title = title or f"Eval: {metrics.get('task', '')}"
    parts = ["<!doctype html>", '<html><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;"
             "margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:.3em .7em}td{text-align:right}"
             "td:first-child{text-align:left}th{background:#f3f3f3}</style></head><body>",
             f"<h1>{esc(title)}</h1>", "<ul>"]
    parts += [f"<li>{esc(k)}: {esc(v)}</li>" for k, v in _info(metrics)]
    parts.append("</ul>")
    for name, header, rows in _tables(metrics):
        parts.append(f"<h2>{esc(name)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_reports(out_dir: str | Path, metrics: Mapping[str, Any], title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "report.md", out / "report.html"
    md.write_text(markdown_report(metrics, title))
    page.write_text(html_report(metrics, title))
    return md, page


__all__ = ["html_report", "markdown_report", "write_reports"]
