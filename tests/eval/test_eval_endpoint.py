"""``molmo2 eval --endpoint URL``: the same checkpoint evaluated here (``--model``) and through our HTTP
server (``molmo2 serve``'s app on a local port, asked by ``molmo2.serve.client.RemoteModel``) gives the
same predictions and therefore the same numbers: tiny-shapes (the point/count/track verbs, images and
videos) with a tiny random checkpoint and with the shipped, trained tiny-shapes model (non-zero scores),
a benchmark adapter that asks free-form questions about videos (PerceptionTest), and one that asks about
a clip of a video (VideoCountEval: the clip travels as the request field ``clip``)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from benchmark_fixtures import make_perception_test, make_video_count  # noqa: E402
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


def _video_count_with_clips(root):
    """VideoCountEval's tiny copy, its first question about the clip 0.5-1.5 s of a 1.5 s video."""
    make_video_count(root)
    path = root / "Molmo2-VideoCountEval" / "val.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["clip_start"] = 0.5
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _compare(task, data, model, model_name, url, tmp_path, capsys, extra=("--max-new-tokens", "6")):
    common = ["eval", "--task", task, "--data", str(data), "--limit", "6", *extra, "--no-progress"]
    local = _run([*common, "--model", str(model), "--out", str(tmp_path / "local")], capsys)
    remote = _run([*common, "--endpoint", url, "--api-key", KEY, "--out", str(tmp_path / "remote")], capsys)
    assert "new predictions" in remote.err

    def records(side):
        return [json.loads(x) for x in (tmp_path / side / "predictions.jsonl").read_text().splitlines()]

    loc, rem = records("local"), records("remote")
    assert [r["id"] for r in loc] == [r["id"] for r in rem] and len(loc) >= 2
    assert [r["text"] for r in loc] == [r["text"] for r in rem]
    assert [r["grounding"] for r in loc] == [r["grounding"] for r in rem]
    assert rem[0]["model"] == f"{url} ({model_name})"
    metrics = [json.loads((tmp_path / side / "metrics.json").read_text()) for side in ("local", "remote")]
    assert metrics[0]["groups"] == metrics[1]["groups"] and metrics[0]["num_scored"] == len(loc)
    assert local.out == remote.out.replace(f"{url} ({model_name})", str(model))  # the same report
    return metrics[0]


@pytest.mark.parametrize("task", ["tiny-shapes", "perception-test", "molmo2-video-count"])
def test_endpoint_gives_the_local_numbers(task, url, tiny_ckpt, shapes_dir, tmp_path, capsys):  # noqa: F811
    data = {"tiny-shapes": lambda: shapes_dir, "perception-test": lambda: make_perception_test(tmp_path / "pt"),
            "molmo2-video-count": lambda: _video_count_with_clips(tmp_path / "vc")}[task]()
    _compare(task, data, tiny_ckpt, "tiny", url, tmp_path, capsys)


def test_the_shipped_tiny_shapes_model_gives_the_same_numbers_here_and_served(tmp_path, capsys):
    from molmo2.data.shapes import ShapesConfig, generate_dataset
    from molmo2.inference import Molmo2
    from molmo2.serve import ChatHandler, ServeLimits, build_app

    data = tmp_path / "data"
    generate_dataset(data, 3, ShapesConfig(seed=11, media="mixed"), kinds=["pointing", "counting", "tracking"],
                     progress=False)
    handler = ChatHandler(Molmo2.from_pretrained("tiny-shapes"), "tiny-shapes", ServeLimits())
    with live_server(build_app(handler, api_key=KEY)) as shipped_url:
        metrics = _compare("tiny-shapes", data, "tiny-shapes", "tiny-shapes", shipped_url, tmp_path, capsys,
                           extra=())
    assert metrics["num_scored"] == 6 and max(h["value"] for h in metrics["headline"].values()) > 0  # it finds things


def test_endpoint_errors_are_clear(url, shapes_dir, tmp_path, capsys):
    argv = ["eval", "--task", "tiny-shapes", "--data", str(shapes_dir), "--limit", "1", "--no-progress",
            "--out", str(tmp_path / "o"), "--endpoint", url, "--api-key", "wrong"]
    assert main(argv) != 0
    assert "401" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --model and --endpoint are exclusive
        main(["eval", "--task", "tiny-shapes", "--data", ".", "--model", "m", "--endpoint", url])
