"""``molmo2 eval --endpoint URL``: the same tiny checkpoint evaluated here (``--model``) and through our
HTTP server (``molmo2 serve``'s app on a local port, asked by ``molmo2.serve.client.RemoteModel``) gives
the same predictions and therefore the same numbers: tiny-shapes (the point/count/track verbs, images and
videos) and a benchmark adapter that asks free-form questions about videos (PerceptionTest)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from benchmark_fixtures import make_perception_test  # noqa: E402
from inference.conftest import tiny_ckpt  # noqa: E402, F401 (the shared tiny random checkpoint)
from serve.helpers import live_server  # noqa: E402

from molmo2.cli import main  # noqa: E402

KEY = "eval-key"


@pytest.fixture(scope="module")
def url(tiny_ckpt):  # noqa: F811
    from molmo2.inference import Molmo2
    from molmo2.serve import ChatHandler, ServeLimits, build_app

    handler = ChatHandler(Molmo2.from_pretrained(tiny_ckpt), "tiny", ServeLimits())
    with live_server(build_app(handler, api_key=KEY)) as u:
        yield u


def _run(argv, capsys):
    assert main(argv) == 0
    return capsys.readouterr()


@pytest.mark.parametrize("task", ["tiny-shapes", "perception-test"])
def test_endpoint_gives_the_local_numbers(task, url, tiny_ckpt, shapes_dir, tmp_path, capsys):  # noqa: F811
    data = shapes_dir if task == "tiny-shapes" else make_perception_test(tmp_path / "pt")
    common = ["eval", "--task", task, "--data", str(data), "--limit", "6", "--max-new-tokens", "6", "--no-progress"]
    local = _run([*common, "--model", str(tiny_ckpt), "--out", str(tmp_path / "local")], capsys)
    remote = _run([*common, "--endpoint", url, "--api-key", KEY, "--out", str(tmp_path / "remote")], capsys)
    assert "new predictions" in remote.err

    def records(side):
        return [json.loads(x) for x in (tmp_path / side / "predictions.jsonl").read_text().splitlines()]

    loc, rem = records("local"), records("remote")
    assert [r["id"] for r in loc] == [r["id"] for r in rem] and len(loc) >= 2
    assert [r["text"] for r in loc] == [r["text"] for r in rem]
    assert [r["grounding"] for r in loc] == [r["grounding"] for r in rem]
    assert rem[0]["model"] == f"{url} (tiny)"
    metrics = [json.loads((tmp_path / side / "metrics.json").read_text()) for side in ("local", "remote")]
    assert metrics[0]["groups"] == metrics[1]["groups"] and metrics[0]["num_scored"] == len(loc)
    assert local.out == remote.out.replace(f"{url} (tiny)", str(tiny_ckpt))  # the same report


def test_endpoint_errors_are_clear(url, shapes_dir, tmp_path, capsys):
    argv = ["eval", "--task", "tiny-shapes", "--data", str(shapes_dir), "--limit", "1", "--no-progress",
            "--out", str(tmp_path / "o"), "--endpoint", url, "--api-key", "wrong"]
    assert main(argv) != 0
    assert "401" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --model and --endpoint are exclusive
        main(["eval", "--task", "tiny-shapes", "--data", ".", "--model", "m", "--endpoint", url])
