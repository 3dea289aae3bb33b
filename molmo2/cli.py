"""The ``molmo2`` command: one entry point, a table of subcommands, heavy imports inside each handler.

Subcommands (``SUBCOMMANDS`` below; each adds its parser and handler):

* ``ask | point | count | track | caption MEDIA... ["text"]``: the ``Molmo2`` pipeline's verbs. Prints the
  answer (``--json``: the ``GroundingResult`` as JSON, schema in ``molmo2.grounding.types``); ``--out DIR``
  writes ``answer.json`` (the full ``Answer``), ``result.json`` (the ``GroundingResult``), the annotated
  media and the HTML viewer (``molmo2.viz``). Video options: ``--max-frames``, ``--max-fps``,
  ``--clip A:B``, ``--windows LENGTH:OVERLAP`` (long videos), ``--slowfast K``, ``--subtitles FILE``.
  Progress bars (loading, decoding, encoding, generating)
  go to stderr when it is a terminal. ``--endpoint URL [--api-key K]`` asks an OpenAI-compatible server
  (``molmo2 serve`` or vLLM) instead, through ``molmo2.serve.client`` (same answers and outputs).
* ``generate``: low-level, media + prompt -> answer text.
* ``eval --task T --model M|--endpoint URL --data D [--limit N] [--out DIR]``: run an eval task
  (``molmo2.eval.runner``) with the model here or against an OpenAI-compatible server (``--api-key K``):
  ``DIR/predictions.jsonl`` (appended as it goes; a rerun resumes), ``metrics.json``, ``scores.jsonl``
  (per item), ``report.md`` and ``report.html``; prints the Markdown report. ``--compat official`` scores
  with the official code's quirks (a rerun with the same ``--out`` rescores without asking the model).
* ``serve --model M [--host H] [--port P] [--api-key K] [--media-dir DIR] [--max-concurrency N]
  [--max-batch N] [--no-remote-media]``: an OpenAI-compatible chat-completions server (``molmo2.serve``;
  needs the ``serve`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from molmo2.errors import Molmo2Error

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


def _generate(args: argparse.Namespace) -> int:
    import torch

    from molmo2.checkpoint import load_model, resolve_model_dir
    from molmo2.inference import SamplingParams, generate
    from molmo2.model import VisualInputs
    from molmo2.processing import Molmo2Processor

    if args.image and args.video:
        raise Molmo2Error("pass images or one video, not both")
    model_dir = resolve_model_dir(args.model)
    processor = Molmo2Processor.from_pretrained(model_dir)
    content: list[dict] = [{"type": "image"} for _ in args.image]
    frames = timestamps = None
    if args.video:
        from molmo2.processing.video import load_video

        video = load_video(args.video, max_frames=args.max_frames or processor.video.max_frames,
                           max_fps=processor.video.max_fps)
        frames, timestamps = video.frames, video.timestamps
        content.append({"type": "video"})
    content.append({"type": "text", "text": args.prompt})
    prompt = processor.render([{"role": "user", "content": content}])
    enc = processor.encode(prompt, args.image, video_frames=frames, timestamps=timestamps)

    model = load_model(model_dir, dtype=getattr(torch, DTYPES[args.dtype]), device=args.device, decode_layout=True)
    visual = VisualInputs(enc.pixel_values, enc.pooling) if enc.pixel_values is not None else None
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_p=args.top_p, top_k=args.top_k, seed=args.seed)
    out = generate(model, enc.input_ids[None], visual=visual, params=params,
                   eos_token_id=processor.tokenizer.eos_id, pad_token_id=processor.tokenizer.pad_id)[0]
    print(processor.decode(out.token_ids).strip())
    return 0


VERBS = {
    # verb: (help, takes text, text metavar)
    "ask": ("answer a question about images or a video", True, "QUESTION"),
    "point": ("point to objects: pixel coordinates (per frame time for a video)", True, "QUERY"),
    "count": ("count objects, with the points as evidence", True, "QUERY"),
    "track": ("track objects through a video", True, "QUERY"),
    "caption": ("describe images or a video", False, None),
}


class _Bars:
    """tqdm bars per pipeline stage (``progress(stage, done, total)``), on stderr."""

    LABELS = {"load": "loading weights", "decode": "decoding media", "encode": "encoding frames",
              "generate": "generating"}

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None or (done == 0 and bar.n > 0):
            if bar is not None:
                bar.close()
            unit = {"load": "tensor", "decode": "step", "encode": "crop", "generate": "tok"}.get(stage, "it")
            bar = self.bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage), unit=unit,
                                          file=sys.stderr, leave=False, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self.bars[stage]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def _verb(args: argparse.Namespace) -> int:
    from molmo2.inference.media import media_kind

    media_args = list(args.media)
    media: object = media_args[0] if len(media_args) == 1 else media_args
    kinds = [media_kind(m) for m in media_args]  # checks every file before the model is loaded
    if len(media_args) > 1 and set(kinds) != {"image"}:
        raise Molmo2Error("several media make an image set: pass images only, or one video")
    if args.endpoint:
        answer = _remote_verb(args, media)
    else:
        answer = _local_verb(args, media)
    result = answer.grounding.to_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(answer.text)
        if args.command == "count":
            print(f"count: {answer.count} ({len(answer.points)} points)", file=sys.stderr)
    if args.slowfast is not None:
        print(f"visual tokens: {answer.media.num_visual_tokens} (slowfast {args.slowfast})", file=sys.stderr)
    if args.out:
        _write_out(Path(args.out), media, answer)
    return 0


def _remote_verb(args: argparse.Namespace, media: object):
    """The verb against an OpenAI-compatible server (``molmo2.serve.client``): same answer types."""
    import os

    from molmo2.serve.client import RemoteModel

    local_only = [f"--{k}" for k in ("windows", "slowfast", "subtitles") if getattr(args, k) is not None]
    if local_only:
        raise Molmo2Error(f"{', '.join(local_only)} need(s) the model here; the server at --endpoint samples the "
                          "video itself (use --max-frames / --max-fps / --clip, or drop --endpoint)")
    options = {k: v for k, v in {"max_new_tokens": args.max_new_tokens, "max_frames": args.max_frames,
                                 "max_fps": args.max_fps, "clip": args.clip}.items() if v is not None}
    text_args = [args.text] if VERBS[args.command][1] else []
    with RemoteModel(args.endpoint, model=args.model, api_key=args.api_key or os.environ.get("MOLMO2_API_KEY"),
                     timeout=args.timeout) as remote:
        return getattr(remote, args.command)(media, *text_args, **options)


def _local_verb(args: argparse.Namespace, media: object):
    from molmo2.inference.pipeline import DEFAULT_MODEL, Molmo2

    bars = _Bars(enabled=not args.no_progress and sys.stderr.isatty())
    try:
        pipe = Molmo2.from_pretrained(args.model or DEFAULT_MODEL, device=args.device, dtype=DTYPES[args.dtype],
                                      cache_size=1, progress=bars)
        options: dict = {"max_new_tokens": args.max_new_tokens, "max_frames": args.max_frames,
                         "max_fps": args.max_fps, "clip": args.clip, "subtitles": args.subtitles,
                         "windows": args.windows}
        if args.slowfast is not None:
            options["slowfast"] = args.slowfast
        options = {k: v for k, v in options.items() if v is not None}
        text_args = [args.text] if VERBS[args.command][1] else []
        return getattr(pipe, args.command)(media, *text_args, **options)
    finally:
        bars.close()


def _write_out(out: Path, media: object, answer) -> None:
    """answer.json, result.json, and (with molmo2.viz) the annotated media and the viewer."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "answer.json").write_text(json.dumps(answer.to_dict(), indent=2) + "\n")
    (out / "result.json").write_text(json.dumps(answer.grounding.to_dict(), indent=2) + "\n")
    try:
        from molmo2 import viz
    except ImportError as e:  # the viz package is optional here; the JSON is the result
        print(f"molmo2: wrote {out}/answer.json; no annotated media ({e})", file=sys.stderr)
        return
    kind = answer.media.kind
    interval = None
    ts = answer.media.timestamps
    if ts and len(ts) > 1:
        interval = (ts[-1] - ts[0]) / (len(ts) - 1)
    if kind == "video" and not isinstance(media, (str, Path)):
        print(f"molmo2: wrote {out}/answer.json; annotated media only for video files", file=sys.stderr)
        return
    render, write_viewer = getattr(viz, "render", None), getattr(viz, "write_viewer", None)
    if render is not None:
        render(media, answer.grounding, out / ("annotated.mp4" if kind == "video" else "annotated.png"),
               interval=interval)
    if write_viewer is not None:
        write_viewer(out / "viewer.html", media, answer.grounding, interval=interval)


def _clip(value: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in value.replace(",", ":").split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes two numbers of seconds A:B (e.g. 10:25.5), got {value!r}") from None
    return a, b


def _add_verb(sub, verb: str) -> None:
    help_text, takes_text, metavar = VERBS[verb]
    p = sub.add_parser(verb, help=help_text, description=help_text)
    p.add_argument("media", nargs="+" if verb != "track" else 1, metavar="VIDEO" if verb == "track" else "MEDIA",
                   help="image file(s) (several make an image set) or one video file")
    if takes_text:
        p.add_argument("text", metavar=metavar)
    p.add_argument("--model", help="model directory or Hugging Face repo id (default: allenai/Molmo2-4B); "
                                    "with --endpoint: the model id to ask for (default: the server's first)")
    p.add_argument("--endpoint", metavar="URL",
                   help="ask an OpenAI-compatible server (molmo2 serve, vLLM) instead of loading the model here")
    p.add_argument("--api-key", help="with --endpoint: the server's API key (or set MOLMO2_API_KEY)")
    p.add_argument("--timeout", type=float, default=600.0, help="with --endpoint: seconds per request")
    p.add_argument("--out", help="directory for answer.json, result.json, the annotated media and viewer.html")
    p.add_argument("--json", action="store_true", help="print the GroundingResult as JSON instead of the text")
    p.add_argument("--max-frames", type=int, help="most video frames to sample (default: the model's, 384)")
    p.add_argument("--max-fps", type=float, help="most frames per second to sample (default: the model's, 2)")
    p.add_argument("--clip", type=_clip, metavar="START:END", help="only this part of the video (seconds)")
    p.add_argument("--windows", type=_clip, metavar="LENGTH:OVERLAP",
                   help="point/count/track on a long video in overlapping windows (seconds), merged")
    p.add_argument("--slowfast", type=int, metavar="K",
                   help="long videos: full detail on every K-th frame, coarser pooling on the frames between")
    p.add_argument("--subtitles", metavar="FILE",
                   help="subtitles for a video: an .srt/.vtt file, or 'embedded' for the video's own stream")
    p.add_argument("--max-new-tokens", type=int, help="answer length limit (default: per task)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=_verb)


def _add_generate(sub) -> None:
    g = sub.add_parser("generate", help="low level: answer a prompt about images or a video (greedy by default)")
    g.add_argument("--model", required=True, help="model directory or Hugging Face repo id")
    g.add_argument("--image", action="append", default=[], help="image file (repeat for an image set)")
    g.add_argument("--video", help="video file")
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=int, default=448)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int)
    g.add_argument("--max-frames", type=int, help="most video frames to sample (default: the model's)")
    g.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    g.add_argument("--device", default="cpu")
    g.set_defaults(handler=_generate)


def _train(args: argparse.Namespace) -> int:
    from molmo2.train import parallel
    from molmo2.train.launch import run

    run(args.recipe, args.sets, dry_run=args.dry_run, run_dir=args.run_dir)
    parallel.shutdown()  # on success; after an error torchrun stops the other ranks
    return 0


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train with a recipe (under torchrun for several GPUs/processes)")
    t.add_argument("--recipe", required=True, help="debug-cpu, tiny-shapes, {pretrain,sft,long-sft}-{4b,8b,o-7b}")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="typed override, e.g. optim.lr.llm=1e-5 or phase2.steps=100 (repeatable)")
    t.add_argument("--run-dir", help="where checkpoints, logs and the final model go")
    t.add_argument("--dry-run", action="store_true", help="print the plan (steps, tokens, memory) and exit")
    t.set_defaults(handler=_train)


def _eval(args: argparse.Namespace) -> int:
    from molmo2.eval.report import markdown_report, write_reports
    from molmo2.eval.runner import evaluate
    from molmo2.eval.tasks import get_task

    out = Path(args.out or f"eval-{args.task}")
    task = get_task(args.task)
    if args.prompt_seed is not None:
        if not hasattr(task, "prompt_seed"):
            raise Molmo2Error(f"--prompt-seed: task {args.task!r} asks one fixed prompt per item (the official eval's)")
        task.prompt_seed = args.prompt_seed
    if args.compat is not None:
        if not hasattr(task, "compat"):
            raise Molmo2Error(f"--compat: task {args.task!r} has no official quirk to reproduce (the tasks with one: "
                              "molmo2-video-count, molmo2-video-track and the referring-VOS tasks)")
        task.compat = args.compat
    options = {"max_new_tokens": args.max_new_tokens, "max_frames": args.max_frames}
    options = {k: v for k, v in options.items() if v is not None}
    run = dict(limit=args.limit, predictions_path=out / "predictions.jsonl",
               progress=not args.no_progress and sys.stderr.isatty())
    if args.endpoint:
        import os

        from molmo2.serve.client import RemoteModel

        with RemoteModel(args.endpoint, api_key=args.api_key or os.environ.get("MOLMO2_API_KEY"),
                         timeout=args.timeout) as remote:
            result = evaluate(task, remote, args.data, model_name=f"{args.endpoint} ({remote.model})", **run,
                              **options)
    else:
        result = evaluate(task, args.model, args.data, device=args.device, dtype=DTYPES[args.dtype], **run,
                          **options)
    if hasattr(task, "compat"):
        result.metrics["compat"] = task.compat
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
    with (out / "scores.jsonl").open("w") as f:
        f.writelines(json.dumps(s) + "\n" for s in result.per_item)
    write_reports(out, result.metrics, per_item=result.per_item, examples=result.examples)
    print(markdown_report(result.metrics), end="")
    print(f"molmo2 eval: {result.num_new} new predictions, {result.num_resumed} resumed; wrote {out}/",
          file=sys.stderr)
    return 0


def _eval_tasks() -> list[str]:
    from molmo2.eval.tasks import TASKS  # a table of names; the adapters import on use

    return sorted(TASKS)


def _add_eval(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a model on a task: predictions (resumable), metrics and a report")
    e.add_argument("--task", required=True, help="the task: " + ", ".join(_eval_tasks()))
    where = e.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="model directory or Hugging Face repo id (the model runs here)")
    where.add_argument("--endpoint", metavar="URL",
                       help="an OpenAI-compatible server to ask instead (molmo2 serve, vLLM), e.g. http://host:8000")
    e.add_argument("--api-key", help="with --endpoint: the server's API key (or set MOLMO2_API_KEY)")
    e.add_argument("--timeout", type=float, default=600.0, help="with --endpoint: seconds per request")
    e.add_argument("--data", required=True, help="the task's data folder (its layout: the task's docstring, "
                                                 "molmo2.eval.tasks) or, for tiny-shapes, a manifest")
    e.add_argument("--limit", type=int, help="evaluate the first N items only")
    e.add_argument("--out", help="output folder (default: eval-TASK); a rerun with the same folder resumes")
    e.add_argument("--max-new-tokens", type=int, help="answer length limit (default: per task)")
    e.add_argument("--max-frames", type=int, help="most video frames to sample (default: the model's)")
    e.add_argument("--prompt-seed", type=int, help="draw each item's prompt from the official templates, seeded by "
                                                   "this and the item id (default: the first template)")
    e.add_argument("--compat", choices=["correct", "official"],
                   help="score as the official code does, quirks included ('official': VideoCountEval's 'none' "
                        "regex that never matches, the tracking evals' absent-object mask lookup) or with them "
                        "fixed ('correct', the default)")
    e.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    e.add_argument("--device", default="cpu")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(handler=_eval)


def _demo(args: argparse.Namespace) -> int:
    from molmo2 import demo

    bars = _Bars(enabled=not args.no_progress and sys.stderr.isatty())
    try:
        demo.run(args.model, args.out, seed=args.seed, video=args.video, label=args.label, device=args.device,
                 dtype=DTYPES[args.dtype], progress=bars)
    finally:
        bars.close()
    return 0


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", help="the shipped tiny-shapes model points, counts and tracks on a held-out clip")
    d.add_argument("--model", help="model directory (default: the shipped tiny-shapes model)")
    d.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    d.add_argument("--seed", type=int, default=0, help="which held-out clip to generate")
    d.add_argument("--video", help="ask about this video instead (no ground truth, so no scores)")
    d.add_argument("--label", default="shapes", help="what to point at, count and track with --video")
    d.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    d.add_argument("--device", default="cpu")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    import os

    try:
        from molmo2.serve import ServeLimits, serve
    except ImportError as e:
        raise Molmo2Error(f"molmo2 serve needs its extra ({e}): pip install 'molmo2[serve]'") from None
    if args.max_concurrency < 1:
        raise Molmo2Error(f"--max-concurrency must be at least 1, got {args.max_concurrency}")
    if args.max_batch < 1:
        raise Molmo2Error(f"--max-batch must be at least 1 (1: no batching), got {args.max_batch}")
    if not args.media_fetch_timeout > 0:
        raise Molmo2Error(f"--media-fetch-timeout must be a positive number of seconds, got {args.media_fetch_timeout}")
    if args.media_dir is not None and not Path(args.media_dir).is_dir():
        raise Molmo2Error(f"--media-dir {args.media_dir} is not a directory")
    limits = ServeLimits(max_concurrency=args.max_concurrency, request_timeout=args.request_timeout,
                         media_dir=args.media_dir, max_frames=args.max_frames,
                         max_video_seconds=args.max_video_seconds, max_body_bytes=int(args.max_body_mb * (1 << 20)),
                         max_batch=args.max_batch, remote_media=not args.no_remote_media,
                         allow_private_urls=args.allow_private_media_urls, fetch_timeout=args.media_fetch_timeout)
    serve(args.model, host=args.host, port=args.port, api_key=args.api_key or os.environ.get("MOLMO2_API_KEY"),
          served_model_name=args.served_model_name, device=args.device, dtype=DTYPES[args.dtype], limits=limits)
    return 0


def _add_serve(sub) -> None:
    s = sub.add_parser("serve", help="serve a model over an OpenAI-compatible chat completions API")
    s.add_argument("--model", required=True, help="model directory or Hugging Face repo id")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1 routes (or set MOLMO2_API_KEY)")
    s.add_argument("--served-model-name", help="the model id clients send and /v1/models lists (default: --model)")
    s.add_argument("--media-dir", help="the directory requests may name files in (default: data: URLs only)")
    s.add_argument("--max-concurrency", type=int, default=4,
                   help="requests admitted at once, running or queued (more get 503; default 4)")
    s.add_argument("--max-batch", type=int, default=8,
                   help="most queued requests answered by one batched model call (greedy, text or images; "
                        "1: one at a time; default 8)")
    s.add_argument("--request-timeout", type=float, default=600.0, help="seconds before a request is cancelled")
    s.add_argument("--no-remote-media", action="store_true",
                   help="refuse http(s) media URLs (default: fetch them, at most --max-body-mb per request)")
    s.add_argument("--allow-private-media-urls", action="store_true",
                   help="also fetch media from loopback / private / link-local addresses (default: refused, so "
                        "that requests cannot reach the server's own network)")
    s.add_argument("--media-fetch-timeout", type=float, default=30.0,
                   help="seconds to fetch one media URL, redirects included (default 30)")
    s.add_argument("--max-frames", type=int, help="most video frames a request may sample (default: the model's)")
    s.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body in MiB (default 64)")
    s.add_argument("--max-video-seconds", type=float, default=3 * 3600.0,
                   help="longest video a request may send, read from its header (default 10800)")
    s.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    s.add_argument("--device", default="cpu")
    s.set_defaults(handler=_serve)


# The subcommand table: name -> function adding its parser.
SUBCOMMANDS = {verb: (lambda sub, verb=verb: _add_verb(sub, verb)) for verb in VERBS}
SUBCOMMANDS["generate"] = _add_generate
SUBCOMMANDS["train"] = _add_train
SUBCOMMANDS["eval"] = _add_eval
SUBCOMMANDS["serve"] = _add_serve
SUBCOMMANDS["demo"] = _add_demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="molmo2", description="Molmo2 vision-language models")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Molmo2Error as e:
        print(f"molmo2 {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
