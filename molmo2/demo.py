"""``molmo2 demo``: the shipped tiny-shapes model points, counts and tracks on a clip it never saw.

By default the demo generates a held-out synthetic clip (``molmo2.data.shapes.make_demo_clip``: an
RNG stream no training example uses), asks the model every pointing, counting and tracking question
the generator wrote for it, scores each answer against the clip's ground-truth masks with the
evaluation metrics (``molmo2.eval.tasks.tiny_shapes``), prints answers and scores, and writes::

    OUT/clip/            the clip, its ground truth (gt/*.npz) and demo.jsonl
    OUT/demo.json        every question, answer (text + parsed grounding) and score
    OUT/demo.mp4         the video with the tracking answer drawn on it
    OUT/demo.html        the interactive viewer (self-contained)
    OUT/frame.png        one annotated frame (the README shows it)

With ``--video PATH`` it asks the same verbs about any video (``--label``, default "shapes"); there is
no ground truth, so no scores. The tiny model knows coloured shapes only: on real footage it runs,
but its answers are poor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from molmo2.checkpoint.io import SHIPPED_MODELS
from molmo2.errors import MediaError, Molmo2Error

SHIPPED_MODEL = SHIPPED_MODELS["tiny-shapes"]
KINDS = ("pointing", "counting", "tracking")
VERB = {"pointing": "point", "counting": "count", "tracking": "track"}


def demo_config(seed: int = 0, scale: int = 2):
    """The held-out clip: the training distribution of the ``video`` preset (the model sees frames at
    112 px), drawn ``scale`` times larger so the annotated video is pleasant to watch."""
    from molmo2.data import shapes

    base = shapes.preset("video", image_size=112, seed=seed)
    lo, hi = base.object_size
    return replace(base, image_size=112 * scale, object_size=(lo * scale, hi * scale),
                   speed=(base.speed[0] * scale, base.speed[1] * scale), num_frames=(8, 8), num_objects=(2, 3),
                   occlusion_prob=1.0, enter_leave_prob=0.5)


def _summary(kind: str, rec: dict[str, Any], score: dict[str, Any] | None) -> str:
    g = rec["grounding"]
    if kind == "tracking":
        n = sum(len(t["points"]) for t in g["tracks"])
        said = f"{len(g['tracks'])} track(s), {n} points"
    elif kind == "counting":
        c = g.get("count") or {}
        said = f"count {c.get('stated') if c.get('stated') is not None else c.get('pointed')}"
    else:
        said = f"{len(g['points'])} point(s)"
    if score is None:
        return said
    if kind == "counting":
        verdict = "correct" if score["correct"] else "wrong"
        return f"{said:<24} truth {score['gt']}: {verdict}"
    extra = f"  HOTA {score['HOTA']:.2f}" if kind == "tracking" else ""
    return f"{said:<24} truth {score['num_gt']} object(s): F1 {score['f1']:.2f}{extra}"


def run(model: str | Path | None = None, out: str | Path = "demo-out", *, seed: int = 0,
        video: str | Path | None = None, label: str = "shapes", device: str = "cpu", dtype: str = "float32",
        progress: Callable[[str, int, int], None] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo; returns what ``OUT/demo.json`` holds."""
    from molmo2.eval.tasks.tiny_shapes import load_items, score_item
    from molmo2.inference import Molmo2

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = Path(model) if model is not None else SHIPPED_MODEL
    if model == SHIPPED_MODEL and not (model / "config.json").is_file():
        raise Molmo2Error(f"the shipped tiny-shapes model is missing from {model}; reinstall molmo2 from a "
                          "full checkout, or pass --model DIR (e.g. a checkpoint of `molmo2 train --recipe "
                          "tiny-shapes`)")
    if video is not None and not Path(video).is_file():
        raise MediaError(f"video file not found: {video}; check the path")
    pipe = Molmo2.from_pretrained(model, device=device, dtype=dtype, progress=progress)

    questions: list[dict[str, Any]] = []
    if video is None:
        from molmo2.data.shapes import make_demo_clip

        ex = make_demo_clip(out / "clip", demo_config(seed), kinds=KINDS)
        media = ex.media_paths()[0]
        n_obj = len(ex.ground_truth.get("objects", []))
        log(f"held-out clip (seed {seed}, never in training): {media} - {n_obj} objects, "
            f"{len(ex.ground_truth.get('times', []))} instants")
        items = load_items(out / "clip" / "demo.jsonl", kinds=KINDS)
        for item in items:
            ans = getattr(pipe, VERB[item.kind])(item.media, item.label)
            rec = {"kind": item.kind, "label": item.label, "text": ans.text, "grounding": ans.grounding.to_dict()}
            rec["score"] = score_item(item, rec)
            questions.append(rec)
    else:
        media = Path(video)
        log(f"video: {media} (no ground truth: answers only)")
        for kind in KINDS:
            ans = getattr(pipe, VERB[kind])(media, label)
            questions.append({"kind": kind, "label": label, "text": ans.text, "grounding": ans.grounding.to_dict(),
                              "score": None})

    for q in questions:
        log(f"  {VERB[q['kind']]:<5} {q['label']!r:<22} -> {_summary(q['kind'], q, q['score'])}")
        log(f"        {q['text']}")

    shown = next((q for q in questions if q["kind"] == "tracking" and q["grounding"]["tracks"]), None) \
        or next((q for q in questions if q["grounding"]["points"]), questions[0])
    written = _render(media, shown, out)
    report = {"model": str(model), "media": str(media), "seed": None if video else seed, "questions": questions,
              "shown": {"kind": shown["kind"], "label": shown["label"]}, "files": [str(p) for p in written],
              "seconds": round(time.perf_counter() - start, 2)}
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    written.insert(0, out / "demo.json")
    log(f"wrote {', '.join(str(p) for p in written)} in {report['seconds']:.1f} s")
    return report


def _render(media: Path, shown: dict[str, Any], out: Path) -> list[Path]:
    """The shown answer drawn on the video (mp4), in the viewer (html) and on one frame (png)."""
    from molmo2.grounding import GroundingResult
    from molmo2.viz import Overlay, render
    from molmo2.viz.draw import draw_frame
    from molmo2.viz.media import VideoReader

    result = GroundingResult.from_dict(shown["grounding"])
    title = f"molmo2 demo: {VERB[shown['kind']]} {shown['label']!r}"
    paths = [render(media, result, out / "demo.mp4"), render(media, result, out / "demo.html", title=title)]
    with VideoReader(media, threads=False) as r:
        overlay = Overlay(result, duration=r.info.duration)
        points = result.points + [p for tr in result.tracks for p in tr.points]
        times = sorted({p.t for p in points if p.t is not None}) or [0.0]
        target = times[len(times) // 2]
        best = None
        for t, frame in r.frames():
            if best is None or abs(t - target) < abs(best[0] - target):
                best = (t, frame.to_ndarray(format="rgb24"))
    img = draw_frame(best[1], overlay, best[0])
    img.save(out / "frame.png")
    return [Path(p) for p in paths] + [out / "frame.png"]


def main(argv: Sequence[str] | None = None) -> int:
    from molmo2.cli import main as cli_main

    return cli_main(["demo", *(argv or [])])
