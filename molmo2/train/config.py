"""The training run as one dataclass tree; recipes fill it, ``--set a.b=value`` overrides it.

Overrides are typed by the field they target (int, float, bool, str, tuple, list and dict fields
parse from text; lists and dicts as JSON) and an unknown key is an error that lists the valid keys.
The resolved tree is saved with every run (``config.json`` in the run folder).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from molmo2.errors import ConfigError
from molmo2.train.optim import OptimConfig


@dataclass
class DataConfig:
    manifests: list[str] = field(default_factory=list)  # JSONL manifests (molmo2.data.schema)
    groups: dict[str, str] = field(default_factory=dict)  # manifest -> group name (default: "default")
    group_rates: dict[str, float] = field(default_factory=dict)
    seq_len: int = 4096  # tokens per packed row
    max_crops_per_row: int = 16  # crop budget per packed row
    buffer_size: int = 48  # packer buffer
    image_weight: float = 1.0  # packer value of one crop, in tokens
    max_frames: int = 16
    max_fps: float = 2.0
    weighting: str = "none"  # "none" (pre-training) | "sft" (training.md §2.1)
    seed: int = 95818


@dataclass
class LoraConfig:
    rank: int = 0  # 0 = no LoRA
    alpha: float = 16.0
    targets: list[str] = field(default_factory=lambda: ["qkv", "out", "up_gate", "down"])  # Linear names in the LLM


@dataclass
class TrainConfig:
    model: str = ""  # model directory: config.json + tokenizer + processor files (+ weights to start from)
    init: str = "checkpoint"  # "checkpoint" (load the weights in `model`) | "random"
    run_dir: str = "runs/debug"
    steps: int = 100  # the schedule's length (cosine horizon)
    stop_at: int = 0  # stop after this step (0 = at `steps`); resume later continues the same schedule
    global_batch_rows: int = 8  # packed rows per optimizer step, over all ranks
    micro_batch_rows: int = 2  # rows per forward/backward on one rank
    precision: str = "bf16"  # "fp32" | "bf16" (autocast; master weights stay fp32)
    activation_checkpointing: bool = False
    # ranks that split each packed row along the sequence (Ulysses; the long-context stage, training.md
    # §6.3); world size, the LLM's query and KV heads and data.seq_len must be divisible by it
    context_parallel: int = 1
    freeze: list[str] = field(default_factory=list)  # parts: vit, connector, llm
    # zero gradient for the base-vocabulary rows of text.embed (the official default); the Molmo2
    # special-token rows still train (connector LR). lm_head is a separate parameter: it trains unless
    # freeze_lm_head, or the model is tied (tie_word_embeddings), where it is frozen with the rows
    freeze_base_embedding: bool = True
    freeze_lm_head: bool = False  # the 4B recipes set it: the official 4B head is its frozen tied embedding
    # LLM residual dropout (training.md §1.2-1.3): on every residual branch's output at all positions,
    # and/or at the loss-bearing positions only (per element, inverted; off in evaluation)
    residual_dropout: float = 0.0
    response_residual_dropout: float = 0.0
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    save_every: int = 1000
    keep_last: int = 2
    log_every: int = 10
    eval_every: int = 0  # 0 = no in-loop evaluation hook
    seed: int = 6198
    device: str = "cpu"
    wandb_project: str = ""  # empty = no wandb
    threads: int = 0  # torch intra-op threads (0 = torch's default)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        cfg = cls()
        for key, value in _flatten(d):
            set_value(cfg, key, value, parse=False)
        return cfg


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("lr", "warmup", "groups", "group_rates"):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _parse(text: str, tp) -> Any:
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if tp in (int, float, str):
            return tp(text)
        if origin in (list, dict, tuple):
            value = json.loads(text)
            return tuple(value) if origin is tuple else value
    except (ValueError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {text!r} as {getattr(tp, '__name__', tp)}: {e}") from None
    raise ConfigError(f"fields of type {tp} cannot be set from the command line")


def set_value(cfg: Any, key: str, value: Any, parse: bool = True) -> None:
    """``set_value(cfg, "optim.lr.llm", "1e-5")``: typed, unknown keys rejected."""
    parts = key.split(".")
    obj = cfg
    for i, name in enumerate(parts):
        if isinstance(obj, dict):
            if name not in obj:
                raise ConfigError(f"unknown key {key!r}: {'.'.join(parts[:i])} has {sorted(obj)}")
            if i == len(parts) - 1:
                old = obj[name]
                obj[name] = type(old)(value) if not parse else _parse(str(value), type(old))
                return
            obj = obj[name]
            continue
        hints = typing.get_type_hints(type(obj))
        if name not in hints:
            where = ".".join(parts[:i]) or "the config"
            raise ConfigError(f"unknown key {key!r}: {where} has {sorted(hints)}")
        if i == len(parts) - 1:
            tp = hints[name]
            if parse:
                value = _parse(str(value), tp)
            elif typing.get_origin(tp) is tuple:
                value = tuple(value)
            setattr(obj, name, value)
            return
        obj = getattr(obj, name)


def apply_overrides(cfg: TrainConfig, sets: list[str]) -> TrainConfig:
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set takes key=value, got {item!r}")
        key, value = item.split("=", 1)
        set_value(cfg, key.strip(), value.strip())
    return cfg
