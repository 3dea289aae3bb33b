"""Eval reports: the metrics of a run as a Markdown page and a self-contained HTML page with plots and
example frames.

Input is the ``metrics`` dict of :class:`molmo2.eval.runner.EvalResult` (``task``, ``groups`` of
``{"num": n, metric: value}`` per ``kind/medium`` or ``category/<name>``, ``headline`` per group,
``num_items`` / ``num_scored`` / ``num_missing``, ``model``, ``data``). One summary table gives each
group's headline number; then one table per task kind lists every metric of its groups, because
pointing, counting and tracking report different keys. Values are printed as fractions with 3 decimals
(NaN as ``-``).

The HTML page adds, when it is given the run's ``per_item`` scores and ``examples``:

* plots, drawn as inline SVG (no plotting library, no network): the headline of every group as bars,
  the distribution of the per-item headline score per group, and, for counting, the predicted against
  the true count of each item;
* example frames (:class:`ReportExample`, chosen by :func:`pick_examples` from worst to best item): the
  image, or the video frame at the instant shown, with the **true points as green rings**, the
  **predicted points as red crosses** and the ground-truth masks the points are scored against tinted
  green (Point-Bench's target region; the objects' masks at that instant for pointing and tracking).
  For a video one instant is shown (:func:`points_example` says which); the points drawn are those at
  exactly that instant (the rule the video metrics score by), and the caption says how many of the
  answer's points that is.

Frames are decoded with :mod:`molmo2.processing` (Pillow, PyAV for videos), shrunk to at most
``FRAME_WIDTH`` pixels (and shown that wide, the marks drawn as vector graphics over it) and embedded
as JPEG ``data:`` URLs, so the page is one file. A frame that cannot
be decoded (PyAV missing, a file moved) is replaced by a line saying why; the report is still written.
Everything from the data is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molmo2.grounding.types import Point

FRAME_WIDTH = 360
NUM_EXAMPLES = 8
TRUE_COLOR, PRED_COLOR = "#1a9c3a", "#e0241b"
_SCORE_KEYS = ("f1", "correct", "success", "accuracy")  # per-item keys tried when the headline is not one


# ------------------------------------------------------------------------------------------ examples


@dataclass
class ReportExample:
    """One item drawn in the HTML report: a frame with its true and predicted points (pixels of ``size``).

    ``t`` is the video frame's time in seconds on the video's own timeline (None for an image);
    ``mask`` an optional ground-truth mask (a bool ``[H, W]`` array or an image file, > 127 is inside)."""

    id: str
    media: Path | bytes
    medium: str  # "image" | "video"
    size: tuple[int, int]  # (width, height) the points are in
    true: list[tuple[float, float]] = field(default_factory=list)
    pred: list[tuple[float, float]] = field(default_factory=list)
    t: float | None = None
    caption: str = ""
    score: float | None = None
    mask: Any = None


def _ms(t: float) -> int:
    return int(round(float(t) * 1000.0))


def points_example(item_id: str, media: Path | bytes, medium: str, size: tuple[int, int],
                   true: Sequence[Point], pred: Sequence[Point], caption: str = "", *, score: float | None = None,
                   time_offset: float = 0.0, mask: Any = None,
                   mask_at: Callable[[float | None], Any] | None = None) -> ReportExample:
    """A :class:`ReportExample` from true and predicted Points (tracks: pass their points).

    Video: one instant is shown, chosen among those with a point, preferring one with both true and
    predicted points, then the most predicted points, then the most true points, then the earliest; the
    points drawn are those at exactly that instant (millisecond match, as the metrics do). ``time_offset``
    is added to find the frame in the file (a clip's start). ``mask_at(t)`` (t: the instant shown as the
    points write it, None for an image) may give the ground-truth mask to tint, e.g. the union of the
    objects' masks there (video pointing scores a point by the mask of its instance at its own time)."""
    def finish(t: float | None, at_true, at_pred, text: str) -> ReportExample:
        m = mask if mask is not None or mask_at is None else mask_at(t)
        return ReportExample(item_id, media, medium, size, at_true, at_pred,
                             None if t is None else time_offset + t, text, score, m)

    if medium != "video":
        return finish(None, [(p.x, p.y) for p in true], [(p.x, p.y) for p in pred], caption)
    timed_true = [p for p in true if p.t is not None]
    timed_pred = [p for p in pred if p.t is not None]
    n_true: dict[int, int] = {}
    n_pred: dict[int, int] = {}
    for pts, counts in ((timed_true, n_true), (timed_pred, n_pred)):
        for p in pts:
            counts[_ms(p.t)] = counts.get(_ms(p.t), 0) + 1
    if not n_true and not n_pred:
        return finish(0.0, [], [], caption or "no points")
    key = max(n_true.keys() | n_pred.keys(),
              key=lambda k: (k in n_true and k in n_pred, n_pred.get(k, 0), n_true.get(k, 0), -k))
    at_true = [(p.x, p.y) for p in timed_true if _ms(p.t) == key]
    at_pred = [(p.x, p.y) for p in timed_pred if _ms(p.t) == key]
    where = f"t = {key / 1000:.1f} s: {len(at_true)} true, {len(at_pred)} of the {len(pred)} predicted points"
    return finish(key / 1000, at_true, at_pred, f"{caption}; {where}" if caption else where)


def union_mask(masks: Any, object_ids: Iterable[int], t: float | None) -> Any:
    """The union of the objects' masks (``InstanceMasks``) at exactly ``t`` (None: 0.0, an image), or
    None when none of them is annotated then. For :func:`points_example`'s ``mask_at``."""
    found = [m for m in (masks.get(o, 0.0 if t is None else t) for o in object_ids) if m is not None]
    if not found:
        return None
    out = found[0].copy()
    for m in found[1:]:
        out |= m
    return out


def item_score(row: Mapping[str, Any], metrics: Mapping[str, Any]) -> float | None:
    """The headline score of one per-item row (the group's headline metric, else f1/correct/success)."""
    headline = metrics.get("headline", {})
    spec = headline.get(row.get("group")) or headline.get("all") or {}
    for key in (spec.get("metric"), *_SCORE_KEYS):
        v = row.get(key) if key else None
        if isinstance(v, (bool, int, float)) and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return None


def pick_examples(task: Any, items: Iterable[Any], records: Mapping[str, Mapping[str, Any]],
                  per_item: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any],
                  num: int = NUM_EXAMPLES) -> list[ReportExample]:
    """Up to ``num`` examples of a scored run, spread evenly from the worst item to the best (by
    :func:`item_score`; file order breaks ties), made by the task's ``example(item, record, row)``
    (tasks without one, e.g. multiple choice, give none). Only the chosen items are asked for an example,
    and nothing is decoded here."""
    make: Callable[..., ReportExample | None] | None = getattr(task, "example", None)
    if make is None or num <= 0:
        return []
    by_id = {it.id: it for it in items}
    scored = []
    for k, row in enumerate(per_item):
        if row.get("id") in by_id and row["id"] in records:
            s = item_score(row, metrics)
            scored.append((-math.inf if s is None else s, k, row))
    scored.sort(key=lambda x: (x[0], x[1]))
    if len(scored) > num:
        picks = sorted({round(i * (len(scored) - 1) / (num - 1)) for i in range(num)}) if num > 1 else [0]
        scored = [scored[i] for i in picks]
    out = []
    for s, _, row in scored:
        ex = make(by_id[row["id"]], records[row["id"]], row)
        if ex is not None:
            ex.score = (None if s == -math.inf else s) if ex.score is None else ex.score
            out.append(ex)
    return out


def _frame(ex: ReportExample) -> tuple[str, tuple[int, int]]:
    """(JPEG data URL, (width, height) of the JPEG) of the example's frame, the mask tinted in."""
    import numpy as np
    from PIL import Image

    if ex.medium == "video":
        from molmo2.processing.video import decode_frames_at

        rgb = decode_frames_at(ex.media, [max(0.0, float(ex.t or 0.0))])[0]
    else:
        from molmo2.processing.media import load_image

        rgb = load_image(ex.media)
    im = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB").resize(
        (int(ex.size[0]), int(ex.size[1])), Image.BILINEAR)  # the points' pixel grid
    if ex.mask is not None:
        mask = ex.mask
        if isinstance(mask, (str, Path)):
            with Image.open(mask) as m:
                mask = np.asarray(m)
        mask = np.asarray(mask)
        if mask.ndim == 3:
            mask = (mask > 127).any(axis=-1)
        elif mask.dtype != bool:
            mask = mask > 127
        tint = Image.fromarray((mask * 255).astype(np.uint8)).resize(im.size, Image.NEAREST)
        im = Image.composite(Image.blend(im, Image.new("RGB", im.size, (26, 156, 58)), 0.45), im, tint)
    scale = min(1.0, FRAME_WIDTH / im.width)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), im.size


def example_html(ex: ReportExample) -> str:
    """One example as a ``<figure>``: the frame with an SVG overlay of the points, and its caption."""
    esc = html.escape
    w, h = int(ex.size[0]), int(ex.size[1])
    r = max(2.0, 0.016 * math.hypot(w, h))
    score = "" if ex.score is None else f" &middot; score {ex.score:.3f}"
    caption = f"<figcaption><b>{esc(ex.id)}</b>{score}<br>{esc(ex.caption)}</figcaption>"
    try:
        url, (fw, fh) = _frame(ex)
    except Exception as e:  # noqa: BLE001 (a report must not fail over one frame)
        return (f'<figure class="ex"><div class="nofr">frame not shown: {esc(type(e).__name__)}: {esc(str(e))}</div>'
                f"{caption}</figure>")
    marks = [f'<circle class="true" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="none" stroke="{TRUE_COLOR}" '
             f'stroke-width="{r / 3:.1f}"/>' for x, y in ex.true]
    d = r * 0.8
    marks += [f'<path class="pred" d="M{x - d:.1f} {y - d:.1f}L{x + d:.1f} {y + d:.1f}M{x - d:.1f} {y + d:.1f}'
              f'L{x + d:.1f} {y - d:.1f}" stroke="{PRED_COLOR}" stroke-width="{r / 3:.1f}"/>' for x, y in ex.pred]
    fw, fh = FRAME_WIDTH, round(FRAME_WIDTH * fh / fw)  # small frames are shown enlarged, the marks stay sharp
    svg = (f'<svg width="{fw}" height="{fh}" viewBox="0 0 {w} {h}" preserveAspectRatio="none" '
           f'xmlns="http://www.w3.org/2000/svg"><image href="{url}" x="0" y="0" width="{w}" height="{h}" '
           f'preserveAspectRatio="none"/>{"".join(marks)}</svg>')
    return f'<figure class="ex">{svg}{caption}</figure>'


# ---------------------------------------------------------------------------------------------- plots


def _svg(width: int, height: int, body: Sequence[str], title: str) -> str:
    return (f'<figure class="plot"><svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui,sans-serif" font-size="12">'
            f'{"".join(body)}</svg><figcaption>{html.escape(title)}</figcaption></figure>')


def bar_chart(values: Sequence[tuple[str, float]], title: str) -> str:
    """Horizontal bars of fractions (0..1, wider if a value is above 1), one per (label, value)."""
    esc = html.escape
    finite = [v for _, v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    top = max([1.0, *finite])
    label_w, bar_w, row_h = 190, 320, 22
    body = []
    for k, (label, v) in enumerate(values):
        y = 8 + k * row_h
        body.append(f'<text class="label" x="{label_w - 6}" y="{y + 14}" text-anchor="end">{esc(label)}</text>')
        if isinstance(v, (int, float)) and math.isfinite(v):
            body.append(f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(0.0, v) / top * bar_w:.1f}" '
                        f'height="{row_h - 6}" fill="#4a78c2"/>')
            body.append(f'<text x="{label_w + max(0.0, v) / top * bar_w + 4:.1f}" y="{y + 14}">{v:.3f}</text>')
        else:
            body.append(f'<text x="{label_w + 4}" y="{y + 14}">-</text>')
    body.append(f'<line x1="{label_w}" y1="4" x2="{label_w}" y2="{12 + len(values) * row_h}" stroke="#555"/>')
    return _svg(label_w + bar_w + 60, 16 + len(values) * row_h, body, title)


def histogram(scores: Sequence[float], title: str, num_bins: int = 10) -> str:
    """Counts of per-item scores in ``num_bins`` equal bins over [0, 1] (1.0 goes in the last bin)."""
    counts = [0] * num_bins
    for s in scores:
        counts[min(num_bins - 1, max(0, int(s * num_bins)))] += 1
    w, h, pad = 330, 150, 28
    bin_w = (w - 2 * pad) / num_bins
    top = max(counts) or 1
    body = []
    for k, c in enumerate(counts):
        bh = c / top * (h - 2 * pad)
        x = pad + k * bin_w
        body.append(f'<rect class="bin" x="{x + 1:.1f}" y="{h - pad - bh:.1f}" width="{bin_w - 2:.1f}" '
                    f'height="{bh:.1f}" fill="#4a78c2"/>')
        if c:
            body.append(f'<text x="{x + bin_w / 2:.1f}" y="{h - pad - bh - 3:.1f}" text-anchor="middle">{c}</text>')
    body.append(f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#555"/>')
    for v in (0.0, 0.5, 1.0):
        body.append(f'<text x="{pad + v * (w - 2 * pad):.1f}" y="{h - pad + 14}" text-anchor="middle">{v:g}</text>')
    return _svg(w, h, body, title)


def count_scatter(pairs: Sequence[tuple[float, float]], title: str) -> str:
    """Predicted (y) against true (x) counts, one dot per item, with the diagonal pred = true."""
    w, h, pad = 260, 260, 32
    top = max([1.0, *(max(a, b) for a, b in pairs)])

    def sx(v: float) -> float:
        return pad + v / top * (w - 2 * pad)

    def sy(v: float) -> float:
        return h - pad - v / top * (h - 2 * pad)

    body = [f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(top):.1f}" y2="{sy(top):.1f}" stroke="#aaa" '
            'stroke-dasharray="4 3"/>',
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#555"/>',
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#555"/>',
            f'<text x="{w / 2}" y="{h - 6}" text-anchor="middle">true count (max {top:g})</text>',
            f'<text x="10" y="{h / 2}" text-anchor="middle" transform="rotate(-90 10 {h / 2})">predicted</text>']
    body += [f'<circle class="dot" cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="3.5" fill="#4a78c2" fill-opacity="0.6"/>'
             for a, b in pairs]
    return _svg(w, h, body, title)


def plots_html(metrics: Mapping[str, Any], per_item: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """The report's plots: headline per group, per-item score histograms, predicted vs true counts."""
    groups: Mapping[str, Mapping[str, Any]] = metrics.get("groups", {})
    headline: Mapping[str, Mapping[str, Any]] = metrics.get("headline", {})
    out = []
    if groups:
        bars = [(f"{g} ({headline.get(g, {}).get('metric', '-')})", headline.get(g, {}).get("value", math.nan))
                for g in groups]
        out.append(bar_chart(bars, "Headline metric of each group"))
    by_group: dict[str, list[Mapping[str, Any]]] = {}
    for r in per_item:
        by_group.setdefault(str(r.get("group", "all")), []).append(r)
    for g, rows in by_group.items():
        scores = [s for s in (item_score(r, metrics) for r in rows) if s is not None]
        if scores and all(0.0 <= s <= 1.0 for s in scores):
            metric = (headline.get(g) or headline.get("all") or {}).get("metric", "score")
            out.append(histogram(scores, f"{g}: per-item {metric} ({len(scores)} items)"))
        pairs = [(float(r["gt"]), float(r["pred"])) for r in rows
                 if isinstance(r.get("gt"), (int, float)) and isinstance(r.get("pred"), (int, float))]
        if pairs:
            out.append(count_scatter(pairs, f"{g}: predicted vs true count ({len(pairs)} with a count)"))
    return out


# --------------------------------------------------------------------------------------------- pages


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


def html_report(metrics: Mapping[str, Any], title: str | None = None, *,
                per_item: Sequence[Mapping[str, Any]] = (), examples: Sequence[ReportExample] = ()) -> str:
    """The report as one self-contained HTML page: tables, plots and (given ``examples``) example frames."""
    esc = html.escape
    title = title or f"Eval: {metrics.get('task', '')}"
    parts = ["<!doctype html>", '<html><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;"
             "margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:.3em .7em}td{text-align:right}"
             "td:first-child{text-align:left}th{background:#f3f3f3}figure{display:inline-block;"
             "vertical-align:top;margin:0 1.2em 1.2em 0}figure.ex{max-width:" + str(FRAME_WIDTH) + "px}"
             "figcaption{font-size:.85em;color:#333}.nofr{width:" + str(FRAME_WIDTH) + "px;padding:1em;"
             "background:#f3f3f3;font-size:.85em}.key{font-size:.9em}</style></head><body>",
             f"<h1>{esc(title)}</h1>", "<ul>"]
    parts += [f"<li>{esc(k)}: {esc(v)}</li>" for k, v in _info(metrics)]
    parts.append("</ul>")
    for name, header, rows in _tables(metrics):
        parts.append(f"<h2>{esc(name)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    plots = plots_html(metrics, per_item)
    if plots:
        parts += ['<h2>Plots</h2><div class="plots">', *plots, "</div>"]
    if examples:
        parts.append(f'<h2>Examples</h2><p class="key">{len(examples)} items from the lowest to the highest score. '
                     f'<span style="color:{TRUE_COLOR}">&#9711; true points</span> &nbsp; '
                     f'<span style="color:{PRED_COLOR}">&#10005; predicted points</span></p><div class="examples">')
        parts += [example_html(ex) for ex in examples]
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_reports(out_dir: str | Path, metrics: Mapping[str, Any], title: str | None = None, *,
                  per_item: Sequence[Mapping[str, Any]] = (),
                  examples: Sequence[ReportExample] = ()) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "report.md", out / "report.html"
    md.write_text(markdown_report(metrics, title))
    page.write_text(html_report(metrics, title, per_item=per_item, examples=examples))
    return md, page


__all__ = ["ReportExample", "bar_chart", "count_scatter", "example_html", "histogram", "html_report", "item_score",
           "markdown_report", "pick_examples", "plots_html", "points_example", "union_mask", "write_reports"]
