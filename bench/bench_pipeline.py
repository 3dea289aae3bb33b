"""Latency of the ``Molmo2`` pipeline: a second question about the same video vs the first, and SlowFast.

For the ``tiny`` preset and the ~100M benchmark config (bench/common.py), with random weights written by
our own ``save_pretrained``, and one synthetic 640x480 video file (10 s, 10 fps; the checkpoints' video
config samples 16 frames):

* **first vs second question.** Each round empties the pipeline's cache, asks question 1 (decode the
  video, preprocess, ViT + connector, prefill the whole prompt, generate) and then a different
  question 2 about the same file (media cache hit: only the question's tokens are prefilled on top of
  the cached KV prefix, then generate). Both answers are forced to exactly N new tokens (EOS disabled),
  so the two calls generate the same amount; N is given per row (a short answer and a longer one).
  Reported: medians over the rounds of each call's wall time, its parts, and first / second.
* **SlowFast** (``--slowfast K``, default 4): the same 16 frames with every K-th frame at full detail
  and the others pooled 9x9 instead of 3x3. Reported: visual tokens and prompt tokens, the first
  question's latency, and how far answers move: agreement of the N greedy tokens with the full-detail
  answer and the KL divergence of the first answer token's distribution, over several questions. With
  random weights these last numbers say how much the input changes, not answer quality.

One warm-up round per config, then ``--reps`` rounds; CPU time used by other processes during each
round is measured (/proc/stat) and reported, since the machine is shared.

    .venv/bin/python bench/bench_pipeline.py           # full run (~2-4 min on 2 quiet cores)
    .venv/bin/python bench/bench_pipeline.py --quick   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    VIDEO_FRAMES,
    ForeignLoad,
    bench_config,
    config_summary,
    log,
    machine_description,
    median,
    num_params,
    today,
    write_side_files,
)

from molmo2.checkpoint import save_pretrained  # noqa: E402
from molmo2.config import Molmo2Config  # noqa: E402
from molmo2.inference.pipeline import Molmo2  # noqa: E402
from molmo2.model import Molmo2Model  # noqa: E402

QUESTIONS = ["What happens in this video?", "What colour is the moving square at the end?",
             "How many times does the background change?", "Where does the square start?"]


def random_model(cfg: Molmo2Config, seed: int = 0) -> Molmo2Model:
    torch.manual_seed(seed)
    model = Molmo2Model(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.05)
    return model


def write_checkpoint(name: str, out: Path) -> tuple[Path, str, int]:
    if name == "tiny":
        cfg = Molmo2Config.from_name("tiny")
        model = random_model(cfg)
        save_pretrained(model, out)
        write_side_files(out)
        crop = cfg.vision.image_size
        for fname in ("preprocessor_config.json", "video_preprocessor_config.json"):
            d = json.loads((out / fname).read_text())
            d["size"] = {"height": crop, "width": crop}
            if fname == "preprocessor_config.json":
                d["overlap_margins"] = [1, 1]
            (out / fname).write_text(json.dumps(d))
    else:
        cfg = bench_config()
        model = random_model(cfg)
        save_pretrained(model, out)
        write_side_files(out)
    return out, config_summary(cfg), num_params(model)


def write_video(path: Path, seconds: float = 10.0, fps: int = 10, size: tuple[int, int] = (640, 480)) -> Path:
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 2_000_000
        for i in range(int(seconds * fps)):
            arr = np.full((h, w, 3), (i * 3) % 256, np.uint8)
            x = (i * 5) % (w - 64)
            arr[100:164, x:x + 64] = (220, 30, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def first_vs_second(pipe: Molmo2, video: Path, n: int, reps: int, load: ForeignLoad) -> dict:
    rows = []
    for r in range(reps + 1):  # round 0 is the warm-up
        pipe.clear_cache()
        with load if r else _null():
            t0 = time.perf_counter()
            a = pipe.ask(video, QUESTIONS[0], max_new_tokens=n)
            t1 = time.perf_counter()
            b = pipe.ask(video, QUESTIONS[1], max_new_tokens=n)
            t2 = time.perf_counter()
        assert not a.cached and b.cached and a.num_new_tokens == b.num_new_tokens == n
        if r:
            rows.append({"first": t1 - t0, "second": t2 - t1, "a": a.timings, "b": b.timings,
                         "tokens": a.num_prompt_tokens, "visual": a.media.num_visual_tokens})
    med = {k: median([row[k] for row in rows]) for k in ("first", "second")}
    parts = {f"{c}_{k}": median([row[c][k] for row in rows]) for c in ("a", "b")
             for k in ("media", "vision", "prefill", "generate")}
    return {**med, **parts, "ratio": med["first"] / med["second"],
            "ratios": [row["first"] / row["second"] for row in rows], "tokens": rows[0]["tokens"],
            "visual": rows[0]["visual"]}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@torch.inference_mode()
def first_token_logprobs(pipe: Molmo2, video: Path, question: str, slowfast: int | None) -> torch.Tensor:
    """log-softmax of the first answer token ``[V]`` (the pipeline's own prompt and cached features)."""
    pipe.ask(video, question, max_new_tokens=1, slowfast=slowfast)  # fills the cache entry
    entry = next(reversed(pipe._cache.items.values()))
    msgs = pipe._messages(entry, [{"role": "user", "content": question}], None)
    enc = pipe.processor.encode(pipe.processor.render(msgs), prepared=entry.prepared)
    logits = pipe.model(enc.input_ids[None], visual_features=entry.features, logits_to_keep=1)[0, -1]
    return logits.float().log_softmax(-1)


def slowfast_rows(pipe: Molmo2, video: Path, k: int, n: int, reps: int) -> dict:
    out = {"k": k}
    for label, sf in (("full", None), ("slowfast", k)):
        times, answer = [], None
        for r in range(reps + 1):
            pipe.clear_cache()
            t0 = time.perf_counter()
            answer = pipe.ask(video, QUESTIONS[0], max_new_tokens=n, slowfast=sf)
            if r:
                times.append(time.perf_counter() - t0)
        out[label] = {"visual": answer.media.num_visual_tokens, "prompt": answer.num_prompt_tokens,
                      "first_s": median(times), "vision_s": answer.timings["vision"],
                      "prefill_s": answer.timings["prefill"]}
    agree, kls, top1 = [], [], []
    for q in QUESTIONS:
        full = pipe.ask(video, q, max_new_tokens=n)
        fast = pipe.ask(video, q, max_new_tokens=n, slowfast=k)
        ids_full = pipe.processor.tokenizer.encode(full.text)
        ids_fast = pipe.processor.tokenizer.encode(fast.text)
        same = sum(x == y for x, y in zip(ids_full, ids_fast))
        agree.append(same / max(len(ids_full), len(ids_fast), 1))
        lp_full = first_token_logprobs(pipe, video, q, None)
        lp_fast = first_token_logprobs(pipe, video, q, k)
        kls.append(float((lp_full.exp() * (lp_full - lp_fast)).sum()))
        top1.append(int(lp_full.argmax() == lp_fast.argmax()))
    out.update(agree=float(np.mean(agree)), kl=float(np.mean(kls)), top1=float(np.mean(top1)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 rep")
    ap.add_argument("--reps", type=int, default=None, help="timed rounds (default 5, --quick 1)")
    ap.add_argument("--new-tokens", default="16,64", help="answer lengths to time, comma-separated")
    ap.add_argument("--configs", default="tiny,100m")
    ap.add_argument("--slowfast", type=int, default=4, help="K for the SlowFast rows (0: skip)")
    args = ap.parse_args(argv)
    reps = args.reps or (1 if args.quick else 5)
    lengths = [int(x) for x in args.new_tokens.split(",") if x]
    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="molmo2-bench-pipeline-")
    root = Path(tmp.name)
    video = write_video(root / "video.mp4")
    load = ForeignLoad()

    out = ["## Pipeline: second question on the same video (`bench/bench_pipeline.py`)\n",
           f"Machine: {machine_description()}  ",
           f"Date: {today()}; command: `.venv/bin/python bench/bench_pipeline.py{' --quick' if args.quick else ''}`  ",
           f"Video: 640x480 mpeg4, 10 s at 10 fps, {VIDEO_FRAMES} frames sampled. Question 1 on an empty cache, "
           f"then question 2 (different text) on the same file; both forced to N new tokens (greedy, EOS off), "
           f"fp32, batch 1, {torch.get_num_threads()} torch threads; medians of {reps} rounds after 1 warm-up. "
           "Parts of each call: media = decode + preprocess, vision = ViT + connector, prefill (question 2: "
           "only its own tokens on the cached prefix), generate = the N decode steps.\n",
           "| config | params | prompt tok (visual) | N new | 1st question (s) | 2nd question (s) | **1st / 2nd** "
           "| 1st: media / vision / prefill / generate | 2nd: prefill / generate | per-round ratios |",
           "|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    sf_lines = []
    for name in [c for c in args.configs.split(",") if c]:
        log(f"[{name}] writing a random checkpoint ...")
        ckpt, summary, params = write_checkpoint(name, root / name)
        pipe = Molmo2.from_pretrained(ckpt)
        pipe.processor.tokenizer.eos_id = None  # every answer runs to N tokens
        for n in lengths:
            log(f"[{name}] N={n} ...")
            r = first_vs_second(pipe, video, n, reps, load)
            out.append(
                f"| {name} | {params / 1e6:.1f}M | {r['tokens']} ({r['visual']}) | {n} | {r['first']:.3f} | "
                f"{r['second']:.3f} | **{r['ratio']:.1f}x** | {r['a_media']:.3f} / {r['a_vision']:.3f} / "
                f"{r['a_prefill']:.3f} / {r['a_generate']:.3f} | {r['b_prefill']:.3f} / {r['b_generate']:.3f} | "
                f"{', '.join(f'{x:.1f}' for x in r['ratios'])} |")
            print(out[-1], flush=True)
        if args.slowfast and name != "tiny":
            log(f"[{name}] SlowFast K={args.slowfast} ...")
            s = slowfast_rows(pipe, video, args.slowfast, lengths[0], reps)
            f, sf = s["full"], s["slowfast"]
            sf_lines.append(
                f"| {name} | full detail | {f['visual']} | {f['prompt']} | {f['first_s']:.3f} | {f['vision_s']:.3f} | "
                f"{f['prefill_s']:.3f} | | | |")
            sf_lines.append(
                f"| {name} | SlowFast K={s['k']} | {sf['visual']} ({1 - sf['visual'] / f['visual']:.0%} fewer) | "
                f"{sf['prompt']} | {sf['first_s']:.3f} | {sf['vision_s']:.3f} | {sf['prefill_s']:.3f} | "
                f"{s['agree']:.0%} | {s['top1']:.0%} | {s['kl']:.3f} |")
        out.append(f"<!-- {name}: {summary} -->")
        del pipe
    if sf_lines:
        out += ["", f"SlowFast (`--slowfast {args.slowfast}`): every K-th of the {VIDEO_FRAMES} frames at full "
                "detail (3x3 pooling), the others pooled 9x9. Latency = the first question on an empty cache "
                f"(N={lengths[0]}), vision/prefill from the last round. Answer movement over {len(QUESTIONS)} "
                "questions: greedy-token agreement with the full-detail answer, first-token top-1 agreement, "
                "KL(full || SlowFast) of the first token (random weights: this measures how much the input "
                "changes, not answer quality).\n",
                "| config | frames | visual tokens | prompt tokens | 1st question (s) | vision (s) | prefill (s) "
                "| token agreement | top-1 agreement | first-token KL |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", *sf_lines]
    out.append(f"\nCPU used by other processes during the timed rounds: {load.summary()} (2-core machine).  ")
    out.append(f"total bench time {time.perf_counter() - t_start:.0f} s")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
