"""The benchmark adapters on tiny copies of their released files (``benchmark_fixtures.py``).

For each task: the items, prompts and ground truth read from the released layout; hand-made answers
with known scores (right, wrong, empty, the rules that differ between tasks); clear errors naming the
missing file or field; and one end-to-end run of every task through the runner with a tiny random model.
"""

from __future__ import annotations

import json

import pytest
from benchmark_fixtures import (
    MAKERS,
    SIZE,
    centre,
    make_countbench,
    make_video_point,
    pixmo_points_rows,
    square_x,
    video_point_rows,
    video_track_rows,
    write_parquet,
    write_point_videos,
)
from inference.conftest import tiny_ckpt  # noqa: F401 (the shared tiny random checkpoint)

from molmo2.errors import Molmo2Error
from molmo2.eval.report import html_report, pick_examples
from molmo2.eval.runner import evaluate, score_predictions
from molmo2.eval.tasks import TASKS, get_task
from molmo2.grounding import Point, Track, format_points, format_tracks


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Every benchmark's tiny copy, made once: {task name: folder}."""
    return {name: make(tmp_path_factory.mktemp(name)) for name, make in MAKERS.items()}


def _score(name, root, answers):
    task = get_task(name)
    items = task.load(root)
    return task.score(items, {it.id: {"id": it.id, "text": answers(it)} for it in items}), items


def _sq(k: int, t: float | None = None) -> Point:
    x, y = centre(square_x(k))
    return Point(x, y, t=t)


# ------------------------------------------------------------------------------------------ loading


def test_every_registered_task_loads_its_released_layout(data):
    assert set(TASKS) == {"tiny-shapes", *MAKERS, "countbench-qa", "mevis", "ref-youtube-vos", "ref-davis17", "reasonvos"}
    expected_prompts = {
        "molmo2-video-point": 'How many "white square" are there in the video?',
        "molmo2-video-count": "How many white squares are there?",
        "molmo2-video-track": "Track the white square in 1 FPS.",
        "point-bench": "Point to the white square (affordable).",
        "pixmo-points": "Point to white square\nPlease say 'There are none.' if it is not in the image.",
        "pixmo-count": "How many white squares are there?",
        "nextqa": "what does the square do\nA. stays\nB. jumps\nC. moves right\nD. turns\nE. vanishes\n"
                  "Answer with the option's letter from the given choices directly.",
        "mvbench": "What happened after the square moved?\nA. It stopped.\nB. It moved on.\n"
                   "Please respond with only the letter of the correct answer.",
        "perception-test": "What moves?\nA. a circle\nB. a square\nC. nothing\n"
                           "Answer with the option's letter from the given choices directly.",
    }
    budgets = {"molmo2-video-point": 2048, "molmo2-video-count": 2048, "molmo2-video-track": 4096, "point-bench": 256,
               "pixmo-points": 192, "pixmo-count": 192, "nextqa": 12, "mvbench": 32, "perception-test": 12}
    for name, root in data.items():
        items = get_task(name).load(root)
        assert items and len({it.id for it in items}) == len(items), name
        assert items[0].prompt == expected_prompts[name], name
        assert all(it.max_new_tokens == budgets[name] for it in items), name
        for it in items:
            assert it.media.is_file(), (name, it.media)
        assert [it.id for it in get_task(name).load(root, limit=1)] == [items[0].id]
    # clips and sampling overrides where the official eval has them
    count = get_task("molmo2-video-count").load(data["molmo2-video-count"])
    assert count[0].clip == (0.0, 1.5) and count[1].clip is None
    mv = get_task("mvbench").load(data["mvbench"])
    assert [it.category for it in mv] == ["Action Sequence", "Moving Direction", "Episodic Reasoning"]
    assert mv[0].clip == (0.0, 1.5) and mv[1].clip is None
    assert get_task("molmo2-video-track").load(data["molmo2-video-track"])[0].max_fps == 1.0
    assert len(get_task("point-bench").load(data["point-bench"])) == 5  # the row without a mask is skipped


def test_parquet_shards_read_like_the_jsonl_export(tmp_path):
    pytest.importorskip("pyarrow")
    write_parquet(tmp_path / "Molmo2-VideoPointEval" / "data" / "val-00000-of-00001.parquet", video_point_rows())
    write_point_videos(tmp_path)
    task = get_task("molmo2-video-point")
    from_parquet = task.load(tmp_path)
    from_jsonl = task.load(make_video_point(tmp_path / "jsonl"))
    assert [(i.id, i.prompt, i.size, i.gt["duration"]) for i in from_parquet] == \
        [(i.id, i.prompt, i.size, i.gt["duration"]) for i in from_jsonl]
    assert from_parquet[0].gt["masks"][0][0.5] == from_jsonl[0].gt["masks"][0][0.5]
    # the official save_to_disk cache: a Dataset folder per split, or a DatasetDict around them
    from vos_fixtures import write_arrow_cache

    for layout in ("split", "dict"):
        root = tmp_path / layout
        write_arrow_cache(root / "Molmo2-VideoPointEval" / "val", video_point_rows())
        if layout == "dict":
            (root / "Molmo2-VideoPointEval" / "dataset_dict.json").write_text(json.dumps({"splits": ["val"]}))
        write_point_videos(root)
        from_arrow = task.load(root)
        assert [(i.id, i.prompt, i.size) for i in from_arrow] == [(i.id, i.prompt, i.size) for i in from_jsonl]
        assert from_arrow[0].gt["masks"][0][0.5] == from_jsonl[0].gt["masks"][0][0.5]


def test_missing_files_and_fields_say_what_was_expected(data, tmp_path):
    with pytest.raises(Molmo2Error, match="not one. Expected layout"):
        get_task("point-bench").load(tmp_path / "nope")
    with pytest.raises(Molmo2Error, match=r"no annotations for split 'val'.*val-00000-of-00001.parquet"):
        get_task("molmo2-video-point").load(tmp_path)
    bad = [{k: v for k, v in r.items() if k != "two_fps_timestamps"} for r in video_point_rows()]
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad))
    with pytest.raises(Molmo2Error, match="no field 'two_fps_timestamps'"):
        get_task("molmo2-video-point").load(tmp_path)
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in video_point_rows()))
    with pytest.raises(Molmo2Error, match="vid1_2fps.mp4"):
        get_task("molmo2-video-point").load(tmp_path)  # videos are not there
    with pytest.raises(Molmo2Error, match="sha256 of their URL"):
        root = tmp_path / "pixmo"
        root.mkdir()
        (root / "test.jsonl").write_text(json.dumps(pixmo_points_rows()[0]) + "\n")
        get_task("pixmo-points").load(root)
    with pytest.raises(Molmo2Error, match="map_vid_vidorID.json"):
        (tmp_path / "nq").mkdir()
        (tmp_path / "nq" / "test.csv").write_text((data["nextqa"] / "test.csv").read_text())
        get_task("nextqa").load(tmp_path / "nq")
    with pytest.raises(Molmo2Error, match="data.json"):
        get_task("point-bench").load(tmp_path)


# ------------------------------------------------------------------------------------------ scoring


def test_video_point_scores(data):
    root = data["molmo2-video-point"]
    label = "white square"
    # the square at 1.0 s: another annotated frame of the same instance counts (official rule)
    right = format_points([_sq(2, t=1.0)], (SIZE, SIZE), label, mode="point_then_count")
    off_grid = format_points([_sq(2, t=1.2)], (SIZE, SIZE), label)  # no mask at 1.2 s: a miss
    corner = format_points([Point(1.0, 1.0, t=0.5)], (SIZE, SIZE), label)

    def answers(text):
        return lambda it: text if it.gt["points"] else "There are none."

    m, _ = _score("molmo2-video-point", root, answers(right))
    assert m["groups"]["all"]["f1"] == pytest.approx(1.0) and m["headline"]["all"]["metric"] == "f1"
    assert m["groups"]["category/youtube"]["f1"] == pytest.approx(1.0)
    assert m["groups"]["category/generated"]["f1"] == 1.0  # empty GT and no points
    for wrong in (off_grid, corner):
        m, _ = _score("molmo2-video-point", root, answers(wrong))
        assert m["groups"]["category/youtube"]["f1"] == 0.0 and m["groups"]["category/youtube"]["valid"] == 1.0
    m, _ = _score("molmo2-video-point", root, lambda it: right)  # a point where there is no cat
    assert m["groups"]["category/generated"]["f1"] == 0.0
    # the report shows the prediction on the frame at 1.0 s, over the square's mask there (its GT point is
    # at 0.5 s; a point on another annotated frame of the instance is a hit)
    task, items = get_task("molmo2-video-point"), get_task("molmo2-video-point").load(root)
    records = {it.id: {"id": it.id, "text": right} for it in items}
    m = task.score(items, records)
    ex = next(e for e in pick_examples(task, items, records, m["per_item"], m, num=100) if e.id.startswith("vid1/"))
    (x, y), = ex.pred
    assert ex.t == 1.0 and ex.true == [] and ex.score == pytest.approx(1.0) and ex.mask[round(y), round(x)]


def test_video_count_reads_the_stated_number(data):
    root = data["molmo2-video-count"]
    m, _ = _score("molmo2-video-count", root, lambda it: f"There are a total of {it.gt['count']}.")
    assert m["groups"]["all"]["correct"] == 1.0 and m["groups"]["all"]["acc_action/event"] == 1.0
    m, _ = _score("molmo2-video-count", root, lambda it: str(it.gt["count"] + 1))
    assert m["groups"]["all"]["correct"] == 0.0 and m["groups"]["all"]["close"] == 1.0
    m, _ = _score("molmo2-video-count", root, lambda it: "I cannot tell.")
    assert m["groups"]["all"]["valid"] == 0.0 and m["headline"]["all"] == {"metric": "correct", "value": 0.0}


def test_video_track_scores(data):
    root = data["molmo2-video-track"]
    fps = video_track_rows()[0]["fps"]
    # ground truth is every frame at 1 fps: frames 0 and 2 of a 2 fps clip
    item = get_task("molmo2-video-track").load(root)[0]
    assert [p.t for p in item.gt["tracks"][0].points] == [0.0, 1.0] and len(item.gt["tracks"]) == 1
    track = Track(1, "the white square", [_sq(0, t=0.0), _sq(2, t=2 / fps)])
    m, _ = _score("molmo2-video-track", root, lambda it: format_tracks([track], (SIZE, SIZE), "the white square"))
    assert m["groups"]["all"]["f1"] == pytest.approx(1.0) and m["groups"]["all"]["HOTA"] == pytest.approx(1.0)
    assert list(m["groups"]) == ["all", "category/animal"]
    half = Track(1, "x", [_sq(0, t=0.0), Point(1.0, 1.0, t=1.0)])  # right at 0 s, off the square at 1 s
    m, _ = _score("molmo2-video-track", root, lambda it: format_tracks([half], (SIZE, SIZE), "x"))
    assert m["groups"]["all"]["f1"] == pytest.approx(0.5)
    m, _ = _score("molmo2-video-track", root, lambda it: "There are none.")
    assert m["groups"]["all"]["f1"] == 0.0 and m["groups"]["all"]["HOTA"] == 0.0


def test_point_bench_all_points_must_land(data):
    root = data["point-bench"]
    inside = [Point(*centre(20)), Point(21.0, 21.0)]
    answers = {"affordable": inside, "counting": inside[:1], "reasoning": [*inside, Point(1.0, 1.0)],
               "spatial": [], "steerable": [Point(19.0, 25.0)]}  # x=19 is left of the square
    m, _ = _score("point-bench", root, lambda it: format_points(answers[it.category], (SIZE, SIZE), "x")
                  if answers[it.category] else "There are none.")
    g = m["groups"]["all"]
    assert (g["affordable"], g["counting"], g["reasoning"], g["spatial"], g["steerable"]) == (1.0, 1.0, 0.0, 0.0, 0.0)
    assert g["average"] == pytest.approx(0.4) and m["headline"]["all"] == {"metric": "average", "value": g["average"]}
    assert m["groups"]["category/counting"]["accuracy"] == 1.0


def test_pixmo_points_and_counting_rules(data):
    right = format_points([Point(*centre(20))], (SIZE, SIZE), "white square", mode="point_then_count")
    m, _ = _score("pixmo-points", data["pixmo-points"], lambda it: right if len(it.gt["points"]) else "There are none.")
    assert m["groups"]["all"]["f1"] == pytest.approx(1.0)
    m, _ = _score("pixmo-points", data["pixmo-points"], lambda it: right)
    assert m["groups"]["all"]["f1"] == pytest.approx(0.5)  # a point on the cat-less image scores 0 there
    # image counting counts the points, not the stated number
    two = format_points([Point(*centre(20)), Point(5.0, 5.0)], (SIZE, SIZE), "x", mode="point_then_count")
    m, _ = _score("pixmo-count", data["pixmo-count"], lambda it: right if it.gt["count"] == 1 else two)
    assert m["groups"]["all"]["correct"] == 1.0 and m["groups"]["all"]["correct_2"] == 1.0
    m, _ = _score("pixmo-count", data["pixmo-count"], lambda it: f"There are {it.gt['count']}.")
    assert m["groups"]["all"]["correct"] == 0.0 and m["groups"]["all"]["close"] == 0.5


def test_countbench_reads_the_parquet_and_question_file(tmp_path):
    pytest.importorskip("pyarrow")
    root = make_countbench(tmp_path)
    items = get_task("countbench-qa").load(root)
    # row 1 has no image and row 2 is greyscale: dropped, as the official builder does
    assert [it.id for it in items] == ["0", "3"] and items[1].prompt == "How many squares are in picture 3?"
    assert isinstance(items[0].media, bytes) and items[0].size == (SIZE, SIZE)
    pts = {1: [Point(*centre(20))], 4: [Point(float(x), 5.0) for x in (5, 15, 25, 35)]}
    m, _ = _score("countbench-qa", root, lambda it: format_points(pts[it.gt["count"]], (SIZE, SIZE), "x"))
    assert m["groups"]["all"]["correct"] == 1.0
    (root / "countbench_paired_questions.json").write_text("[]")
    with pytest.raises(Molmo2Error, match="one question per parquet row"):
        get_task("countbench-qa").load(root)


def test_multiple_choice_rules(data):
    # NeXTQA: the MMMU-style parser; no random fallback, so an unparsed answer is wrong and counted
    m, _ = _score("nextqa", data["nextqa"], lambda it: "(C)" if it.gt["answer"] == 2 else "A")
    assert m["groups"]["all"]["accuracy"] == 1.0 and set(m["groups"]) == {"all", "category/CW", "category/TN"}
    assert m["groups"]["all"]["accuracy_random_fallback"] == 1.0
    m, _ = _score("nextqa", data["nextqa"], lambda it: "hmm")
    assert m["groups"]["all"]["accuracy"] == 0.0 and m["groups"]["all"]["parse_failure"] == 1.0
    assert m["groups"]["all"]["accuracy_random_fallback"] == pytest.approx(1 / 5)  # the official guess, on average
    # MVBench: em_start, the answer starts with the letter
    right = {0: "B. It moved on.", 1: "b", 2: "A"}
    m, items = _score("mvbench", data["mvbench"], lambda it: right[int(it.id.rsplit("_", 1)[1]) if "Action" in it.id
                                                                   else (1 if "Moving" in it.id else 2)])
    assert m["groups"]["all"]["accuracy"] == 1.0 and m["groups"]["all"]["task_average"] == 1.0
    m, _ = _score("mvbench", data["mvbench"], lambda it: "The answer is B")  # starts with "T": no letter
    assert m["groups"]["all"]["accuracy"] == 0.0
    # PerceptionTest: the first standalone capital A-D
    m, _ = _score("perception-test", data["perception-test"], lambda it: "I think B.")
    assert m["groups"]["all"]["accuracy"] == 1.0 and set(m["groups"]) == {"all", "category/physics",
                                                                          "category/semantics"}


# ------------------------------------------------------------------------------- end to end, tiny model


@pytest.fixture(scope="module")
def pipe(tiny_ckpt):  # noqa: F811
    from molmo2.inference import Molmo2

    return Molmo2.from_pretrained(tiny_ckpt)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_runner_end_to_end_with_a_tiny_model(name, data, pipe, tmp_path):
    path = tmp_path / "predictions.jsonl"
    result = evaluate(name, pipe, data[name], limit=2, predictions_path=path, model_name="tiny", progress=False,
                      max_new_tokens=4)
    records = [json.loads(x) for x in path.read_text().splitlines()]
    items = get_task(name).load(data[name], limit=2)
    assert [r["id"] for r in records] == [it.id for it in items] and result.num_new == len(items)
    assert all(r["prompt"] == it.prompt and isinstance(r["text"], str) for r, it in zip(records, items))
    assert result.metrics["num_scored"] == len(items) and "all" in result.metrics["groups"]
    again = score_predictions(name, data[name], path, limit=2)
    assert json.dumps(again.metrics["groups"]) == json.dumps(result.metrics["groups"])  # NaN-safe
    # the report draws every grounding item (true vs predicted points); multiple choice has no frames
    assert len(result.examples) == (len(items) if hasattr(get_task(name), "example") else 0)
    page = html_report(result.metrics, per_item=result.per_item, examples=result.examples)
    assert page.count('<figure class="ex">') == len(result.examples) and "frame not shown" not in page
