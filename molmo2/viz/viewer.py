"""A self-contained HTML viewer for one grounded answer: the media with a live overlay, a timeline, the text.

``write_viewer(out_html, media, result)`` writes one HTML file with no external JS, CSS or fonts, so it
opens from disk, offline, in any current browser, and can be mailed or attached to an issue:

* **video**: a ``<video>`` with a ``<canvas>`` on top, redrawn at the current time on every animation
  frame while playing and on ``timeupdate``/``seeked`` otherwise; under it a timeline with a tick per
  point timestamp and a bar per track span (one row per track), which seek on click;
* **images**: one ``<img>`` per image of the set with its points drawn on a canvas;
* a panel with the answer text, the count (stated / pointed), parse errors and one row per object
  (a click on a row seeks to the object's first time); ``viewer.html#t=12.5`` opens at 12.5 s.

The data is ``GroundingResult.to_dict()`` (schema: ``molmo2.grounding.types``) embedded as JSON in a
``<script type="application/json">`` block, next to a small config (sampling interval, trail length,
per-object colours and texts computed by ``molmo2.viz.draw``, so page and rendered videos agree). The
page's JS implements the same display rules as ``Overlay.markers_at`` (see ``molmo2.viz.draw``).

Video embedding: a video up to ``embed_limit_mb`` (default 20 MB) is embedded as a base64 ``data:`` URL
(one file that works anywhere, 4/3 of the video's size); a larger one is referenced by its path relative
to the HTML file (the page stays small, but must be kept next to the video). ``embed=True/False``
forces either. Images are always embedded. The browser must be able to play the video's codec
(H.264/VP9/AV1 in MP4/WebM); if it cannot, the page says so and the overlay still shows on a blank frame.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from molmo2.errors import MediaError
from molmo2.grounding.types import GroundingResult
from molmo2.viz.draw import PALETTE, RIM, Overlay, as_result, color_for, marker_text
from molmo2.viz.media import VideoReader, is_image_set, is_video_path, load_image

DEFAULT_EMBED_LIMIT_MB = 20.0
_VIDEO_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
               ".mkv": "video/x-matroska", ".ogv": "video/ogg"}
_IMAGE_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".gif": "image/gif", ".bmp": "image/bmp"}


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _image_source(image: Any) -> tuple[str, tuple[int, int]]:
    """(data URL, (width, height)) of an image; files the browser can show are embedded as they are."""
    pil = load_image(image)  # also validates
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        mime = _IMAGE_MIME.get(path.suffix.lower())
        if mime is not None:  # browsers apply EXIF orientation like load_image does
            return _data_url(path.read_bytes(), mime), pil.size
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return _data_url(buf.getvalue(), "image/png"), pil.size


def _json_for_script(obj: Any) -> str:
    """JSON safe inside ``<script>``: ``</`` and ``<!--`` cannot end or confuse the element."""
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def write_viewer(out_html: str | os.PathLike, media: Any, result: GroundingResult | dict[str, Any], *,
                 interval: float | None = None, trail: int = 8, embed: bool | None = None,
                 embed_limit_mb: float = DEFAULT_EMBED_LIMIT_MB, title: str | None = None) -> Path:
    """Write the viewer page for ``result`` on ``media`` (a video path, an image, or a list of images).

    ``interval`` / ``trail``: as in ``Overlay``. ``embed``: ``None`` embeds a video up to
    ``embed_limit_mb`` and links a larger one by relative path; ``True``/``False`` force it.
    Returns the path written.
    """
    out_html = Path(out_html).expanduser()
    if out_html.suffix.lower() not in (".html", ".htm"):
        raise MediaError(f"the viewer is an HTML page; give it a .html name, not {out_html.name!r}")
    out_html.parent.mkdir(parents=True, exist_ok=True)
    result = as_result(result)

    if is_video_path(media):
        path = Path(media).expanduser()
        with VideoReader(path, threads=False) as r:
            info = r.info
        overlay = Overlay(result, duration=info.duration, interval=interval, trail=trail)
        mime = _VIDEO_MIME.get(path.suffix.lower(), "video/mp4")
        size_mb = path.stat().st_size / 2**20
        if embed or (embed is None and size_mb <= embed_limit_mb):
            src = _data_url(path.read_bytes(), mime)
        else:
            try:
                src = Path(os.path.relpath(path.resolve(), out_html.parent.resolve())).as_posix()
            except ValueError:  # another drive (Windows): an absolute file URL
                src = path.resolve().as_uri()
        media_cfg = {"kind": "video", "src": src, "mime": mime, "sizes": [[info.width, info.height]],
                     "duration": info.duration, "name": path.name}
    else:
        images = list(media) if is_image_set(media) else [media]
        if not images:
            raise MediaError("the image list is empty; pass at least one image")
        if len(result.sizes) > 1 and len(result.sizes) != len(images):
            raise MediaError(f"the result is for {len(result.sizes)} images but {len(images)} were given; pass "
                             "the same images, in the same order, as to the model")
        overlay = Overlay(result, interval=interval, trail=trail)
        sources = [_image_source(img) for img in images]
        media_cfg = {"kind": "images" if is_image_set(media) else "image", "srcs": [s for s, _ in sources],
                     "sizes": [list(sz) for _, sz in sources], "duration": None,
                     "name": Path(media).name if isinstance(media, (str, os.PathLike)) else None}

    config = {
        "media": media_cfg,
        "interval": overlay.interval,
        "tolerance": overlay.tolerance,
        "maxGap": overlay.max_gap,
        "trail": overlay.trail,
        "rim": _hex(RIM),
        "palette": [_hex(c) for c in PALETTE],
        "pointStyle": [{"color": _hex(color_for(p.object_id, p.label)), "text": marker_text(p.object_id, p.label)}
                       for p in result.points],
        "trackStyle": [{"color": _hex(color_for(t.object_id, t.label)), "text": marker_text(t.object_id, t.label)}
                       for t in result.tracks],
    }
    page = (_TEMPLATE
            .replace("__TITLE__", html.escape(title or f"molmo2: {media_cfg.get('name') or 'grounded answer'}"))
            .replace("__RESULT__", _json_for_script(result.to_dict()))
            .replace("__CONFIG__", _json_for_script(config))
            .replace("__SCRIPT__", _SCRIPT))
    out_html.write_text(page, encoding="utf-8")
    return out_html


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  body { margin: 0; padding: 16px; font: 14px/1.4 system-ui, sans-serif; color: #222; background: #fff; }
  #media { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
  .stage { position: relative; display: inline-block; line-height: 0; max-width: 100%; }
  .stage video, .stage img { display: block; max-width: 100%; height: auto; background: #000; }
  .stage canvas { position: absolute; left: 0; top: 0; pointer-events: none; }
  figure { margin: 0; }
  figcaption { color: #666; font-size: 12px; line-height: 1.6; }
  #timeline { position: relative; margin-top: 6px; background: #f2f2f2; border-radius: 3px; cursor: pointer;
              user-select: none; }
  #timeline .row { position: relative; height: 12px; margin: 2px 0; }
  #timeline .tick { position: absolute; top: 0; width: 3px; height: 12px; margin-left: -1px; border-radius: 1px; }
  #timeline .span { position: absolute; top: 3px; height: 6px; border-radius: 3px; opacity: 0.85; }
  #timeline .head { position: absolute; top: 0; bottom: 0; width: 2px; background: #000; pointer-events: none; }
  #time { font-variant-numeric: tabular-nums; color: #444; margin-top: 4px; line-height: 1.6; }
  #panel { margin-top: 14px; max-width: 960px; }
  #text { white-space: pre-wrap; background: #fafafa; border: 1px solid #e4e4e4; padding: 8px; border-radius: 4px; }
  table { border-collapse: collapse; margin-top: 8px; }
  td, th { padding: 2px 10px 2px 0; text-align: left; }
  tr.obj { cursor: pointer; }
  tr.obj:hover { background: #f0f6ff; }
  .swatch { display: inline-block; width: 12px; height: 12px; border-radius: 6px; vertical-align: middle; }
  .errors { color: #a00; }
  .warn { color: #a00; line-height: 1.6; }
</style>
</head>
<body>
<div id="media"></div>
<div id="panel">
  <div id="text"></div>
  <div id="count"></div>
  <table id="objects"></table>
  <ul class="errors" id="errors"></ul>
</div>
<script type="application/json" id="molmo2-result">__RESULT__</script>
<script type="application/json" id="molmo2-config">__CONFIG__</script>
<script>
__SCRIPT__
</script>
</body>
</html>
"""

_SCRIPT = r"""
"use strict";
const R = JSON.parse(document.getElementById("molmo2-result").textContent);
const C = JSON.parse(document.getElementById("molmo2-config").textContent);
const M = C.media;
const EPS = 1e-9;

function el(tag, attrs, parent) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

// ---- display rules: the same as molmo2.viz.draw.Overlay --------------------------------------------
function upperBound(arr, x) { let lo = 0, hi = arr.length; while (lo < hi) { const m = (lo + hi) >> 1; if (arr[m] <= x) lo = m + 1; else hi = m; } return lo; }
const tracks = R.tracks.map((tr, j) => {
  const pts = tr.points.filter(p => p.t !== null).sort((a, b) => a.t - b.t);
  return { T: pts.map(p => p.t), xy: pts.map(p => [p.x, p.y]), color: C.trackStyle[j].color, text: C.trackStyle[j].text };
}).filter(tr => tr.T.length > 0);
const points = R.points.map((p, i) => ({ p, color: C.pointStyle[i].color, text: C.pointStyle[i].text }));

function trackMarker(tr, t) {
  const T = tr.T, n = T.length;
  const i = upperBound(T, t + EPS) - 1;
  let x, y, last;
  if (i >= 0 && i < n - 1 && T[i + 1] - T[i] <= C.maxGap + EPS) {
    const t0 = T[i], t1 = T[i + 1];
    const w = t1 <= t0 ? 0 : Math.min(1, Math.max(0, (t - t0) / (t1 - t0)));
    x = tr.xy[i][0] + w * (tr.xy[i + 1][0] - tr.xy[i][0]);
    y = tr.xy[i][1] + w * (tr.xy[i + 1][1] - tr.xy[i][1]);
    last = w === 0 ? i - 1 : i;
  } else {
    let j = -1;
    for (const k of [i, i + 1]) {
      if (k >= 0 && k < n && Math.abs(T[k] - t) <= C.tolerance + EPS && (j < 0 || Math.abs(T[k] - t) < Math.abs(T[j] - t))) j = k;
    }
    if (j < 0) return null;
    [x, y] = tr.xy[j]; last = j - 1;
  }
  const first = C.trail ? Math.max(0, last - C.trail + 1) : last + 1;
  return { x, y, color: tr.color, text: tr.text, trail: tr.xy.slice(first, last + 1) };
}

function markersAt(t) {
  const out = [];
  for (const tr of tracks) { const m = trackMarker(tr, t); if (m) out.push(m); }
  for (const q of points) {
    if (q.p.t === null || Math.abs(q.p.t - t) <= C.tolerance + EPS) out.push({ x: q.p.x, y: q.p.y, color: q.color, text: q.text, trail: [] });
  }
  return out;
}

function markersForImage(k) {
  return points.filter(q => (q.p.image || 0) === k)
    .map(q => ({ x: q.p.x, y: q.p.y, color: q.color, text: q.text, trail: [] }));
}

// ---- painting: the same look as molmo2.viz.draw.paint -----------------------------------------------
function textColor(hex) {
  const r = parseInt(hex.slice(1, 3), 16), g = parseInt(hex.slice(3, 5), 16), b = parseInt(hex.slice(5, 7), 16);
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000" : "#fff";
}

function paint(canvas, target, markers, frameSize) {
  const w = target.clientWidth, h = target.clientHeight, dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    canvas.style.width = w + "px"; canvas.style.height = h + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!w || !h) return;
  const sx = w / frameSize[0], sy = h / frameSize[1];
  const short = Math.min(w, h);
  const r = Math.max(3, Math.round(short / 80)), line = Math.max(1, Math.floor(r / 2)), fs = Math.max(10, Math.round(short / 32));
  const placed = markers.map(m => ({ m, x: m.x * sx, y: m.y * sy, trail: m.trail.map(([px, py]) => [px * sx, py * sy]) }));
  ctx.lineCap = "round";
  for (const p of placed) {
    const path = [...p.trail, [p.x, p.y]], n = path.length - 1;
    ctx.strokeStyle = p.m.color;
    for (let k = 0; k < n; k++) {
      ctx.lineWidth = Math.max(1, Math.round(line * (k + 1) / n));
      ctx.beginPath(); ctx.moveTo(path[k][0], path[k][1]); ctx.lineTo(path[k + 1][0], path[k + 1][1]); ctx.stroke();
    }
  }
  const rim = Math.max(1, Math.floor(r / 3));
  for (const p of placed) {
    ctx.fillStyle = C.rim; ctx.beginPath(); ctx.arc(p.x, p.y, r + rim, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = p.m.color; ctx.beginPath(); ctx.arc(p.x, p.y, r, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.font = fs + "px sans-serif"; ctx.textBaseline = "top";
  for (const p of placed) {
    if (!p.m.text) continue;
    const tw = ctx.measureText(p.m.text).width + 4, th = fs + 4;
    const bx = Math.min(Math.max(p.x + r + 2, 0), Math.max(w - tw, 0));
    const by = Math.min(Math.max(p.y - r - th, 0), Math.max(h - th, 0));
    ctx.fillStyle = p.m.color; ctx.fillRect(bx, by, tw, th);
    ctx.fillStyle = textColor(p.m.color); ctx.fillText(p.m.text, bx + 2, by + 2);
  }
}

// ---- page ---------------------------------------------------------------------------------------------
const mediaDiv = document.getElementById("media");
const frameSize = k => (R.sizes[k] || R.sizes[0] || M.sizes[k]);
const fmt = t => t.toFixed(2) + " s";
let seek = null;

if (M.kind === "video") {
  const box = el("div", {}, mediaDiv);
  const stage = el("div", { class: "stage" }, box);
  const video = el("video", { src: M.src, controls: "", preload: "auto", playsinline: "", muted: "",
                              width: M.sizes[0][0], height: M.sizes[0][1] }, stage);
  const canvas = el("canvas", {}, stage);
  const warn = el("div", { class: "warn" }, box);
  const timeline = el("div", { id: "timeline" }, box);
  const clock = el("div", { id: "time" }, box);
  let duration = M.duration || 0;
  let head = null;  // the playhead, built with the timeline
  const t0 = () => video.currentTime || 0;
  const draw = () => {
    const t = t0();
    paint(canvas, video, markersAt(t), frameSize(0));
    if (duration > 0 && head) head.style.left = (100 * Math.min(1, t / duration)) + "%";
    clock.textContent = fmt(t) + (duration ? " / " + fmt(duration) : "");
  };
  seek = t => { video.currentTime = Math.max(0, t); draw(); };
  video.addEventListener("error", () => {
    warn.textContent = "This browser cannot play " + (M.name || "the video") +
      " (codec or path); render it to H.264 MP4 (molmo2.viz.render(..., 'out.mp4')) and view that.";
  });
  const loop = () => { draw(); if (!video.paused && !video.ended) requestAnimationFrame(loop); };
  for (const ev of ["timeupdate", "seeked", "loadeddata", "pause"]) video.addEventListener(ev, draw);
  video.addEventListener("play", () => requestAnimationFrame(loop));
  video.addEventListener("loadedmetadata", () => {
    if (isFinite(video.duration) && video.duration > 0) duration = video.duration;
    buildTimeline(); draw();
  });
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(draw).observe(video);
  const buildTimeline = () => {
    timeline.textContent = "";
    const pct = t => (100 * Math.min(1, Math.max(0, t / (duration || 1)))) + "%";
    const timed = points.filter(q => q.p.t !== null);
    if (timed.length) {
      const row = el("div", { class: "row", title: "points" }, timeline);
      for (const q of timed) {
        const tick = el("div", { class: "tick", title: (q.text || "point") + " @ " + fmt(q.p.t),
                                 style: "left:" + pct(q.p.t) + ";background:" + q.color }, row);
        tick.dataset.t = q.p.t;
      }
    }
    for (const tr of tracks) {
      const row = el("div", { class: "row", title: tr.text }, timeline);
      const a = tr.T[0], b = tr.T[tr.T.length - 1];
      const span = el("div", { class: "span", title: (tr.text || "track") + ": " + fmt(a) + " - " + fmt(b),
                               style: "left:" + pct(a) + ";width:calc(" + pct(b - a) + " + 3px);background:" + tr.color }, row);
      span.dataset.t = a;
      for (const t of tr.T) {
        const tick = el("div", { class: "tick", style: "left:" + pct(t) + ";background:" + tr.color + ";opacity:0.5" }, row);
        tick.dataset.t = t;
      }
    }
    if (!timeline.children.length) el("div", { class: "row", title: "no timed events" }, timeline);
    head = el("div", { class: "head" }, timeline);
  };
  timeline.addEventListener("click", ev => {
    const t = ev.target.dataset && ev.target.dataset.t;
    if (t !== undefined) { seek(parseFloat(t)); return; }
    const rect = timeline.getBoundingClientRect();
    seek((ev.clientX - rect.left) / rect.width * (duration || 0));
  });
  buildTimeline();
  draw();
  const m = /(?:^#|&)t=([0-9.]+)/.exec(location.hash);  // viewer.html#t=12.5 opens at 12.5 s
  if (m) seek(parseFloat(m[1]));
} else {
  const redraws = [];
  M.srcs.forEach((src, k) => {
    const fig = el("figure", {}, mediaDiv);
    const stage = el("div", { class: "stage" }, fig);
    const img = el("img", { src, width: M.sizes[k][0], height: M.sizes[k][1], alt: "image " + (k + 1) }, stage);
    const canvas = el("canvas", {}, stage);
    if (M.kind === "images") el("figcaption", { text: "image " + (k + 1) + " (index " + k + ")" }, fig);
    const draw = () => paint(canvas, img, markersForImage(k), frameSize(k));
    img.addEventListener("load", draw);
    if (typeof ResizeObserver !== "undefined") new ResizeObserver(draw).observe(img);
    redraws.push(draw);
    draw();
  });
}

// ---- answer panel -------------------------------------------------------------------------------------
document.getElementById("text").textContent = R.text;
const cnt = R.count || {};
document.getElementById("count").textContent = "count: stated " + (cnt.stated === null ? "none" : cnt.stated) +
  ", pointed " + cnt.pointed + " · " + R.points.length + " points, " + R.tracks.length + " tracks";
const table = document.getElementById("objects");
const objects = [];
const seen = new Map();
R.points.forEach((p, i) => {
  const key = C.pointStyle[i].text + "|" + C.pointStyle[i].color;
  if (!seen.has(key)) { seen.set(key, { kind: "point", style: C.pointStyle[i], times: [], images: new Set() }); objects.push(seen.get(key)); }
  const o = seen.get(key);
  if (p.t !== null) o.times.push(p.t);
  if (p.image !== null) o.images.add(p.image + 1);
});
R.tracks.forEach((tr, j) => objects.push({ kind: "track", style: C.trackStyle[j], times: tr.points.filter(p => p.t !== null).map(p => p.t), images: new Set() }));
if (objects.length) {
  const head = el("tr", {}, table);
  for (const h of ["", "object", "kind", "where"]) el("th", { text: h }, head);
}
for (const o of objects) {
  const row = el("tr", { class: "obj" }, table);
  el("span", { class: "swatch", style: "background:" + o.style.color }, el("td", {}, row));
  el("td", { text: o.style.text || "(no label)" }, row);
  el("td", { text: o.kind + (o.times.length > 1 ? " ×" + o.times.length : "") }, row);
  const times = o.times.slice().sort((a, b) => a - b);
  const where = times.length ? (times.length > 1 ? fmt(times[0]) + " – " + fmt(times[times.length - 1]) : fmt(times[0]))
    : (o.images.size ? "image " + [...o.images].join(", ") : "");
  el("td", { text: where }, row);
  if (times.length && seek) row.addEventListener("click", () => seek(times[0]));
}
const errs = document.getElementById("errors");
for (const e of R.errors) el("li", { text: e }, errs);
"""
