"""``molmo2 demo`` and the shipped tiny-shapes model: the demo end to end, its files, bad input, a real
video no one here made, and (slow) the held-out scores the model card records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molmo2.cli import main
from molmo2.demo import SHIPPED_MODEL

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc


def test_shipped_model_is_small_and_complete():
    files = {p.name for p in SHIPPED_MODEL.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "preprocessor_config.json", "video_preprocessor_config.json", "README.md"} <= files
    size = sum(p.stat().st_size for p in SHIPPED_MODEL.iterdir())
    assert size <= 20 * 2**20, f"the shipped model is {size / 2**20:.1f} MB, over the 20 MB budget"
    from molmo2.checkpoint import load_model

    model = load_model(SHIPPED_MODEL)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    from molmo2.checkpoint import resolve_model_dir

    assert resolve_model_dir("tiny-shapes") == SHIPPED_MODEL  # by name, from any directory


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "demo.json").read_text())
    kinds = {q["kind"] for q in report["questions"]}
    assert kinds == {"pointing", "counting", "tracking"}
    for q in report["questions"]:
        assert q["score"] is not None and q["text"] in printed
        assert set(q["grounding"]) >= {"points", "tracks", "count"}
    # the clip is new: generated here, with ground truth, from a stream no training example uses
    assert (out / "clip" / "demo.jsonl").is_file() and list((out / "clip" / "gt").glob("*.npz"))
    for name in ("demo.mp4", "demo.html", "frame.png"):
        assert (out / name).stat().st_size > 1000, name
    from PIL import Image

    assert Image.open(out / "frame.png").size == (224, 224)
    assert "F1" in printed and "truth" in printed


def test_demo_bad_video_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    assert main(["demo", "--video", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "Traceback" not in err
    assert main(["demo", "--video", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.skipif(not (OPENCV_SAMPLES / "vtest.avi").is_file(),
                    reason="Debian's opencv-doc sample videos are not installed (apt-get install opencv-doc)")
@pytest.mark.parametrize("name", ["vtest.avi", "Megamind_bugy.avi"])
def test_demo_runs_on_real_videos(tmp_path, name):
    """Footage no one here made (a street scene; a deliberately damaged file): answers, no crash."""
    assert main(["demo", "--video", str(OPENCV_SAMPLES / name), "--label", "people", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    report = json.loads((tmp_path / "demo.json").read_text())
    assert len(report["questions"]) == 3 and all(q["score"] is None for q in report["questions"])
    assert (tmp_path / "demo.mp4").stat().st_size > 1000


# Held-out scores on a smaller sample than the model card's (fixed seeds, never in training); the
# thresholds sit a little under the card's numbers, so a regression in model, processing or grounding
# shows here.
SLOW_FLOORS = {"pointing/image": 0.6, "counting/image": 0.55, "pointing/video": 0.5, "counting/video": 0.7,
               "tracking/video": 0.5}  # measured on these samples: 0.75, 0.78, 0.64, 0.84, 0.63


@pytest.mark.slow
@pytest.mark.parametrize("preset,seed,kinds", [("images", 999, ("pointing", "counting")),
                                               ("video", 998, ("pointing", "counting", "tracking"))])
def test_shipped_model_held_out_scores(tmp_path, preset, seed, kinds):
    from molmo2.data import shapes
    from molmo2.eval.runner import evaluate

    shapes.generate_dataset(tmp_path / "data", 25, shapes.preset(preset, image_size=112, seed=seed), kinds=kinds,
                            progress=False)
    result = evaluate("tiny-shapes", SHIPPED_MODEL, tmp_path / "data", progress=False)
    got = {group: h["value"] for group, h in result.metrics["headline"].items()}
    print(got)
    assert set(got) == {g for g in SLOW_FLOORS if g.split("/")[0] in kinds and g.endswith(preset[:5])}
    for group, value in got.items():
        assert value >= SLOW_FLOORS[group], (group, value)
