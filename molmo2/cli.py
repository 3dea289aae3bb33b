"""The ``molmo2`` command: one entry point, a table of subcommands, heavy imports inside each handler.

Subcommands: ``generate`` (low-level: media + prompt -> answer text). The grounded verbs (ask, point,
count, track, caption), ``train``, ``eval`` and ``serve`` arrive with their issues.
"""

from __future__ import annotations

import argparse
import sys

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

    model = load_model(model_dir, dtype=getattr(torch, DTYPES[args.dtype]), device=args.device)
    visual = VisualInputs(enc.pixel_values, enc.pooling) if enc.pixel_values is not None else None
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_p=args.top_p, top_k=args.top_k, seed=args.seed)
    out = generate(model, enc.input_ids[None], visual=visual, params=params,
                   eos_token_id=processor.tokenizer.eos_id, pad_token_id=processor.tokenizer.pad_id)[0]
    print(processor.decode(out.token_ids).strip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="molmo2", description="Molmo2 vision-language models")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="answer a prompt about images or a video (greedy by default)")
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
