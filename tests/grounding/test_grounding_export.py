"""Exports: JSON (to_dict/from_dict), COCO keypoints, MOTChallenge CSV."""

import json

import pytest

from molmo2.grounding import MOT_COLUMNS, GroundingResult, Point, Track, parse, to_coco, to_mot_csv

SQUARE = (1000, 1000)
TRACKS = '<tracks coords="0.0 1 259 340 2 510 600;0.5 1 262 338 2 515 598;1.0 2 520 590">person</tracks>'


def test_to_dict_schema_and_json_roundtrip():
    r = parse(
        'Counting the <points alt="pup" coords="1 1 500 250">dog</points> shows a total of 2.', (640, 480)
    )
    d = r.to_dict()
    assert set(d) == {"text", "sizes", "points", "tracks", "count", "errors"}
    assert d["sizes"] == [[640.0, 480.0]]
    assert d["points"] == [
        {"x": 320.0, "y": 120.0, "t": None, "image": 0, "object_id": 1, "label": "dog", "alt": "pup"}
    ]
    assert d["count"] == {"stated": 2, "pointed": 1}
    assert d["tracks"] == [] and d["errors"] == []
    assert GroundingResult.from_dict(json.loads(json.dumps(d))) == r

    t = parse(TRACKS, SQUARE).to_dict()
    assert set(t["tracks"][0]) == {"object_id", "label", "alt", "points"}
    assert t["tracks"][1]["points"][2] == {
        "x": 520.0,
        "y": 590.0,
        "t": 1.0,
        "image": None,
        "object_id": 2,
        "label": "person",
        "alt": None,
    }


def test_coco_image_set():
    r = parse('<points coords="1 1 100 200 2 300 400;2 3 500 500">cat</points>', [(1000, 500), (200, 100)])
    coco = to_coco(r, file_names=["a.jpg", "b.jpg"])
    assert coco["images"] == [
        {"id": 1, "width": 1000.0, "height": 500.0, "file_name": "a.jpg"},
        {"id": 2, "width": 200.0, "height": 100.0, "file_name": "b.jpg"},
    ]
    assert coco["categories"] == [
        {"id": 1, "name": "cat", "supercategory": "object", "keypoints": ["point"], "skeleton": []}
    ]
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3]
    assert [a["image_id"] for a in anns] == [1, 1, 2]
    assert [a["keypoints"] for a in anns] == [[100.0, 100.0, 2], [300.0, 200.0, 2], [100.0, 50.0, 2]]
    assert all(a["num_keypoints"] == 1 and a["iscrowd"] == 0 and a["category_id"] == 1 for a in anns)
    assert anns[2]["bbox"] == [100.0, 50.0, 0.0, 0.0] and anns[2]["object_id"] == 3
    json.dumps(coco)
    with pytest.raises(ValueError):
        to_coco(r, file_names=["only-one.jpg"])


def test_coco_video_with_tracks_and_points():
    r = parse(TRACKS + ' <points coords="0.5 1 100 100">ball</points>', SQUARE)
    coco = to_coco(r, fps=30)
    assert [(im["id"], im["timestamp"], im["frame_index"], im["file_name"]) for im in coco["images"]] == [
        (1, 0.0, 0, "frame_000000"),
        (2, 0.5, 15, "frame_000015"),
        (3, 1.0, 30, "frame_000030"),
    ]
    assert [c["name"] for c in coco["categories"]] == ["ball", "person"]
    anns = coco["annotations"]
    assert len(anns) == 6
    assert anns[0]["track_id"] is None and anns[0]["image_id"] == 2 and anns[0]["category_id"] == 1
    assert [(a["track_id"], a["image_id"]) for a in anns[1:]] == [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)]
    assert to_coco(r)["images"][0]["file_name"] == "t=0.0s"


def test_coco_empty_and_unlabelled():
    assert to_coco(parse("There are none.", SQUARE))["annotations"] == []
    coco = to_coco(parse("Click(10.0, 20.0)", SQUARE))
    assert coco["categories"][0]["name"] == "object"


def test_mot_csv():
    r = parse(TRACKS, (640, 480))
    csv = to_mot_csv(r, fps=2, header=True)
    assert csv.splitlines() == [
        ",".join(MOT_COLUMNS),
        "1,1,165.76,163.20,0.00,0.00,1,-1,-1,-1",
        "1,2,326.40,288.00,0.00,0.00,1,-1,-1,-1",
        "2,1,167.68,162.24,0.00,0.00,1,-1,-1,-1",
        "2,2,329.60,287.04,0.00,0.00,1,-1,-1,-1",
        "3,2,332.80,283.20,0.00,0.00,1,-1,-1,-1",
    ]
    boxed = to_mot_csv(r.tracks, fps=2, box_size=10, first_frame=0).splitlines()
    assert boxed[0] == "0,1,160.76,158.20,10.00,10.00,1,-1,-1,-1"


def test_mot_csv_renumbers_clashing_ids_and_keeps_one_row_per_frame():
    tracks = [
        Track(1, "cat", [Point(1, 1, t=0.0), Point(2, 2, t=0.01)]),  # both land on frame 1 at 10 fps
        Track(1, "dog", [Point(5, 5, t=0.1)]),
    ]
    assert to_mot_csv(tracks, fps=10).splitlines() == [
        "1,1,1.00,1.00,0.00,0.00,1,-1,-1,-1",
        "2,2,5.00,5.00,0.00,0.00,1,-1,-1,-1",
    ]
    assert to_mot_csv([], fps=10) == ""
    with pytest.raises(ValueError):
        to_mot_csv(tracks, fps=0)


def test_shift_times_moves_video_points_and_tracks_only():
    from molmo2.grounding import parse

    r = parse('<tracks coords="0.5 1 100 200;1.0 1 110 210">ball</tracks><points coords="2.0 1 500 500">x</points>',
              (640, 480), video=True)
    before = [p.t for p in r.points], [[p.t for p in t.points] for t in r.tracks]
    assert r.shift_times(10.25) is r
    assert [p.t for p in r.points] == [t + 10.25 for t in before[0]]
    assert [[p.t for p in t.points] for t in r.tracks] == [[t + 10.25 for t in ts] for ts in before[1]]
    from molmo2.grounding.types import GroundingResult, Point

    img = GroundingResult(text="", sizes=[(640, 480)], points=[Point(1.0, 2.0, image=0)])
    assert img.shift_times(3.0).points == [Point(1.0, 2.0, image=0)]
