"""Dataset adapters on tiny copies of each released layout, written here: parquet shards as on the hub,
``save_to_disk`` Arrow folders, JSON/JSONL; images and videos generated in the test (seconds).

Each adapter's Examples are checked (points in pixels, times in seconds, labels, kinds), bad rows are
skipped and named, a schema mismatch stops with the missing field, and the manifests feed the training
``Preparer`` of a tiny model without errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from molmo2.data.adapters import ADAPTERS, AdapterError, convert
from molmo2.data.adapters.__main__ import main
from molmo2.data.adapters._base import open_rows, url_hash
from molmo2.data.adapters.pixmo import split_dialogue
from molmo2.data.adapters.video import mc_options
from molmo2.data.schema import read_jsonl

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
av = pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from helpers import tiny_model_dir, write_video  # noqa: E402

W, H = 80, 60  # image size
VW, VH = 64, 48  # video size


def image(path: Path, w: int = W, h: int = H) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path, format="PNG")
    return path


def video(path: Path, num_frames: int = 8, fps: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, np.full((num_frames, VH, VW, 3), 60, np.uint8), fps=fps)


def parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def save_to_disk(folder: Path, splits: dict[str, list[dict]]) -> Path:
    """The layout of ``DatasetDict.save_to_disk``: dataset_dict.json + per split an Arrow stream file."""
    folder.mkdir(parents=True)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    for name, rows in splits.items():
        (folder / name).mkdir()
        table = pa.Table.from_pylist(rows)
        with pa.OSFile(str(folder / name / "data-00000-of-00001.arrow"), "wb") as f, \
                pa.ipc.new_stream(f, table.schema) as w:
            w.write_table(table)
        (folder / name / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    return folder


def run(name: str, src: Path, out: Path, media: Path | None, **kw):
    summary = convert(name, src, out, media, progress=False, log=lambda m: None, **kw)
    return summary, list(read_jsonl(out))


URLS = [f"https://example.com/img{i}.jpg" for i in range(4)]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """The PixMo download folder: files named by the sha256 of their URL (one with an extension)."""
    root = tmp_path_factory.mktemp("pixmo_images")
    image(root / url_hash(URLS[0]))
    image(root / (url_hash(URLS[1]) + ".png"), w=120, h=40)
    image(root / url_hash(URLS[2]))
    return root  # URLS[3] is never downloaded


# ------------------------------------------------------------------------------------------------ PixMo


def test_pixmo_points_parquet(tmp_path, images):
    rows = [
        {"image_url": URLS[0], "image_sha256": "x", "label": "dog", "points": [{"x": 50.0, "y": 25.0}, {"x": 10.0, "y": 100.0}],
         "count": 2, "collection_method": "pointing"},
        {"image_url": URLS[1], "image_sha256": "x", "label": "cat", "points": [], "count": 0,
         "collection_method": "counting"},
        {"image_url": URLS[0], "image_sha256": "x", "label": "ball", "points": [{"x": 100.4, "y": 0.0}], "count": 1,
         "collection_method": "pointing"},
        {"image_url": URLS[3], "image_sha256": "x", "label": "cow", "points": [], "count": 0,
         "collection_method": "pointing"},
        {"image_url": URLS[2], "image_sha256": "x", "label": "car", "points": [{"x": 250.0, "y": 30.0}], "count": 1,
         "collection_method": "pointing"},
    ]
    src = parquet(tmp_path / "pixmo-points" / "data" / "train-00000-of-00001.parquet", rows)
    summary, exs = run("pixmo-points", tmp_path / "pixmo-points", tmp_path / "out" / "points.jsonl", images)
    assert summary.num_rows == 5 and len(exs) == 2 and len(summary.skipped) == 2
    a, b = exs
    assert a.media.kind == "image" and a.media.paths == [str(images / url_hash(URLS[0]))]
    assert [(x.kind, x.label) for x in a.annotations] == [("pointing", "dog"), ("pointing", "ball")]
    assert [(p.x, p.y) for p in a.annotations[0].points] == [(40.0, 15.0), (8.0, 60.0)]  # percent of 80x60
    assert [(p.x, p.y) for p in a.annotations[1].points] == [(80.0, 0.0)]  # 100.4 % clipped as the loader does
    assert b.annotations[0].points == [] and b.media.paths[0].endswith(".png")
    reasons = {s.where: s.reason for s in summary.skipped}
    assert "not found" in reasons[f"row 3 (image {URLS[3]})"]
    assert "outside 0-100" in reasons[f"row 4 (image {URLS[2]})"]
    assert (tmp_path / "out" / "points.jsonl.skipped.txt").read_text().count("\n") == 2
    assert src.is_file()


def test_pixmo_points_official_grouped_copy(tmp_path, images):
    """The official download() groups rows per image (lists per label) and stores the cached path."""
    row = {"image_url": URLS[0], "image": str(images / url_hash(URLS[0])), "label": ["dog", "cat"],
           "points": [[{"x": 50.0, "y": 50.0}], []], "count": [1, 0], "collection_method": ["pointing", "pointing"]}
    src = save_to_disk(tmp_path / "points-pointing", {"train": [row], "validation": [row]})
    _, exs = run("pixmo-points", src, tmp_path / "p.jsonl", None, split="validation")
    assert [(a.label, [(p.x, p.y) for p in a.points]) for a in exs[0].annotations] == [("dog", [(40.0, 30.0)]),
                                                                                       ("cat", [])]


def test_pixmo_count_pixels_and_count_check(tmp_path, images):
    rows = [{"image_url": URLS[0], "image_sha256": "x", "count": 2, "label": "dogs",
             "points": {"x": [10.0, 70.0], "y": [5.0, 55.0]}},  # the Sequence feature: a dict of lists
            {"image_url": URLS[2], "image_sha256": "x", "count": 3, "label": "cats",
             "points": {"x": [1.0], "y": [2.0]}},
            {"image_url": URLS[1], "image_sha256": "x", "count": 1, "label": "cows",
             "points": {"x": [500.0], "y": [2.0]}}]
    parquet(tmp_path / "count" / "data" / "train-00000-of-00001.parquet", rows)
    parquet(tmp_path / "count" / "data" / "validation-00000-of-00001.parquet", rows[:1])
    with pytest.raises(AdapterError, match="several splits"):
        run("pixmo-count", tmp_path / "count", tmp_path / "c.jsonl", images)
    summary, exs = run("pixmo-count", tmp_path / "count", tmp_path / "c.jsonl", images, split="train")
    (ann,) = exs[0].annotations
    assert ann.kind == "counting" and ann.label == "dogs" and [(p.x, p.y) for p in ann.points] == [(10, 5), (70, 55)]
    assert sorted(s.reason for s in summary.skipped) == [
        "row 1 has count 3 but 1 points", "row 2 has a point (500.0, 2.0) outside the 120x40 image"]


def test_pixmo_cap_ama_and_cap_qa(tmp_path, images):
    cap = tmp_path / "cap.jsonl"
    cap.write_text("\n".join(json.dumps(r) for r in [
        {"image_url": URLS[0], "caption": " A grey square. ", "transcripts": ["grey"]},
        {"image_url": URLS[1], "caption": "", "transcripts": []}]))
    summary, exs = run("pixmo-cap", cap, tmp_path / "o" / "cap.jsonl", images)
    assert exs[0].annotations[0].kind == "caption" and exs[0].annotations[0].answer == "A grey square."
    assert "empty caption" in summary.skipped[0].reason

    ama = tmp_path / "ama.json"
    ama.write_text(json.dumps([{"image_url": URLS[0], "image_sha256": "x", "question": "What is it? ", "answer": "A square."},
                               {"image_url": URLS[0], "image_sha256": "x", "question": "Colour?", "answer": "Grey."}]))
    _, exs = run("pixmo-ask-model-anything", ama, tmp_path / "ama.jsonl", images)
    assert [(a.kind, a.question, a.answer) for a in exs[0].annotations] == [
        ("qa", "What is it?", "A square."), ("qa", "Colour?", "Grey.")]

    qa = tmp_path / "capqa.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in [
        {"image_url": URLS[0], "question": "[USER] How big? [ASSISTANT]", "answer": "Small."},
        {"image_url": URLS[0], "question": "[USER] What? [ASSISTANT] A square. [USER] Colour? [ASSISTANT]",
         "answer": "Grey."}]))
    _, exs = run("pixmo-cap-qa", qa, tmp_path / "capqa_out.jsonl", images)
    single, multi = exs[0].annotations
    assert (single.question, single.answer, single.messages) == ("How big?", "Small.", None)
    assert [m["role"] for m in multi.messages] == ["user", "assistant", "user", "assistant"]
    assert multi.messages[2]["content"] == "Colour?" and multi.messages[3]["content"] == "Grey."


def test_split_dialogue_rejects_broken_turns():
    from molmo2.data.adapters._base import RowError

    with pytest.raises(RowError, match="turns"):
        split_dialogue("[USER] a [ASSISTANT] b", "c")


# ------------------------------------------------------------------------------------------ image sets


def test_multi_image_qa_and_point(tmp_path, images):
    rows = [{"image_urls": [URLS[0], URLS[1]], "qa_pairs": {"question": ["Same colour?"], "answer": ["Yes."]}},
            {"image_urls": [URLS[0], URLS[3]], "qa_pairs": {"question": ["Q?"], "answer": ["A."]}}]
    parquet(tmp_path / "miqa" / "data" / "train-00000-of-00001.parquet", rows)
    summary, exs = run("molmo2-multi-image-qa", tmp_path / "miqa", tmp_path / "miqa.jsonl", images)
    assert exs[0].media.kind == "images" and len(exs[0].media.paths) == 2
    assert exs[0].annotations[0].question == "Same colour?" and len(summary.skipped) == 1

    home = tmp_path / "home"
    image(home / "pixmo_images" / "a.png")
    image(home / "pixmo_images" / "b.png", w=120, h=40)
    mp = tmp_path / "mp.jsonl"
    mp.write_text(json.dumps({"images": ["pixmo_images/a.png", "pixmo_images/b.png"], "labels": ["Dogs", "dog"],
                              "normalized_labels": ["dog", "dog"],
                              "points": [[{"x": 50.0, "y": 50.0}], [{"x": 25.0, "y": 50.0}]]}) + "\n")
    _, exs = run("molmo2-multi-image-point", mp, home / "mp_out.jsonl", home)
    (ann,) = exs[0].annotations
    assert exs[0].media.paths == ["pixmo_images/a.png", "pixmo_images/b.png"]  # relative to the manifest
    assert ann.label == "Dogs" and [(p.x, p.y, p.image) for p in ann.points] == [(40, 30, 0), (30, 20, 1)]


# ---------------------------------------------------------------------------------------------- videos


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """An official VIDEO_DATA_HOME: 2 fps re-encodes for VideoPoint, youtube-cc folders for the QA sets,
    a flat Cap file, and one tracking clip per source home."""
    root = tmp_path_factory.mktemp("video_home")
    video(root / "youtube-cc" / "youtube-cc-kw-2fps" / "vidA_2fps.mp4")
    video(root / "MammalNet" / "trimmed_video-2fps" / "sora2-2fps" / "vidB_2fps.mp4")
    video(root / "youtube-cc" / "youtube-cc-exist" / "vidA" / "clip.mp4")
    video(root / "intern" / "batch_1" / "vidC.mp4")
    video(root / "video_track" / "MOSE" / "videos" / "train" / "c1.mp4", num_frames=12, fps=6)
    return root


def test_video_point(tmp_path, videos):
    common = {"video_source": "youtube", "category": "object", "question": "How many?", "annotator_unsure": False}
    rows = [
        {**common, "video_id": "vidA", "video_duration": 4.0, "clip_start": None, "clip_end": None, "label": "dogs",
         "count": 3, "points": [[{"x": 50.0, "y": 50.0}, {"x": 25.0, "y": 25.0}], [{"x": 100.0, "y": 0.0}]],
         "two_fps_timestamps": [0.5, 2.0]},
        {**common, "video_id": "vidA", "video_duration": 4.0, "clip_start": None, "clip_end": None, "label": "cats",
         "count": 0, "points": [], "two_fps_timestamps": []},
        {**common, "video_id": "sora2/vidB", "video_source": "MammalNet", "video_duration": 100.0, "clip_start": 0.7,
         "clip_end": 3.7, "label": "birds", "count": 1, "points": [[{"x": 50.0, "y": 50.0}]],
         "two_fps_timestamps": [1.5]},
        {**common, "video_id": "vidZ", "video_duration": 4.0, "clip_start": None, "clip_end": None, "label": "x",
         "count": 1, "points": [[{"x": 5.0, "y": 5.0}]], "two_fps_timestamps": [1.0]},
        {**common, "video_id": "vidA", "video_duration": 4.0, "clip_start": 0.0, "clip_end": 4.0, "label": "x",
         "count": 2, "points": [[{"x": 5.0, "y": 5.0}]], "two_fps_timestamps": [1.0]},
    ]
    parquet(tmp_path / "vp" / "object" / "train-00000-of-00001.parquet", rows)
    summary, exs = run("molmo2-video-point", tmp_path / "vp", tmp_path / "vp.jsonl", videos)
    assert len(exs) == 2 and len(summary.skipped) == 2
    a, b = exs
    assert a.media.kind == "video" and a.media.clip is None
    assert [(x.kind, x.label) for x in a.annotations] == [("counting", "dogs"), ("counting", "cats")]
    assert [(p.x, p.y, p.t) for p in a.annotations[0].points] == [(16, 12, 0.5), (32, 24, 0.5), (64, 0, 2.0)]
    assert a.annotations[1].points == []
    # 100 s video: the row's clip; 1.5 s -> floor((1.5 - 0.7) / 0.5) * 0.5 = 0.5 s into the clip
    assert b.media.clip == (0.7, 3.7) and b.annotations[0].points[0].t == pytest.approx(1.2)
    assert b.media.paths[0].endswith("MammalNet/trimmed_video-2fps/sora2-2fps/vidB_2fps.mp4")
    reasons = sorted(s.reason for s in summary.skipped)
    assert "not found" in reasons[1] and reasons[0] == "row 4 has count 2 but 1 points"


def test_video_qa_sets(tmp_path, videos):
    ama = [{"video_id": "vidA", "question": "What happens?", "answer": "Nothing."},
           {"video_id": "vidA", "question": "Why?", "answer": ""}]
    parquet(tmp_path / "ama" / "data" / "HumanQA-00000-of-00001.parquet", ama)
    _, exs = run("molmo2-ask-model-anything", tmp_path / "ama", tmp_path / "ama.jsonl", videos)
    assert [(a.kind, a.question) for a in exs[0].annotations] == [("qa", "What happens?")]
    assert exs[0].media.paths[0].endswith("youtube-cc-exist/vidA/clip.mp4")

    qa = [{"video_id": "vidA", "Question": "Colour?", "Answer": "grey", "NegativeAnswers": ["red", "blue", "green"],
           "Category": "color"}]
    parquet(tmp_path / "capqa" / "data" / "CapQA-00000-of-00001.parquet", qa)
    _, exs = run("molmo2-cap-qa", tmp_path / "capqa", tmp_path / "capqa.jsonl", videos / "youtube-cc")
    (ann,) = exs[0].annotations
    assert ann.answer == "grey" and sorted(ann.options) == ["blue", "green", "grey", "red"]
    assert ann.options == mc_options("vidA", "Colour?", "grey", ["red", "blue", "green"])  # deterministic

    sub = [{**qa[0], "subtitle": [{"start": 0.0, "end": 1.5, "text": "hello  there"}, {"start": 2.0, "end": 3.0,
                                                                                       "text": "bye"}]}]
    parquet(tmp_path / "subqa" / "data" / "SubtitleQA-00000-of-00001.parquet", sub)
    _, exs = run("molmo2-subtitle-qa", tmp_path / "subqa", tmp_path / "subqa.jsonl", videos)
    assert exs[0].annotations[0].question == "subtitle\n0.0 - 1.5 hello there\n2.0 - 3.0 bye\n\nColour?"
    assert exs[0].ground_truth["subtitles"] == [[0.0, 1.5, "hello  there"], [2.0, 3.0, "bye"]]


def test_molmo2_cap(tmp_path, videos):
    rows = [{"video_id": "vidC", "annotation_score": 4, "video_caption": "Short.", "merged_caption": "Merged.",
             "video_frame_merged_caption": "A long caption."},
            {"video_id": "vidC", "annotation_score": 2, "video_caption": "x", "merged_caption": "y",
             "video_frame_merged_caption": "z"}]
    parquet(tmp_path / "cap" / "train" / "train-00000-of-00001.parquet", rows)
    summary, exs = run("molmo2-cap", tmp_path / "cap", tmp_path / "cap.jsonl", videos)
    assert len(exs) == 1 and not summary.skipped  # score 2 < 3 is filtered, not an error
    long, short, merged = exs[0].annotations
    assert (long.kind, long.answer) == ("caption", "A long caption.")
    assert short.messages[1]["content"] == "Short." and merged.messages[0]["content"] == "video_merged_caption:"


def test_video_track_both_layouts(tmp_path, videos):
    instruction = {"id": "t1", "video": "orig", "clip": "c1", "video_dataset": "mose", "fps": 6, "start_frame": 0,
                   "end_frame": 11, "expression": "the dog", "width": 128, "height": 96, "sampling_fps": 2,
                   "mask_id": ["7", "9"],
                   "frame_trajectories": [
                       {"frame": 0, "time": 0.0, "points": [{"id": 7, "point": [64.0, 48.0], "occluded": False},
                                                            {"id": 9, "point": [10.0, 10.0], "occluded": True}]},
                       {"frame": 3, "time": 0.5, "points": [{"id": 7, "point": [32.0, 48.0], "occluded": False},
                                                            {"id": 9, "point": [20.0, 20.0], "occluded": False}]}]}
    parquet(tmp_path / "ti" / "track" / "train-00000-of-00001.parquet", [instruction])
    _, exs = run("molmo2-video-track", tmp_path / "ti", tmp_path / "ti.jsonl", videos)
    (ann,) = exs[0].annotations
    assert ann.kind == "tracking" and ann.label == "the dog" and exs[0].id == "molmo2-video-track/t1"
    # declared 128x96, clip is 64x48: points scaled by 1/2; the occluded point is left out
    assert [[(p.x, p.y, p.t) for p in t.points] for t in ann.tracks] == [[(32, 24, 0.0), (16, 24, 0.5)],
                                                                         [(10, 10, 0.5)]]
    raw = {"id": "r1", "video": "orig", "clip": "c1", "video_dataset": "mose", "exp": "the cat", "w": 64, "h": 48,
           "fps": 6, "mask_id": ["3"], "start_frame": 0, "end_frame": 11,
           "points": [{"object_id": "3", "points": [[1.0, 2.0], None, None, [4.0, 5.0], [6.0, 6.0], None]}]}
    bad = {**raw, "id": "r2", "video_dataset": "nowhere"}
    (tmp_path / "raw.jsonl").write_text(json.dumps(raw) + "\n" + json.dumps(bad) + "\n")
    summary, exs = run("molmo2-video-track", tmp_path / "raw.jsonl", tmp_path / "raw_out.jsonl", videos)
    assert [(p.x, p.y, p.t) for p in exs[0].annotations[0].tracks[0].points] == [(1, 2, 0.0), (4, 5, 0.5)]
    assert "unknown video_dataset 'nowhere'" in summary.skipped[0].reason


# ------------------------------------------------------------------------------- errors, CLI, training


def test_schema_mismatch_names_the_field(tmp_path, images):
    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps({"image_url": URLS[0], "label": "dog", "pts": []}) + "\n")
    with pytest.raises(AdapterError, match="no field 'points'.*is this a copy of pixmo-points"):
        run("pixmo-points", src, tmp_path / "o.jsonl", images)
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.jsonl.tmp").exists()
    with pytest.raises(AdapterError, match="unknown dataset adapter"):
        run("pixmo-pointz", src, tmp_path / "o.jsonl", images)
    with pytest.raises(AdapterError, match="needs --media-root"):
        video_src = tmp_path / "v.jsonl"
        video_src.write_text(json.dumps({"video_id": "a", "question": "q", "answer": "a"}) + "\n")
        run("molmo2-ask-model-anything", video_src, tmp_path / "o.jsonl", None)


def test_open_rows_layouts(tmp_path):
    rows = [{"a": 1}, {"a": 2}]
    save_to_disk(tmp_path / "dd", {"train": rows})
    assert list(open_rows(tmp_path / "dd")[1]) == rows
    assert list(open_rows(tmp_path / "dd" / "train")[1]) == rows  # a single saved Dataset
    with pytest.raises(AdapterError, match="splits"):
        open_rows(tmp_path / "dd", "test")
    with pytest.raises(AdapterError, match="no dataset files"):
        (tmp_path / "empty").mkdir()
        open_rows(tmp_path / "empty")


def test_cli(tmp_path, images, capsys):
    src = tmp_path / "count.jsonl"
    src.write_text("\n".join(json.dumps({"image_url": u, "label": "dogs", "count": 1, "points": [{"x": 5, "y": 5}]})
                             for u in URLS))
    out = tmp_path / "m" / "count.jsonl"
    assert main(["pixmo-count", str(src), str(out), "--media-root", str(images), "--limit", "3", "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "read 3 rows" in report and "wrote 3 examples, skipped 0" in report
    assert main(["pixmo-count", str(src), str(out), "--no-progress"]) == 1
    assert "--media-root" in capsys.readouterr().err


def test_adapters_registry_is_complete():
    assert set(ADAPTERS) == {
        "pixmo-points", "pixmo-count", "pixmo-cap", "pixmo-ask-model-anything", "pixmo-cap-qa",
        "molmo2-multi-image-qa", "molmo2-multi-image-point", "molmo2-video-point", "molmo2-cap",
        "molmo2-ask-model-anything", "molmo2-cap-qa", "molmo2-subtitle-qa", "molmo2-video-track"}


def test_manifests_feed_the_training_preparer(tmp_path, images, videos):
    """Converted examples of every media kind go through the Preparer of a tiny model."""
    from molmo2.checkpoint import read_config
    from molmo2.processing import Molmo2Processor
    from molmo2.train.data import DataSettings, Mixture, Preparer, Source

    for d in "abcdef":
        (tmp_path / d).mkdir()
    test_pixmo_points_parquet(tmp_path / "a", images)
    test_multi_image_qa_and_point(tmp_path / "b", images)
    test_video_point(tmp_path / "c", videos)
    test_video_qa_sets(tmp_path / "d", videos)
    test_video_track_both_layouts(tmp_path / "e", videos)
    test_pixmo_cap_ama_and_cap_qa(tmp_path / "f", images)
    manifests = [tmp_path / "a" / "out" / "points.jsonl", tmp_path / "b" / "miqa.jsonl",
                 tmp_path / "b" / "home" / "mp_out.jsonl", tmp_path / "c" / "vp.jsonl", tmp_path / "d" / "subqa.jsonl",
                 tmp_path / "e" / "ti.jsonl", tmp_path / "f" / "capqa_out.jsonl"]
    model = tiny_model_dir(tmp_path / "model")
    proc = Molmo2Processor.from_pretrained(model)
    mix = Mixture([Source(str(m)) for m in manifests], seed=0)
    prep = Preparer(proc, read_config(model), DataSettings(max_seq_len=4096, weighting="sft"), seed=0)
    kinds = set()
    for s, src in enumerate(mix.sources):
        for i, ex in enumerate(src.examples):
            item = prep((i, s, i), ex)
            assert item.num_tokens > 0 and item.tree.weights.sum() > 0
            kinds |= {a.kind for a in ex.annotations}
    assert kinds == {"pointing", "counting", "qa", "tracking"}
