"""``molmo2 eval`` end to end: a tiny random checkpoint on generated tiny-shapes images and videos,
writing predictions, metrics, per-item scores and the reports; a second run resumes (asks nothing)."""

from __future__ import annotations

import json

from inference.conftest import tiny_ckpt  # noqa: F401 (the shared tiny random checkpoint)

from molmo2.cli import main


def test_eval_cli_end_to_end_and_resume(tiny_ckpt, shapes_dir, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "eval"
    argv = ["eval", "--task", "tiny-shapes", "--model", str(tiny_ckpt), "--data", str(shapes_dir), "--limit", "8",
            "--out", str(out), "--max-new-tokens", "4", "--no-progress"]
    assert main(argv) == 0
    stdout, stderr = capsys.readouterr()
    assert "8 new predictions, 0 resumed" in stderr
    assert "| pointing/image |" in stdout and "| counting/video |" in stdout
    records = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["model"] == str(tiny_ckpt) and "grounding" in r for r in records)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_scored"] == 8 and metrics["task"] == "tiny-shapes"
    assert len((out / "scores.jsonl").read_text().splitlines()) == 8
    assert (out / "report.md").read_text() == stdout
    page = (out / "report.html").read_text()
    assert "<table>" in page and '<rect class="bar"' in page  # tables and plots
    assert page.count('<figure class="ex">') == 8 and page.count("data:image/jpeg;base64,") == 8  # every item drawn
    assert "frame not shown" not in page

    assert main(argv) == 0
    stdout2, stderr2 = capsys.readouterr()
    assert "0 new predictions, 8 resumed" in stderr2 and stdout2 == stdout


def test_eval_cli_reports_bad_input(tiny_ckpt, tmp_path, capsys):  # noqa: F811
    assert main(["eval", "--task", "nope", "--model", str(tiny_ckpt), "--data", str(tmp_path)]) == 2
    assert "unknown eval task" in capsys.readouterr().err


def test_eval_cli_compat_switch_rescores_the_same_predictions(tmp_path, capsys):
    """``--compat official`` reproduces the official VideoCountEval quirk ("There are none." never parses);
    the predictions file is complete, so the model is never loaded (``--model`` names no real model)."""
    from benchmark_fixtures import make_video_count

    from molmo2.eval.tasks import get_task

    data = make_video_count(tmp_path / "vc")
    items = get_task("molmo2-video-count").load(data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.jsonl").write_text("".join(
        json.dumps({"id": it.id, "text": "There are none.", "model": "m"}) + "\n" for it in items))
    argv = ["eval", "--task", "molmo2-video-count", "--model", "m", "--data", str(data), "--out", str(out),
            "--no-progress"]
    for compat, valid in ((None, 1.0), ("correct", 1.0), ("official", 0.0)):
        assert main(argv + (["--compat", compat] if compat else [])) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["groups"]["all"]["valid"] == valid and metrics["compat"] == (compat or "correct")
    assert "0 new predictions, 2 resumed" in capsys.readouterr().err
    assert main(["eval", "--task", "nextqa", "--model", "m", "--data", str(data), "--compat", "official"]) == 2
    assert "no official quirk" in capsys.readouterr().err
