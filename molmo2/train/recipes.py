"""Training recipes as Python functions: each returns the phases of a run (one ``TrainConfig`` each).

Released-model recipes (training.md §1; numbers from the official launch scripts): ``pretrain-4b``,
``sft-4b``, ``long-sft-4b`` and the same for ``8b`` and ``o-7b``. They need ``--set model=DIR`` (a
converted checkpoint) and ``--set data.manifests=[...]``. Self-contained recipes prepare their own
model directory and data under the run folder: ``debug-cpu`` (a tiny model, a few generated
examples, under a minute on a CPU) and ``tiny-shapes`` (the shipped demo model: synthetic shapes,
images first, then video).

A phase with ``model=""`` starts from the previous phase's last checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from molmo2.config import ConnectorConfig, Molmo2Config, TextConfig, VisionConfig
from molmo2.errors import ConfigError
from molmo2.train.config import TrainConfig
from molmo2.train.optim import OptimConfig


@dataclass
class Recipe:
    name: str
    phases: list[TrainConfig]
    prepare: Callable[[list[TrainConfig]], None] | None = None  # writes model dirs / data before training
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- released models
_LLM_PARAMS_B = {"4b": 4.0, "8b": 8.2, "o-7b": 7.3}


# stage -> (steps, micro rows, seq len, crops/row, image_weight, max_frames, weighting, data seed, save_every,
#           peak LR connector/vit/llm, warmup connector/vit/llm)   (training.md §1.2-1.4)
_STAGES = {
    "pretrain": (31_000, 4, 2536, 16, 1.0, 16, "none", 95818, 4000, (2e-4, 6e-6, 2e-5), (200, 2000, 2000)),
    "sft": (30_000, 2, 16_384, 128, 30.0, 128, "sft", 50189, 2000, (5e-6, 5e-6, 1e-5), (200, 200, 200)),
    "long-sft": (2_000, 1, 36_864, 384, 30.0, 384, "sft", 50189, 500, (5e-6, 5e-6, 1e-5), (200, 200, 200)),
}


def _released(size: str, stage: str) -> Recipe:
    steps, micro, seq_len, crops, image_weight, frames, weighting, seed, save_every, lr, warmup = _STAGES[stage]
    c = TrainConfig(precision="bf16", activation_checkpointing=True, device="cuda", global_batch_rows=128,
                    freeze_base_embedding=True, run_dir=f"runs/{stage}-{size}", steps=steps,
                    micro_batch_rows=micro, save_every=save_every, keep_last=1,
                    freeze_lm_head=size == "4b",  # official 4B: the head is the tied, frozen embedding
                    # pre-training drops at response tokens only, the SFT stages everywhere
                    residual_dropout=0.0 if stage == "pretrain" else 0.1,
                    response_residual_dropout=0.1 if stage == "pretrain" else 0.0)
    c.data.seq_len, c.data.max_crops_per_row, c.data.image_weight = seq_len, crops, image_weight
    c.data.max_frames, c.data.weighting, c.data.seed = frames, weighting, seed
    c.optim = OptimConfig(lr=dict(zip(("connector", "vit", "llm"), lr)),
                          warmup=dict(zip(("connector", "vit", "llm"), warmup)))
    return Recipe(f"{stage}-{size}", [c], notes=[
        "needs --set model=DIR (converted checkpoint) and --set data.manifests='[\"a.jsonl\", ...]'",
        "launch with torchrun --nproc-per-node=N -m molmo2 train ... for FSDP2"])


# ------------------------------------------------------------------------------- self-contained
TINY_SHAPES_VOCAB = 512


def tiny_shapes_config(vocab_size: int = TINY_SHAPES_VOCAB, image_size: int = 112, scale: int = 1) -> Molmo2Config:
    """The shipped demo model: Molmo2's architecture at a few million parameters (``scale=4``: a
    quarter of the width and fewer layers, for the debug recipe)."""
    extra = 16
    base = vocab_size
    v, t = 128 // scale, 256 // scale
    return Molmo2Config(
        vision=VisionConfig(hidden_size=v, intermediate_size=2 * v, num_layers=4 if scale == 1 else 3, num_heads=4,
                            head_dim=v // 4, image_size=image_size),
        connector=ConnectorConfig(feature_layers=[-1, -3], hidden_size=v, num_heads=4, head_dim=v // 4,
                                  intermediate_size=3 * v),
        text=TextConfig(hidden_size=t, num_layers=6 if scale == 1 else 2, num_heads=4, num_kv_heads=2, head_dim=t // 4,
                        intermediate_size=3 * t, vocab_size=vocab_size, additional_vocab_size=extra,
                        rope_theta=10_000.0, max_position_embeddings=4096),
        image_start_token_id=base, image_end_token_id=base + 1, image_patch_id=base + 2, image_col_id=base + 3,
        low_res_image_start_token_id=base + 4, image_low_res_id=base + 6, frame_start_token_id=base + 7,
        frame_end_token_id=base + 8,
    ).validate()


def write_model_dir(out: Path, cfg: Molmo2Config, corpus: list[str], image_pooling=(1, 1), video_pooling=(2, 2),
                    max_crops: int = 1, num_frames: int = 8) -> Path:
    """config.json + a tokenizer trained on ``corpus`` + processor files: a model directory without
    weights, to train with ``init=random``."""
    from molmo2.train.tokenizer import train_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_hf_config(), indent=2))
    train_tokenizer(corpus, cfg.text.vocab_size, out)
    size = cfg.vision.image_size
    (out / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": size, "width": size}, "patch_size": 14, "max_crops": max_crops,
         "overlap_margins": [1, 1], "pooling_size": list(image_pooling), "image_mean": [0.5] * 3,
         "image_std": [0.5] * 3}, indent=2))
    (out / "video_preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": size, "width": size}, "patch_size": 14, "pooling_size": list(video_pooling),
         "num_frames": num_frames, "max_fps": 2}, indent=2))
    return out


def _corpus_for(manifests: list[Path]) -> list[str]:
    """Every prompt template and the formatted conversations of the data (points and tracks markup
    included), so the BPE merges fit the task language."""
    import numpy as np

    from molmo2.data.schema import DataError, read_jsonl
    from molmo2.train import prompts

    lines = list(prompts.POINT_PROMPTS + prompts.COUNT_PROMPTS + prompts.TRACK_PROMPTS)
    lines += [p for v in prompts.CAPTION_PROMPTS.values() for p in v]
    lines += ["<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", "There are none."]
    rng = np.random.default_rng(0)
    for m in manifests:
        for ex in read_jsonl(m):
            gt = ex.ground_truth or {}
            size = (float(gt.get("width", 100)), float(gt.get("height", 100)))
            for a in ex.annotations:
                try:
                    lines += [t["content"] for t in prompts.conversation(a, [size], ex.media.kind, rng)]
                except DataError:  # a corpus line, not training data: keep what text there is
                    lines += [x for x in (a.question, a.answer, a.label) if x]
    return lines


def _shapes_recipe(name: str, phases_spec: list[list[dict]], image_size: int, steps: list[int], rows: int,
                   seq_len: int, lr: float | dict[str, float], save_every: int = 50, scale: int = 1,
                   tokenizer_phases: int | None = None) -> Recipe:
    """Phases of synthetic data; each dataset spec: name, preset, num, seed, kinds, rate. The BPE
    tokenizer is trained on the data of the first ``tokenizer_phases`` phases (default: all)."""
    phases = []
    for i, n in enumerate(steps):
        c = TrainConfig(run_dir=f"runs/{name}", precision="bf16", device="cpu", steps=n, global_batch_rows=rows,
                        micro_batch_rows=rows, freeze_base_embedding=False, save_every=save_every,
                        keep_last=2, log_every=10, init="random" if i == 0 else "checkpoint", seed=6198)
        c.optim = OptimConfig(lr=dict(lr) if isinstance(lr, dict) else {"vit": lr, "connector": lr, "llm": lr},
                              warmup={"vit": 100, "connector": 100, "llm": 100}, alpha_f=0.1, eps=1e-8)
        c.data.seq_len, c.data.max_crops_per_row, c.data.buffer_size = seq_len, 64, 16
        c.data.max_frames, c.data.weighting, c.data.seed = 8, "none", 1234 + i
        phases.append(c)

    def prepare(phases: list[TrainConfig]) -> None:
        from molmo2.data import shapes

        root = Path(phases[0].run_dir)
        manifests = []  # the tokenizer's corpus, in phase order
        for i, (datasets, c) in enumerate(zip(phases_spec, phases)):
            c.data.manifests, c.data.groups, c.data.group_rates = [], {}, {}
            for d in datasets:
                man = root / "data" / d["name"] / "data.jsonl"
                if not man.is_file():
                    cfg = shapes.preset(d["preset"], image_size=image_size, seed=d["seed"])
                    shapes.generate_dataset(man.parent, d["num"], cfg, kinds=d.get("kinds"))
                c.data.manifests.append(str(man))
                c.data.groups[str(man)] = d["name"]
                c.data.group_rates[d["name"]] = d.get("rate", 1.0)
                if tokenizer_phases is None or i < tokenizer_phases:
                    manifests.append(man)
        model_dir = root / "model-init"
        if not (model_dir / "config.json").is_file():
            write_model_dir(model_dir, tiny_shapes_config(image_size=image_size, scale=scale), _corpus_for(manifests))
        phases[0].model = str(model_dir)
        for i, c in enumerate(phases, 1):
            c.run_dir = str(root / f"phase{i}")

    return Recipe(name, phases, prepare)


IMAGE_KINDS = ("pointing", "counting", "qa", "caption")
FIRST_KINDS = ("pointing", "counting", "caption")  # phase 1: grounding first


def debug_cpu() -> Recipe:
    """A tiny model on 24 generated examples: under a minute on a CPU (tests use it too)."""
    r = _shapes_recipe("debug-cpu", [[{"name": "mixed", "preset": "mixed", "num": 24, "seed": 7}]],
                       image_size=56, steps=[30], rows=4, seq_len=512, lr=2e-3, save_every=15, scale=4)
    r.phases[0].optim.warmup = {"vit": 5, "connector": 5, "llm": 5}
    return r


def tiny_shapes() -> Recipe:
    """The shipped demo model. Phase 1: images with one shape, then 1-3, on plain backgrounds (where
    things are, before anything else); phase 2: full-difficulty images and videos, every task; phase 3:
    the same data again at half the learning rate; phase 4: fresh images, most of each batch (an image
    example is 60% of a video's tokens, so phases 2-3 saw only ~4 images per step), half the rate; phase 5:
    fresh images and videos again, at half the rate; phase 6: fresh images with pointing and counting
    questions only, most of each batch, and phase 5's videos, at half the rate. About 2 h 50 min on 2 CPU
    cores."""
    phase2 = [{"name": "images", "preset": "images", "num": 4000, "seed": 2, "kinds": IMAGE_KINDS, "rate": 0.4},
              {"name": "video", "preset": "video", "num": 3000, "seed": 3, "rate": 0.6}]
    phase4 = [{"name": "images2", "preset": "images", "num": 8000, "seed": 5, "kinds": IMAGE_KINDS, "rate": 0.75},
              {"name": "video", "preset": "video", "num": 3000, "seed": 3, "rate": 0.25}]
    phase5 = [{"name": "images3", "preset": "images", "num": 6000, "seed": 6, "kinds": IMAGE_KINDS, "rate": 0.6},
              {"name": "video2", "preset": "video", "num": 1500, "seed": 7, "rate": 0.4}]
    phase6 = [{"name": "images4", "preset": "images", "num": 6000, "seed": 8, "kinds": ("pointing", "counting"),
               "rate": 0.7},
              {"name": "video2", "preset": "video", "num": 1500, "seed": 7, "rate": 0.3}]
    r = _shapes_recipe(
        "tiny-shapes",
        [[{"name": "single", "preset": "single", "num": 3000, "seed": 4, "kinds": FIRST_KINDS, "rate": 0.4},
          {"name": "few", "preset": "few", "num": 6000, "seed": 1, "kinds": FIRST_KINDS, "rate": 0.6}],
         phase2, phase2, phase4, phase5, phase6],
        image_size=112, steps=[500, 600, 400, 700, 400, 400], rows=8, seq_len=1024,
        lr={"vit": 5e-4, "connector": 5e-4, "llm": 1e-3},
        tokenizer_phases=2)  # the shipped tokenizer's corpus; later phases speak the same templated language
    for late in r.phases[2:]:
        late.optim.lr = {k: v / 2 for k, v in late.optim.lr.items()}
        late.optim.warmup = {"vit": 50, "connector": 50, "llm": 50}
    return r


RECIPES: dict[str, Callable[[], Recipe]] = {"debug-cpu": debug_cpu, "tiny-shapes": tiny_shapes}
for _size in ("4b", "8b", "o-7b"):
    for _stage in ("pretrain", "sft", "long-sft"):
        RECIPES[f"{_stage}-{_size}"] = (lambda s=_size, st=_stage: _released(s, st))


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name]()


def plan(recipe: Recipe, world_size: int = 8) -> str:
    """What ``--dry-run`` prints: steps, rows, tokens and a memory estimate per GPU."""
    lines = [f"recipe {recipe.name}: {len(recipe.phases)} phase(s)"]
    for i, c in enumerate(recipe.phases, 1):
        tokens = c.steps * c.global_batch_rows * c.data.seq_len
        lines.append(f"phase {i}: {c.steps} steps x {c.global_batch_rows} rows x {c.data.seq_len} tokens = "
                     f"{tokens / 1e9:.2f}B token slots; crops/row {c.data.max_crops_per_row}; precision {c.precision}; "
                     f"LR vit/connector/llm {c.optim.lr['vit']:g}/{c.optim.lr['connector']:g}/{c.optim.lr['llm']:g}")
        size = next((s for s in _LLM_PARAMS_B if recipe.name.endswith(s)), None)
        if size:
            params = (_LLM_PARAMS_B[size] + 0.5) * 1e9
            # fp32 master + AdamW moments + fp32 grads, sharded by FSDP2; bf16 activations per micro-batch
            states = params * 16 / world_size
            act = c.micro_batch_rows * c.data.seq_len * 4096 * 2 * 6 * (1 if c.activation_checkpointing else 36)
            lines.append(f"  memory per GPU ({world_size} GPUs, FSDP2): ~{states / 2**30:.1f} GiB weights+grads+"
                         f"Adam, ~{act / 2**30:.1f} GiB activations (checkpointed blocks)")
    lines += [f"note: {n}" for n in recipe.notes]
    return "\n".join(lines)

