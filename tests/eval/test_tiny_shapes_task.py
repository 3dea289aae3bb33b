"""The tiny-shapes task adapter: items from a generated manifest, scored with the metric functions.

Perfect answers are written from the ground truth with ``molmo2.grounding.format`` (the trained text
formats), so they go through the same parse as model output; they must score 1 in every group, and
empty answers 0. Hand cases pin the group rules (image counting counts points, video counting reads the
stated number; a point off its object misses; a query naming nothing is right to find nothing)."""

from __future__ import annotations

import pytest

from molmo2.errors import Molmo2Error
from molmo2.eval.report import html_report, markdown_report
from molmo2.eval.tasks import get_task
from molmo2.eval.tasks.tiny_shapes import ShapesItem, load_items, score_item
from molmo2.grounding import Point, format_points, format_tracks, parse

GROUPS = ["pointing/image", "pointing/video", "counting/image", "counting/video", "tracking/video"]


def perfect(item: ShapesItem) -> str:
    if item.kind == "tracking":
        return format_tracks(item.tracks, item.size, item.label)
    return format_points(item.points, item.size, item.label, mode="point_then_count")


def test_items_cover_every_group_with_stable_ids(shapes_dir):
    items = load_items(shapes_dir)
    assert sorted({it.group for it in items}) == sorted(GROUPS)
    assert len({it.id for it in items}) == len(items)
    assert [it.id for it in load_items(shapes_dir / "data.jsonl", limit=5)] == [it.id for it in items[:5]]
    for it in items:
        assert it.media.is_file() and it.masks.is_file() and it.num_objects >= 1
        if it.medium == "video":
            assert it.duration > 0 and all(p.t is not None for p in it.points)


def test_perfect_answers_score_one_and_empty_answers_zero(shapes_dir):
    task = get_task("tiny-shapes")
    items = task.load(shapes_dir)
    best = task.score(items, {it.id: {"id": it.id, "text": perfect(it)} for it in items})
    assert list(best["groups"]) == GROUPS and best["num_missing"] == 0
    for group, h in best["headline"].items():
        assert h["value"] == pytest.approx(1.0), group
    assert best["groups"]["tracking/video"]["HOTA"] == pytest.approx(1.0)
    worst = task.score(items, {it.id: {"id": it.id, "text": ""} for it in items})
    for group, h in worst["headline"].items():
        assert h["value"] == 0.0, group
    assert worst["groups"]["tracking/video"]["HOTA"] == 0.0


def test_grounding_record_is_used_as_is_and_missing_items_are_counted(shapes_dir):
    task = get_task("tiny-shapes")
    items = task.load(shapes_dir)
    it = next(i for i in items if i.group == "pointing/video")
    g = parse(perfect(it), it.size, video=True)
    assert score_item(it, {"id": it.id, "text": "ignored", "grounding": g.to_dict()})["f1"] == pytest.approx(1.0)
    m = task.score(items, {it.id: {"id": it.id, "grounding": g.to_dict()}})
    assert m["num_scored"] == 1 and m["num_missing"] == len(items) - 1 and list(m["groups"]) == ["pointing/video"]


def test_group_rules(shapes_dir):
    items = load_items(shapes_dir)
    img = next(i for i in items if i.group == "counting/image")
    vid = next(i for i in items if i.group == "counting/video")
    n = len(img.points)
    # image counting counts the points, whatever number the text states
    text = format_points(img.points, img.size, img.label, mode="point")
    assert score_item(img, {"id": img.id, "text": text})["correct"]
    assert not score_item(img, {"id": img.id, "text": f"There are {n}."})["correct"]
    # video counting reads the stated number
    assert score_item(vid, {"id": vid.id, "text": f"{len(vid.points)}"})["correct"]
    # a point in the image corner is on the background: no hit
    pt = next(i for i in items if i.group == "pointing/image")
    miss = format_points([Point(0.0, 0.0, image=0)] * len(pt.points), pt.size, pt.label)
    assert score_item(pt, {"id": pt.id, "text": miss})["f1"] == 0.0
    # a query naming nothing: empty GT, "There are none." is right, any point is wrong
    neg = ShapesItem(pt.id, "pointing", "image", pt.media, "purple stars", pt.size, pt.masks, pt.times)
    assert score_item(neg, {"id": neg.id, "text": "There are none."})["f1"] == 1.0
    assert score_item(neg, {"id": neg.id, "text": perfect(pt)})["f1"] == 0.0


def test_bad_data_raises(shapes_dir, tmp_path):
    with pytest.raises(Molmo2Error, match="no data.jsonl"):
        load_items(tmp_path)
    with pytest.raises(Molmo2Error, match="positive integer"):
        load_items(shapes_dir, limit=0)
    with pytest.raises(Molmo2Error, match="unknown eval task"):
        get_task("shapes")


def test_reports_show_every_group(shapes_dir):
    task = get_task("tiny-shapes")
    items = task.load(shapes_dir)
    m = task.score(items, {it.id: {"id": it.id, "text": perfect(it)} for it in items})
    m.pop("per_item")
    md, page = markdown_report(m), html_report(m)
    for group in GROUPS:
        assert f"| {group} |" in md and f"<td>{group}</td>" in page
    assert "| pointing/image | 2 | f1 | 1.000 |" in md
    assert "HOTA" in md and page.startswith("<!doctype html>")
