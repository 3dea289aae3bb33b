"""The eval runner: predictions appended as they come, and a killed run resumed without asking the
model again about the items already in the predictions file (counted with a fake pipeline)."""

from __future__ import annotations

import json

import pytest

from molmo2.errors import Molmo2Error
from molmo2.eval.runner import evaluate, read_predictions, score_predictions
from molmo2.eval.tasks.tiny_shapes import load_items
from molmo2.grounding import format_points, format_tracks, parse


class Killed(Exception):
    pass


class FakePipeline:
    """Answers from the ground truth (by media and query), counts its calls, dies after ``die_after``."""

    def __init__(self, items, die_after=None):
        self.by_query = {(str(it.media), it.kind, it.label): it for it in items}
        self.calls, self.die_after = 0, die_after

    def _answer(self, kind, media, query, **options):
        if self.die_after is not None and self.calls >= self.die_after:
            raise Killed
        self.calls += 1
        it = self.by_query[(str(media), kind, query)]
        text = (format_tracks(it.tracks, it.size, it.label) if kind == "tracking"
                else format_points(it.points, it.size, it.label, mode="point_then_count"))

        class Answer:
            pass

        a = Answer()
        a.text, a.grounding, a.finish_reason = text, parse(text, it.size, video=it.medium == "video"), "stop"
        return a

    def point(self, media, query, **o):
        return self._answer("pointing", media, query, **o)

    def count(self, media, query, **o):
        return self._answer("counting", media, query, **o)

    def track(self, media, query, **o):
        return self._answer("tracking", media, query, **o)


def test_killed_run_resumes_where_it_stopped(shapes_dir, tmp_path):
    items = load_items(shapes_dir, limit=12)
    preds = tmp_path / "out" / "predictions.jsonl"
    with pytest.raises(Killed):
        evaluate("tiny-shapes", FakePipeline(items, die_after=5), shapes_dir, limit=12, predictions_path=preds,
                 model_name="m", progress=False)
    assert len(preds.read_text().splitlines()) == 5  # every answer was on disk before the kill
    with preds.open("a") as f:  # a kill in the middle of a write leaves half a line
        f.write('{"id": "half a reco')
    pipe = FakePipeline(items)
    seen = []
    result = evaluate("tiny-shapes", pipe, shapes_dir, limit=12, predictions_path=preds, model_name="m",
                      progress=lambda done, total: seen.append((done, total)))
    assert pipe.calls == 7 and (result.num_new, result.num_resumed) == (7, 5)
    assert seen[0] == (6, 12) and seen[-1] == (12, 12)
    lines = preds.read_text().splitlines()
    assert len(lines) == 12 and [json.loads(x)["id"] for x in lines] == [it.id for it in items]
    assert result.metrics["num_scored"] == 12 and len(result.per_item) == 12
    assert all(h["value"] == pytest.approx(1.0) for h in result.metrics["headline"].values())

    again = FakePipeline(items)
    rerun = evaluate("tiny-shapes", again, shapes_dir, limit=12, predictions_path=preds, model_name="m",
                     progress=False)
    assert again.calls == 0 and rerun.metrics["groups"] == result.metrics["groups"]
    more = FakePipeline(load_items(shapes_dir))
    bigger = evaluate("tiny-shapes", more, shapes_dir, predictions_path=preds, model_name="m", progress=False)
    assert more.calls == len(load_items(shapes_dir)) - 12 and bigger.num_resumed == 12


def test_other_model_and_corrupt_file_are_refused(shapes_dir, tmp_path):
    items = load_items(shapes_dir, limit=2)
    preds = tmp_path / "predictions.jsonl"
    evaluate("tiny-shapes", FakePipeline(items), shapes_dir, limit=2, predictions_path=preds, model_name="a",
             progress=False)
    with pytest.raises(Molmo2Error, match="holds predictions of"):
        evaluate("tiny-shapes", FakePipeline(items), shapes_dir, limit=2, predictions_path=preds, model_name="b",
                 progress=False)
    assert len(read_predictions(preds)) == 2
    assert score_predictions("tiny-shapes", shapes_dir, preds).metrics["num_scored"] == 2
    preds.write_text("not json\n")
    with pytest.raises(Molmo2Error, match="not a JSON line"):
        read_predictions(preds)
    with pytest.raises(Molmo2Error, match="Molmo2 pipeline"):
        evaluate("tiny-shapes", object(), shapes_dir, limit=2, progress=False)


CHILD = """
import sys, time
from molmo2.eval.runner import evaluate
from molmo2.grounding import parse

class Slow:  # answers at once, then hangs on the fourth question until it is killed
    calls = 0
    def _answer(self, media, query, **options):
        Slow.calls += 1
        if Slow.calls > 3:
            time.sleep(600)
        class A: pass
        a = A()
        a.text, a.finish_reason = "There are none.", "stop"
        a.grounding = parse(a.text, (56, 56), video=False)
        return a
    point = count = track = _answer

evaluate("tiny-shapes", Slow(), sys.argv[1], limit=12, predictions_path=sys.argv[2], model_name="m", progress=False)
"""


def test_a_process_killed_with_sigkill_resumes(shapes_dir, tmp_path):
    """A real ``kill -9`` of a running eval: the answers written before it survive, the rest are asked."""
    import os
    import signal
    import subprocess
    import sys
    import time

    preds = tmp_path / "predictions.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(shapes_dir), str(preds)])
    try:
        deadline = time.monotonic() + 120
        while not (preds.exists() and len(preds.read_text().splitlines()) >= 3):
            assert child.poll() is None and time.monotonic() < deadline, "the child stopped before 3 answers"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    items = load_items(shapes_dir, limit=12)
    assert [json.loads(x)["id"] for x in preds.read_text().splitlines()] == [it.id for it in items[:3]]
    pipe = FakePipeline(items)
    result = evaluate("tiny-shapes", pipe, shapes_dir, limit=12, predictions_path=preds, model_name="m",
                      progress=False)
    assert pipe.calls == 9 and (result.num_new, result.num_resumed) == (9, 3)
    assert [json.loads(x)["id"] for x in preds.read_text().splitlines()] == [it.id for it in items]
    assert result.metrics["num_scored"] == 12
