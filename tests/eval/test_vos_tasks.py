"""The referring-VOS adapters (MeViS, Ref-YouTube-VOS, Ref-DAVIS17, ReasonVOS) on tiny copies of their files
(``vos_fixtures.py``): rows, masks and videos read from each layout; hand-computed scores (perfect = 1,
known partial answers); the official rules (1 fps rows only, times snapped to frames, annotated empty
frames); clear errors; seeded prompt templates; and one end-to-end run each with a tiny random model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from benchmark_fixtures import SIZE
from inference.conftest import tiny_ckpt  # noqa: F401 (the shared tiny random checkpoint)
from vos_fixtures import BOX_CENTRE, LABEL, VOS_MAKERS, centre_a, make_mevis, mask_a, mask_b

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import InstanceMasks, track_point_prf1
from molmo2.eval.report import html_report
from molmo2.eval.runner import evaluate, score_predictions
from molmo2.eval.tasks import TASKS, get_task
from molmo2.eval.tasks._common import pick_template
from molmo2.eval.tasks._templates import TRACK_TEMPLATES
from molmo2.eval.tasks._vos import PngMask
from molmo2.grounding import Point, Track, format_tracks

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return {name: make(tmp_path_factory.mktemp(name)) for name, make in VOS_MAKERS.items()}


def A(t: float) -> Point:
    return Point(*centre_a(round(t * 2)), t=t)


def B(t: float) -> Point:
    return Point(*BOX_CENTRE, t=t)


def answer(*tracks: list[Point]) -> str:
    """An answer in the model's format: one track per list, object ids 1, 2, ... (empty: 'There are none.')."""
    trs = [Track(k + 1, LABEL, pts) for k, pts in enumerate(tracks) if pts]
    return format_tracks(trs, (SIZE, SIZE), LABEL) if trs else "There are none."


def score(name, root, answers):
    task = get_task(name)
    items = task.load(root)
    m = task.score(items, {it.id: {"id": it.id, "text": answers[it.id]} for it in items})
    return m, {r["id"]: r for r in m["per_item"]}


def test_registered_and_loaded_from_each_layout(data):
    from molmo2.cli import _eval_tasks

    assert {"mevis", "ref-youtube-vos", "ref-davis17", "reasonvos"} <= set(TASKS) & set(_eval_tasks())
    ids = {"mevis": ["mevis-0", "mevis-1"], "ref-youtube-vos": ["ytvos-0", "ytvos-1"],
           "ref-davis17": ["davis-0", "davis-1"], "reasonvos": ["rvos-0"]}
    for name, root in data.items():
        items = get_task(name).load(root)
        assert [it.id for it in items] == ids[name], name  # the 2 fps MeViS row is skipped
        for it in items:
            assert it.prompt == "Track the white square in 1 FPS." and it.max_new_tokens == 4096, name
            assert it.max_fps == 1.0 and it.size == (SIZE, SIZE) and it.media.is_file(), name
            assert it.gt["times"] == [0.0, 1.0] and it.gt["fps"] == 2, name
        assert [it.id for it in get_task(name).load(root, limit=1)] == ids[name][:1]
    mevis = get_task("mevis").load(data["mevis"])[0]
    assert [[p.t for p in tr.points] for tr in mevis.gt["tracks"]] == [[0.0, 1.0], [0.0]]
    assert sorted(mevis.gt["masks"][2]) == [0.0]  # object B has no mask in mask_dict at frame 2 (null)
    # masks decode to the release's pixels: RLE (MeViS), binary PNG, palette PNG at 2x size (DAVIS)
    for name, it_index, oid in (("mevis", 0, 2), ("ref-youtube-vos", 1, 1), ("ref-davis17", 1, 2)):
        it = get_task(name).load(data[name])[it_index]
        got = InstanceMasks(it.size, it.gt["masks"]).get(oid, 0.0)
        assert np.array_equal(got, mask_b(0)), name
    it = get_task("ref-davis17").load(data["ref-davis17"])[0]
    assert np.array_equal(InstanceMasks(it.size, it.gt["masks"]).get(1, 1.0), mask_a(2))


def test_perfect_answers_score_one(data):
    perfect = {"mevis-0": answer([A(0), A(1)], [B(0)]), "mevis-1": answer([A(0), A(1)]),
               "ytvos-0": answer([A(0), A(1)]), "ytvos-1": answer([B(0)]),
               "davis-0": answer([A(0), A(1)]), "davis-1": answer([A(0), A(1)], [B(0)]),
               "rvos-0": answer([B(0)])}
    for name, root in data.items():
        m, _ = score(name, root, perfect)
        g = m["groups"]["all"]
        assert (g["f1"], g["precision"], g["recall"], g["HOTA"]) == pytest.approx((1, 1, 1, 1)), name
        assert m["headline"]["all"]["metric"] == "f1" and list(m["groups"]) == ["all"]


def test_partial_answers_score_the_hand_computed_values(data):
    # MeViS query 0 without object B: at 0 s P = 1, R = 1/2, F1 = 2/3; at 1 s (B gone) F1 = 1 -> 5/6.
    # HOTA: 2 of 3 GT detections matched, one ID each way: DetA = 2/3, AssA = 1 -> sqrt(2/3).
    only_a = answer([A(0), A(1)])
    m, per = score("mevis", data["mevis"], {"mevis-0": only_a, "mevis-1": only_a})
    assert per["mevis-0"]["f1"] == pytest.approx(5 / 6) and per["mevis-0"]["recall"] == pytest.approx(0.75)
    assert per["mevis-0"]["HOTA"] == pytest.approx(math.sqrt(2 / 3)) and per["mevis-0"]["DetA"] == pytest.approx(2 / 3)
    assert m["groups"]["all"]["f1"] == pytest.approx((5 / 6 + 1) / 2)
    # Ref-YT-VOS query 1 is about B: the square's track misses at 0 s and is a false positive at 1 s
    m, per = score("ref-youtube-vos", data["ref-youtube-vos"], {"ytvos-0": only_a, "ytvos-1": only_a})
    assert (per["ytvos-0"]["f1"], per["ytvos-1"]["f1"], m["groups"]["all"]["f1"]) == pytest.approx((1, 0, 0.5))
    # Ref-DAVIS17: right at 0 s, a corner (outside the mask) at 1 s -> 0.5; IDs swapped between frames
    corner = answer([A(0), Point(1.0, 1.0, t=1.0)])
    m, per = score("ref-davis17", data["ref-davis17"], {"davis-0": corner, "davis-1": only_a})
    assert per["davis-0"]["f1"] == pytest.approx(0.5) and per["davis-1"]["f1"] == pytest.approx(5 / 6)


def test_official_frame_rules(data):
    # times snap to the video's frames: 0.9 s on a 2 fps video is frame round(1.8) = 2, the GT frame at 1 s
    m, _ = score("ref-davis17", data["ref-davis17"], {"davis-0": answer([A(0), Point(*centre_a(2), t=0.9)]),
                                                      "davis-1": "There are none."})
    assert m["per_item"][0]["f1"] == pytest.approx(1.0)
    # an annotated frame where the target is gone (1 s) counts: 1 without a point there, 0 with one
    rv = data["reasonvos"]
    _, per = score("reasonvos", rv, {"rvos-0": answer([B(0), B(1)])})
    assert per["rvos-0"]["f1"] == pytest.approx(0.5)
    _, per = score("reasonvos", rv, {"rvos-0": "There are none."})
    assert per["rvos-0"]["f1"] == pytest.approx(0.5) and per["rvos-0"]["HOTA"] == 0.0
    # the same rule at the metric level
    masks = InstanceMasks((SIZE, SIZE), {1: {0.0: mask_b(0)}})
    gt = [Track(1, "b", [B(0)])]
    assert track_point_prf1([], gt, masks).f1 == 0.0
    assert track_point_prf1([], gt, masks, gt_times=[0.0, 1.0]).f1 == 0.5


def test_mevis_reads_the_hub_jsonl_export_too(tmp_path, data):
    a = get_task("mevis").load(make_mevis(tmp_path, cache="jsonl"))
    b = get_task("mevis").load(data["mevis"])
    assert [(i.id, i.prompt, i.gt["times"]) for i in a] == [(i.id, i.prompt, i.gt["times"]) for i in b]


def test_missing_files_say_what_was_expected(tmp_path, data):
    with pytest.raises(Molmo2Error, match="not one. Expected layout"):
        get_task("mevis").load(tmp_path / "nope")
    with pytest.raises(Molmo2Error, match=r"tracking/mevis/track/valid_u/data-\*.arrow"):
        get_task("mevis").load(tmp_path)
    root = make_mevis(tmp_path / "m")
    (root / "video_track" / "MeViS" / "valid_u" / "videos" / "vid_a.mp4").unlink()
    with pytest.raises(Molmo2Error, match="ffmpeg -framerate 2 .*JPEGImages/vid_a"):
        get_task("mevis").load(root)
    (root / "video_track" / "MeViS" / "MeViS_release" / "valid_u" / "mask_dict.json").write_text("{}")
    with pytest.raises(Molmo2Error, match="anno_id 101"):
        get_task("mevis").load(root)
    (root / "video_track" / "MeViS" / "MeViS_release" / "valid_u" / "mask_dict.json").unlink()
    with pytest.raises(Molmo2Error, match="mask_dict.json"):
        get_task("mevis").load(root)


def test_png_mask_resize_follows_opencv_nearest(tmp_path):
    from PIL import Image

    arr = np.zeros((4, 6), np.uint8)
    arr[1, 3] = arr[3, 5] = 255
    Image.fromarray(arr).save(tmp_path / "m.png")
    # 6x4 -> 3x2: destination (x, y) reads source (floor(2x), floor(2y)) = (0|2|4, 0|2)
    assert not PngMask(tmp_path / "m.png", (3, 2))().any()
    # 6x4 -> 4x3: xs = floor(i * 1.5) = 0, 1, 3, 4; ys = floor(j * 4/3) = 0, 1, 2
    got = PngMask(tmp_path / "m.png", (4, 3))()
    assert got.shape == (3, 4) and np.argwhere(got).tolist() == [[1, 2]]


def test_prompt_templates_are_seeded_per_item():
    ids = [f"q{k}" for k in range(40)]
    assert {pick_template(TRACK_TEMPLATES, i, None) for i in ids} == {TRACK_TEMPLATES[0]}
    draws = [pick_template(TRACK_TEMPLATES, i, 0) for i in ids]
    assert draws == [pick_template(TRACK_TEMPLATES, i, 0) for i in ids]  # same every time
    assert list(reversed(draws)) == [pick_template(TRACK_TEMPLATES, i, 0) for i in reversed(ids)]  # order-free
    assert len(set(draws)) > 3 and draws != [pick_template(TRACK_TEMPLATES, i, 1) for i in ids]


def test_seeded_task_prompts(data):
    task = get_task("reasonvos")
    task.prompt_seed = 3
    prompt = task.load(data["reasonvos"])[0].prompt
    assert prompt == pick_template(TRACK_TEMPLATES, "rvos-0", 3).format(label=LABEL, fps=1)
    assert prompt == task.load(data["reasonvos"])[0].prompt


@pytest.fixture(scope="module")
def pipe(tiny_ckpt):  # noqa: F811
    from molmo2.inference import Molmo2

    return Molmo2.from_pretrained(tiny_ckpt)


@pytest.mark.parametrize("name", sorted(VOS_MAKERS))
def test_runner_end_to_end_with_a_tiny_model(name, data, pipe, tmp_path):
    path = tmp_path / "predictions.jsonl"
    result = evaluate(name, pipe, data[name], limit=2, predictions_path=path, model_name="tiny", progress=False,
                      max_new_tokens=4)
    records = [json.loads(x) for x in path.read_text().splitlines()]
    items = get_task(name).load(data[name], limit=2)
    assert [r["id"] for r in records] == [it.id for it in items] and result.num_new == len(items)
    assert result.metrics["num_scored"] == len(items) and 0.0 <= result.metrics["groups"]["all"]["f1"] <= 1.0
    again = score_predictions(name, data[name], path, limit=2)
    assert json.dumps(again.metrics["groups"]) == json.dumps(result.metrics["groups"])
    # the report draws every grounding item (true vs predicted points); multiple choice has no frames
    assert len(result.examples) == (len(items) if hasattr(get_task(name), "example") else 0)
    page = html_report(result.metrics, per_item=result.per_item, examples=result.examples)
    assert page.count('<figure class="ex">') == len(result.examples) and "frame not shown" not in page


def test_prompt_seed_in_the_other_template_tasks(tmp_path):
    from benchmark_fixtures import make_pixmo_count, make_pixmo_points, make_video_track

    from molmo2.eval.tasks._templates import POINT_COUNT_TEMPLATES, POINTING_TEMPLATES

    cases = [("molmo2-video-track", make_video_track, TRACK_TEMPLATES, dict(label="the white square", fps=1)),
             ("pixmo-count", make_pixmo_count, POINT_COUNT_TEMPLATES, dict(label="white squares")),
             ("pixmo-points", make_pixmo_points, POINTING_TEMPLATES, dict(label="white square"))]
    for name, make, templates, kw in cases:
        root = make(tmp_path / name)
        task = get_task(name)
        first = task.load(root)[0]
        assert first.prompt == templates[0].format(**kw), name  # default: the canonical template
        task.prompt_seed = 7
        it = task.load(root)[0]
        assert it.prompt == pick_template(templates, it.id, 7).format(**kw), name


def test_cli_prompt_seed_and_resume_guard(data, tiny_ckpt, tmp_path, capsys):  # noqa: F811
    from molmo2.cli import main

    seed_a = 3
    seed_b = next(s for s in range(100) if pick_template(TRACK_TEMPLATES, "rvos-0", s)
                  != pick_template(TRACK_TEMPLATES, "rvos-0", seed_a))
    argv = ["eval", "--task", "reasonvos", "--model", str(tiny_ckpt), "--data", str(data["reasonvos"]),
            "--out", str(tmp_path / "o"), "--max-new-tokens", "4", "--no-progress"]
    assert main([*argv, "--prompt-seed", str(seed_a)]) == 0
    rec = json.loads((tmp_path / "o" / "predictions.jsonl").read_text())
    assert rec["prompt"] == pick_template(TRACK_TEMPLATES, "rvos-0", seed_a).format(label=LABEL, fps=1)
    capsys.readouterr()
    assert main([*argv, "--prompt-seed", str(seed_b)]) == 2
    assert "asked with other prompts" in capsys.readouterr().err
    assert main(["eval", "--task", "nextqa", "--model", str(tiny_ckpt), "--data", str(tmp_path),
                 "--prompt-seed", "1"]) == 2
    assert "one fixed prompt" in capsys.readouterr().err
