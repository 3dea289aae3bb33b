"""Tiny-shapes generator: reproducibility, ground truth consistent with the pixels and with the
annotations, grounding round trips, and videos that decode at exactly the annotated instants.

Datasets are generated once per module (a few dozen 128 px examples, ~1 s) and shared by the tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from molmo2.data.schema import read_jsonl
from molmo2.data.shapes import (
    KINDS,
    ShapesConfig,
    generate_dataset,
    main,
    make_demo_clip,
    preset,
    query_label,
)
from molmo2.errors import Molmo2Error
from molmo2.grounding import format_points, format_tracks, parse

av = pytest.importorskip("av")
from molmo2.processing.video import load_video  # noqa: E402 (after the PyAV skip)

VIDEO = ShapesConfig(media="video", seed=3, num_frames=(5, 8), occlusion_prob=0.7)
IMAGE = ShapesConfig(media="image", seed=4, num_objects=(1, 4))


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("img")
    return list(read_jsonl(generate_dataset(out, 24, IMAGE, progress=False)))


@pytest.fixture(scope="module")
def video_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("vid")
    return list(read_jsonl(generate_dataset(out, 12, VIDEO, progress=False)))


def _ids(ex) -> tuple[np.ndarray, np.ndarray]:
    with np.load(ex.root / ex.ground_truth["masks"]) as z:
        return z["ids"], z["times"]


def _frame(times: np.ndarray, t: float | None) -> int:
    if t is None:
        return 0
    k = int(np.argmin(np.abs(times - t)))
    assert times[k] == t, (times, t)  # annotation instants are exactly the ground-truth instants
    return k


def _all_points(ex):
    for a in ex.annotations:
        for p in a.points or []:
            yield a, p
        for tr in a.tracks or []:
            for p in tr.points:
                assert p.object_id == tr.object_id
                yield a, p


# ---------------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_prefix_stable(tmp_path):
    cfg = ShapesConfig(media="mixed", seed=11)
    a = generate_dataset(tmp_path / "a", 6, cfg, progress=False)
    b = generate_dataset(tmp_path / "b", 6, cfg, progress=False)
    c = generate_dataset(tmp_path / "c", 4, cfg, progress=False)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_text().splitlines()[:4] == c.read_text().splitlines()
    exs = list(read_jsonl(a))
    assert {e.media.kind for e in exs} == {"image", "video"}
    for ex in exs:
        for rel in [*ex.media.paths, ex.ground_truth["masks"]]:
            if rel.endswith(".mp4"):  # compare what the model sees, not the encoder's bytes
                fa, fb = (load_video(d / rel, max_fps=2).frames for d in (tmp_path / "a", tmp_path / "b"))
                assert np.array_equal(fa, fb)
            else:
                assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    saved = json.loads((tmp_path / "a" / "shapes_config.json").read_text())
    assert ShapesConfig(**saved["config"]) == cfg and saved["num_examples"] == 6
    other = generate_dataset(tmp_path / "d", 2, ShapesConfig(media="mixed", seed=12), progress=False)
    assert other.read_text().splitlines()[0] != a.read_text().splitlines()[0]


def test_annotations_validate_and_cover_all_kinds(image_set, video_set):
    image_kinds = {a.kind for e in image_set for a in e.annotations}
    video_kinds = {a.kind for e in video_set for a in e.annotations}
    assert image_kinds == {"pointing", "counting", "caption", "qa"}
    assert video_kinds == set(KINDS)
    for ex in image_set + video_set:
        assert ex.annotations and ex.source == "tiny-shapes"
        assert ex.media_paths()[0].is_file() and (ex.root / ex.ground_truth["masks"]).is_file()
        for a in ex.annotations:
            a.validate()
        # JSON round trip of the whole example is lossless
        assert json.loads(json.dumps(ex.to_dict())) == ex.to_dict()


def test_masks_shapes_and_metadata(image_set, video_set):
    for ex in image_set + video_set:
        ids, times = _ids(ex)
        gt = ex.ground_truth
        assert ids.dtype == np.uint16 and ids.shape == (len(times), gt["height"], gt["width"])
        assert list(times) == gt["times"] == [0.5 * k for k in range(len(times))]
        assert (ex.media.kind == "image") == (len(times) == 1)
        present = set(np.unique(ids)) - {0}
        assert present <= {o["id"] for o in gt["objects"]}
        for o in gt["objects"]:
            assert o["label"] == f"{o['colour']} {o['shape']}"
            assert len(o["visible"]) == len(o["points"]) == len(times)
            for k, p in enumerate(o["points"]):
                assert (p is not None) == o["visible"][k] == (o["visible_fraction"][k] >= gt["min_visible"])


def test_every_point_lies_in_its_objects_visible_mask(image_set, video_set):
    num = 0
    for ex in image_set + video_set:
        ids, times = _ids(ex)
        for o in ex.ground_truth["objects"]:
            for k, p in enumerate(o["points"]):
                if p is not None:
                    assert ids[k, int(p[1]), int(p[0])] == o["id"]
        for a, p in _all_points(ex):
            if ex.media.kind == "image":
                assert p.image == 0 and p.t is None
            else:
                assert p.t is not None and p.image is None
            assert ids[_frame(times, p.t), int(p.y), int(p.x)] == p.object_id, (ex.id, a.kind, p)
            num += 1
    assert num > 100


def test_counts_and_labels_match_the_masks(image_set):
    for ex in image_set:
        ids, _ = _ids(ex)
        objects = {o["id"]: o for o in ex.ground_truth["objects"]}
        visible = {i for i, o in objects.items() if o["visible"][0]}
        assert visible <= set(np.unique(ids[0]))
        for a in ex.annotations:
            if a.kind not in ("pointing", "counting"):
                continue
            words = a.label.split()
            colour = words[0] if len(words) == 2 else None
            noun = words[-1].removesuffix("s")
            shape = None if noun == "shape" else noun
            want = {i for i in visible if (colour in (None, objects[i]["colour"]))
                    and (shape in (None, objects[i]["shape"]))}
            assert {p.object_id for p in a.points} == want, (ex.id, a.label)
            assert a.label == query_label((colour, shape), plural=a.kind == "counting" or len(want) != 1)


def test_points_and_tracks_survive_format_and_parse(image_set, video_set):
    for ex in image_set + video_set:
        size = (ex.ground_truth["width"], ex.ground_truth["height"])
        tol = 0.5 * max(size) / 1000 + 1e-6
        for a in ex.annotations:
            if a.kind in ("pointing", "counting"):
                mode = "point_then_count" if a.kind == "counting" else "point"
                r = parse(format_points(a.points, size, a.label, mode=mode), size)
                assert not r.errors
                assert r.count.value == len(a.points)
                got = sorted((p.t, p.x, p.y) for p in r.points)
                want = sorted((p.t, p.x, p.y) for p in a.points)
                assert len(got) == len(want)
                for (tg, xg, yg), (tw, xw, yw) in zip(got, want):
                    assert tg == tw and abs(xg - xw) <= tol and abs(yg - yw) <= tol
            elif a.kind == "tracking":
                r = parse(format_tracks(a.tracks, size, a.label), size)
                assert not r.errors and len(r.tracks) == len(a.tracks)
                for want in a.tracks:  # ids are renumbered by the formatter: match by trajectory
                    matched = [
                        got for got in r.tracks
                        if [p.t for p in got.points] == [p.t for p in want.points]
                        and all(abs(g.x - w.x) <= tol and abs(g.y - w.y) <= tol for g, w in zip(got.points, want.points))
                    ]
                    assert matched, (ex.id, want)


def test_videos_decode_to_the_annotated_instants_and_colours(video_set):
    for ex in video_set:
        ids, times = _ids(ex)
        v = load_video(ex.media_paths()[0], max_fps=2)
        assert v.num_frames == len(times)
        assert v.timestamps.tolist() == times.tolist()
        assert v.frames.shape[1:3] == ids.shape[1:]
        for _, p in _all_points(ex):
            assert p.t in v.timestamps.tolist()
        for o in ex.ground_truth["objects"]:
            for k, p in enumerate(o["points"]):
                x, y = int(p[0]) if p else 0, int(p[1]) if p else 0
                if p is None or not (ids[k, max(0, y - 2):y + 3, max(0, x - 2):x + 3] == o["id"]).all():
                    continue  # near an edge chroma subsampling blends colours
                diff = np.abs(v.frames[k, y, x].astype(int) - np.array(o["rgb"])).max()
                assert diff <= 16, (ex.id, o["label"], k, v.frames[k, y, x], o["rgb"])


def test_occlusion_leaves_gaps_in_tracks(tmp_path):
    cfg = ShapesConfig(media="video", seed=5, num_objects=(2, 3), num_frames=(6, 8), occlusion_prob=1.0,
                       enter_leave=False)
    gaps = 0
    for ex in read_jsonl(generate_dataset(tmp_path, 8, cfg, progress=False)):
        objects = {o["id"]: o for o in ex.ground_truth["objects"]}
        for o in objects.values():
            vis = o["visible"]
            for k, occ in enumerate(o["occluded_by"]):
                if occ is not None:
                    assert not vis[k] and objects[occ]["visible"][k]
            if any(not vis[k] and any(vis[:k]) and any(vis[k + 1:]) for k in range(len(vis))):
                gaps += 1
        for a in ex.annotations:
            for tr in a.tracks or []:
                o = objects[tr.object_id]
                want = [t for t, v in zip(ex.ground_truth["times"], o["visible"]) if v]
                assert [p.t for p in tr.points] == want  # hidden instants are missing, the id persists
            if a.kind == "temporal" and "hidden" in a.question:
                assert a.answer
    assert gaps >= 3


def test_objects_enter_and_leave(tmp_path):
    cfg = ShapesConfig(media="video", seed=6, enter_leave_prob=1.0, occlusion=False, num_frames=(5, 8))
    seen = set()
    for ex in read_jsonl(generate_dataset(tmp_path, 8, cfg, progress=False)):
        times = ex.ground_truth["times"]
        for o in ex.ground_truth["objects"]:
            seen.add(o["motion"])
            frac = o["visible_fraction"]
            if o["motion"] == "enter":
                assert frac[0] == 0 and any(o["visible"]) and o["side"] in ("left", "right", "top", "bottom")
            elif o["motion"] == "leave":
                assert o["visible"][0] and frac[-1] == 0
        labels = [o["label"] for o in ex.ground_truth["objects"]]
        for a in ex.annotations:
            if a.kind == "temporal" and ("enter" in a.question or "leave" in a.question):
                label = a.question.split("the ", 1)[1].split(" enter")[0].split(" leave")[0]
                assert labels.count(label) == 1
                o = next(o for o in ex.ground_truth["objects"] if o["label"] == label)
                vis = [t for t, v in zip(times, o["visible"]) if v]
                assert float(a.answer) == (vis[0] if "enter" in a.question else vis[-1])
    assert seen == {"enter", "leave"}


def test_single_object_curriculum_stage(tmp_path):
    exs = list(read_jsonl(generate_dataset(tmp_path, 10, preset("single", image_size=112), progress=False)))
    for ex in exs:
        (o,) = ex.ground_truth["objects"]
        assert ex.ground_truth["width"] == 112 and o["visible_fraction"] == [1.0]
        assert ex.ground_truth["background"].startswith("plain")
        assert 32 <= o["size"] <= 52


def test_kinds_filter_and_demo_clip(tmp_path):
    exs = list(read_jsonl(generate_dataset(tmp_path / "t", 4, VIDEO, kinds=["tracking"], progress=False)))
    assert {a.kind for e in exs for a in e.annotations} == {"tracking"}
    ex = make_demo_clip(tmp_path / "demo")
    (again,) = read_jsonl(tmp_path / "demo" / "demo.jsonl")
    assert again.id == ex.id and ex.media.kind == "video" and len(ex.ground_truth["times"]) == 8
    train = list(read_jsonl(generate_dataset(tmp_path / "train", 1, ShapesConfig(media="video", seed=0),
                                             progress=False)))
    assert train[0].ground_truth["objects"] != ex.ground_truth["objects"]


def test_cli_entry(tmp_path, capsys):
    main([str(tmp_path), "--num", "2", "--seed", "1", "--image", "--size", "96"])
    (line,) = capsys.readouterr().out.split()
    exs = list(read_jsonl(line))
    assert len(exs) == 2 and exs[0].ground_truth["width"] == 96


@pytest.mark.parametrize("kwargs", [
    dict(media="video", image_size=127),
    dict(media="film"),
    dict(shapes=("circle", "hexagon")),
    dict(colours=()),
    dict(num_objects=(0, 2)),
    dict(object_size=(40, 20)),
    dict(object_size=(20, 400)),
    dict(num_frames=(1, 4)),
    dict(min_visible=0.0),
    dict(negative_prob=1.5),
    dict(seed=-1),
])
def test_bad_config_raises(kwargs):
    with pytest.raises(Molmo2Error, match="ShapesConfig"):
        ShapesConfig(**kwargs)


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(Molmo2Error, match="task kinds"):
        generate_dataset(tmp_path, 1, kinds=["pointing", "dancing"], progress=False)
    with pytest.raises(Molmo2Error, match="need videos"):
        generate_dataset(tmp_path, 1, ShapesConfig(media="image"), kinds=["tracking"], progress=False)
    with pytest.raises(Molmo2Error, match="num_examples"):
        generate_dataset(tmp_path, 0, progress=False)
    with pytest.raises(Molmo2Error, match="preset"):
        preset("impossible")
    with pytest.raises(Molmo2Error, match="unknown ShapesConfig field"):
        preset("single", colors=("red",))
