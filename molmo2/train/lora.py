"""LoRA: low-rank adapters on chosen Linear layers of the LLM, trained while everything else is frozen.

Applied from outside the model like the other training transforms: each targeted ``nn.Linear`` gets two
extra parameters, ``lora_a [r, in]`` (random) and ``lora_b [out, r]`` (zeros, so training starts at the
base model), and a forward hook that adds ``(x @ A^T @ B^T) * alpha / r``. No module is replaced, so the
base parameter names stay those of the checkpoint layout.

Under FSDP2 the adapters are ordinary parameters of the block they sit in, sharded with it: FSDP2
allows frozen and trainable parameters in one unit and reduce-scatters only the gradients that
exist, so nothing is replicated by hand. Adapters are applied and (on resume) loaded before
``fully_shard``, on every rank from the same files.

Checkpoints of a LoRA run keep the frozen base weights in ``model/`` and the adapters in
``lora.safetensors`` (full tensors, written by rank 0; resuming is exact); ``export_merged`` folds the
adapters into the weights for export, giving a normal model directory that ``Molmo2.from_pretrained``
loads.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn


def _hook(module: nn.Linear, inputs, output):
    x = inputs[0]
    delta = (x.to(module.lora_a.dtype) @ module.lora_a.t()) @ module.lora_b.t()
    return output + (delta * module.lora_scale).to(output.dtype)


def apply_lora(model: nn.Module, rank: int, alpha: float, targets: list[str], seed: int = 0) -> list[str]:
    """Freeze ``model`` and add adapters to the LLM Linears named in ``targets``; returns their names."""
    if rank <= 0:
        raise ValueError("LoRA rank must be positive")
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    done = []
    for name, module in model.text.named_modules():
        if isinstance(module, nn.Linear) and name.split(".")[-1] in targets and not hasattr(module, "lora_a"):
            out_f, in_f = module.weight.shape
            a = torch.empty(rank, in_f)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=g)
            module.lora_a = nn.Parameter(a.to(module.weight.device))
            module.lora_b = nn.Parameter(torch.zeros(out_f, rank, device=module.weight.device))
            module.lora_scale = alpha / rank
            module.register_forward_hook(_hook)
            done.append(f"text.{name}")
    if not done:
        raise ValueError(f"no LLM Linear layer is named one of {targets}; choose from qkv, out, up_gate, down")
    return done


def load_adapters(model: nn.Module, path: Path) -> None:
    """Copy ``lora.safetensors`` into the adapters of ``model`` (unsharded: call before ``fully_shard``);
    every adapter of the model must be in the file and nothing else."""
    from safetensors.torch import load_file

    from molmo2.errors import CheckpointError

    adapters = load_file(path)
    params = {k: v for k, v in model.named_parameters() if is_lora(k)}
    if adapters.keys() != params.keys():
        missing, extra = sorted(params.keys() - adapters.keys()), sorted(adapters.keys() - params.keys())
        raise CheckpointError(f"{path} does not match the LoRA config (lora.rank/targets): missing {missing[:4]}, "
                              f"unexpected {extra[:4]}")
    with torch.no_grad():
        for k, v in adapters.items():
            if v.shape != params[k].shape:
                raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, the model {tuple(params[k].shape)}; "
                                      "is lora.rank the one of the run?")
            params[k].copy_(v)


def is_lora(name: str) -> bool:
    return name.endswith(".lora_a") or name.endswith(".lora_b")


def split_state(named) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(base weights, adapters) from ``named_parameters()``-like pairs."""
    base, lora = {}, {}
    for k, v in named:
        (lora if is_lora(k) else base)[k] = v.detach()
    return base, lora


def merged_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Base weights with every adapter folded in: ``W + (B @ A) * alpha / r``."""
    base, _ = split_state(model.named_parameters())
    out = dict(base)
    for name, module in model.named_modules():
        if hasattr(module, "lora_a"):
            w = out[f"{name}.weight"]
            out[f"{name}.weight"] = (w.float() + (module.lora_b.float() @ module.lora_a.float()) * module.lora_scale
                                     ).to(w.dtype)
    return out


def export_merged(ckpt: Path, out_dir: Path, rank: int, alpha: float, targets: list[str]) -> Path:
    """A LoRA run's checkpoint (base ``model/`` + ``lora.safetensors``) -> one merged model directory.
    Reads full tensors from the checkpoint files, so under torchrun one rank (rank 0) calls it."""
    from molmo2.checkpoint import load_model, save_pretrained

    model = load_model(ckpt / "model")
    apply_lora(model, rank, alpha, targets)
    load_adapters(model, ckpt / "lora.safetensors")
    return save_pretrained(merged_state(model), out_dir, source_dir=ckpt / "model", cfg=model.cfg)
