"""The HTML report's plots and example frames: true points as green rings, predicted points as red crosses,
drawn on the right frame of the right item, chosen from the worst item to the best; a frame that cannot
be decoded does not stop the report."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest

from molmo2.eval.metrics import InstanceMasks
from molmo2.eval.report import ReportExample, html_report, pick_examples, points_example, write_reports
from molmo2.eval.tasks import get_task
from molmo2.grounding import Point, Track, format_points, format_tracks


def answer(item, keep: int | None = None) -> str:
    """The perfect answer of a tiny-shapes item, with only the first ``keep`` objects (None: all)."""
    if item.kind == "tracking":
        return format_tracks(item.tracks[:keep], item.size, item.label)
    return format_points(item.points[:keep] if keep is not None else item.points, item.size, item.label,
                         mode="point_then_count")


def scored(shapes_dir, keep=None):
    task = get_task("tiny-shapes")
    items = task.load(shapes_dir)
    records = {it.id: {"id": it.id, "text": answer(it, keep)} for it in items}
    metrics = task.score(items, records)
    return task, items, records, metrics, metrics.pop("per_item")


def frames_of(page: str) -> list[np.ndarray]:
    from PIL import Image

    urls = re.findall(r'href="data:image/jpeg;base64,([^"]+)"', page)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(u))).convert("RGB")) for u in urls]


def test_examples_show_true_and_predicted_points_on_their_frame(shapes_dir):
    task, items, records, metrics, per_item = scored(shapes_dir)
    examples = pick_examples(task, items, records, per_item, metrics, num=100)
    assert len(examples) == len(items)  # every grounding item can be drawn
    by_id = {it.id: it for it in items}
    for ex in examples:
        it = by_id[ex.id]
        assert ex.score == pytest.approx(1.0) and ex.size == it.size
        assert np.allclose(sorted(ex.pred), sorted(ex.true), atol=0.1)  # perfect answers: crosses on the rings
        assert ex.true, ex.id
        if it.medium == "video":
            # the instant shown is annotated, and every true point drawn there is inside its object's mask
            masks = InstanceMasks.from_npz(it.masks)
            assert any(abs(ex.t - t) < 1e-6 for t in it.times)
            gt = [p for tr in it.tracks for p in tr.points] if it.kind == "tracking" else it.points
            shown = [p for p in gt if abs(p.t - ex.t) < 1e-6]
            assert len(shown) == len(ex.true) == max(sum(abs(p.t - t) < 1e-6 for p in gt) for t in it.times)
            for p in shown:
                assert masks.get(p.object_id, p.t)[int(round(p.y)), int(round(p.x))]
        else:
            assert ex.t is None
    page = html_report(metrics, per_item=per_item, examples=examples)
    assert page.count('<figure class="ex">') == len(examples) and "frame not shown" not in page
    assert page.count('class="true"') == sum(len(ex.true) for ex in examples)
    assert page.count('class="pred"') == sum(len(ex.pred) for ex in examples)
    frames = frames_of(page)
    assert len(frames) == len(examples)
    for ex, frame in zip(examples, frames):  # shrunk to the page's width, the aspect kept
        assert frame.shape[1] <= 360 and abs(frame.shape[0] / frame.shape[1] - ex.size[1] / ex.size[0]) < 0.05
        assert frame.std() > 5  # a real picture, not a blank


def test_the_video_frame_is_the_one_at_the_instant_shown(shapes_dir):
    from PIL import Image

    from molmo2.processing.video import decode_frames_at

    task, items, records, metrics, per_item = scored(shapes_dir)
    ex = next(e for e in pick_examples(task, items, records, per_item, metrics, num=100) if e.medium == "video")
    assert ex.mask is not None and ex.mask.shape == (ex.size[1], ex.size[0])  # the objects' masks, tinted
    ex.mask = None
    frame = frames_of(html_report(metrics, examples=[ex]))[0].astype(float)
    truth = decode_frames_at(ex.media, [ex.t])[0]
    want = np.asarray(Image.fromarray(truth).resize(frame.shape[1::-1], Image.BILINEAR)).astype(float)
    assert np.abs(frame - want).mean() < 6  # JPEG noise only
    times = next(it.times for it in items if it.id == ex.id)
    other_t = next(t for t in times if abs(t - ex.t) > 0.2)  # another instant looks different (the shapes move)
    other = np.asarray(Image.fromarray(decode_frames_at(ex.media, [other_t])[0]).resize(frame.shape[1::-1]))
    assert np.abs(frame - other.astype(float)).mean() > 2 * np.abs(frame - want).mean()


def test_examples_run_from_the_worst_item_to_the_best(shapes_dir):
    task, items, records, metrics, per_item = scored(shapes_dir, keep=1)
    records[items[0].id] = {"id": items[0].id, "text": ""}  # one item answered with nothing
    metrics = task.score(items, records)
    per_item = metrics.pop("per_item")
    examples = pick_examples(task, items, records, per_item, metrics, num=3)
    scores = [ex.score for ex in examples]
    assert len(examples) == 3 and scores == sorted(scores)
    assert scores[0] == 0.0 and scores[-1] == max(s for s in (r.get("f1", r.get("correct")) for r in per_item))
    assert examples[0].id == items[0].id and examples[0].pred == []
    assert pick_examples(get_task("nextqa"), items, records, per_item, metrics) == []  # no example(): none
    assert pick_examples(task, items, records, per_item, metrics, num=0) == []


def test_plots_show_every_group_and_the_counts(shapes_dir):
    _, _, _, metrics, per_item = scored(shapes_dir, keep=1)
    page = html_report(metrics, per_item=per_item)
    assert "<h2>Plots</h2>" in page and "Examples" not in page
    bars = re.findall(r'<rect class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', page)
    assert len(bars) == len(metrics["groups"])
    for (g, h), width in zip(metrics["headline"].items(), bars):  # bar length is the headline value
        assert float(width) == pytest.approx(h["value"] * 320, abs=0.06), g
        assert f"{g} ({h['metric']})" in page
    num_counted = sum(1 for r in per_item if isinstance(r.get("pred"), int) and isinstance(r.get("gt"), int))
    assert page.count('class="dot"') == num_counted > 0  # predicted vs true count, one dot per item
    assert "counting/image: predicted vs true count" in page
    groups = {r["group"] for r in per_item}
    assert sum(f"{g}: per-item" in page for g in groups) == len(groups)
    bins = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle">(\d+)</text>', page)
    assert sum(int(b) for b in bins) >= len(per_item)  # histogram counts (plus the count-scatter axis)


def test_points_example_picks_the_crowded_instant_and_exact_times(tmp_path):
    true = [Point(1, 1, t=0.5), Point(2, 2, t=1.0), Point(3, 3, t=1.0), Point(4, 4, t=1.5)]
    pred = [Point(2, 2, t=1.0), Point(9, 9, t=1.04), Point(5, 5, t=0.5)]
    ex = points_example("v", tmp_path / "v.mp4", "video", (10, 10), true, pred, "q", time_offset=3.0)
    assert ex.t == pytest.approx(4.0) and ex.true == [(2, 2), (3, 3)] and ex.pred == [(2, 2)]  # 1.04 is off the grid
    assert ex.caption == "q; t = 1.0 s: 2 true, 1 of the 3 predicted points"
    only_pred = points_example("v", b"", "video", (10, 10), [], pred)
    assert only_pred.t == pytest.approx(0.5) and only_pred.pred == [(5, 5)] and only_pred.true == []
    image = points_example("i", b"", "image", (10, 10), [Point(1, 2)], [Point(3, 4), Point(5, 6)])
    assert image.t is None and image.true == [(1, 2)] and image.pred == [(3, 4), (5, 6)]
    assert [(p.x, p.y) for tr in [Track(1, None, true)] for p in tr.points][0] == (1, 1)


def test_a_frame_that_cannot_be_read_does_not_stop_the_report(tmp_path):
    from PIL import Image

    good = tmp_path / "img.png"
    Image.fromarray(np.full((20, 40, 3), 128, np.uint8)).save(good)
    mask = np.zeros((20, 40), bool)
    mask[:, 20:] = True
    examples = [ReportExample("gone <b>", tmp_path / "missing.mp4", "video", (40, 20), [(1, 1)], [], t=0.0),
                ReportExample("masked", good, "image", (40, 20), [], [(30, 10)], mask=mask)]
    md, page_path = write_reports(tmp_path / "out", {"task": "t", "groups": {}, "headline": {}}, examples=examples)
    page = page_path.read_text()
    assert md.is_file() and "frame not shown" in page and "gone &lt;b&gt;" in page and "gone <b>" not in page
    frame = frames_of(page)[0].astype(int)
    left, right = frame[:, :15].mean(axis=(0, 1)), frame[:, 25:].mean(axis=(0, 1))
    assert right[1] - right[0] > 30 and abs(left[1] - left[0]) < 5  # the mask half is tinted green
