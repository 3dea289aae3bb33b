"""Distributed training pieces applied from outside the model, in the official order: freeze ->
activation checkpointing -> (compile) -> shard (training.md §6.1). ``torch.distributed`` lives here
and nowhere else in the package.

- ``init_distributed()``: reads torchrun's environment; gloo on CPU, nccl on CUDA.
- ``apply_activation_checkpointing``: wraps each ViT and LLM block's forward in non-reentrant
  ``torch.utils.checkpoint`` without renaming any parameter (checkpoints stay in the hub layout).
- ``apply_fsdp2``: ``fully_shard`` on every LLM block, every ViT block, the connector, then the root
  (fp32 master weights; bf16 compute comes from autocast). Frozen and trainable parameters may share
  a unit (FSDP2 reduce-scatters only the gradients that exist), so LoRA adapters are sharded with the
  frozen Linear they belong to and need nothing special.
- ``local_rows``: the local block of a dim-0-sharded tensor and its first global row, for row-wise
  gradient masks (a ``register_hook`` on a sharded parameter never fires: FSDP2 computes gradients
  on the unsharded copy and assigns the reduced shard to ``.grad``).
- all-reduce helpers that are no-ops in a single process.

Context parallelism for the long-context stage (planned, not implemented: it cannot be tested on
this machine's 2 CPU cores with any meaning): shard packed rows along the sequence over a ``cp``
mesh dimension (Ulysses all-to-all on heads, kv heads divisible by the CP degree), keep ``SegmentMask``
ids sharded the same way so each rank builds only its slice of the block mask, encode crops on the
rank that owns them and all-gather the visual features, and multiply the loss by the CP degree
because FSDP averages gradients over the flattened dp x cp mesh.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.distributed as dist
from torch.utils.checkpoint import checkpoint


def init_distributed(device: str) -> tuple[int, int]:
    """(rank, world size); initializes the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rows(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(this rank's rows of ``t``, index of its first row in the full tensor); ``t`` itself and 0 when
    ``t`` is not a DTensor. FSDP2 shards dim 0 like ``torch.chunk``: ``ceil(n / world)`` rows per rank."""
    from torch.distributed.tensor import DTensor, Shard

    if not isinstance(t, DTensor):
        return t, 0
    assert t.device_mesh.ndim == 1 and t.placements == (Shard(0),), t.placements
    local = t.to_local()
    chunk = -(-t.shape[0] // t.device_mesh.size())
    start = min(t.device_mesh.get_local_rank() * chunk, t.shape[0])
    assert local.shape[0] == min(chunk, t.shape[0] - start), (local.shape, t.shape, start)
    return local, start


def all_reduce_sum(x: float, device) -> float:
    if not is_distributed():
        return x
    t = torch.tensor([x], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def apply_activation_checkpointing(model: torch.nn.Module) -> None:
    blocks = list(model.text.blocks) + list(model.vision.blocks)
    for block in blocks:
        if getattr(block, "_molmo2_ckpt", False):
            continue
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
        block._molmo2_ckpt = True


def apply_fsdp2(model: torch.nn.Module, mesh=None) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    for block in model.text.blocks:
        fully_shard(block, mesh=mesh)
    for block in model.vision.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model.connector, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Plain CPU tensors with the model's parameter names (gathered on every rank when sharded)."""
    if not is_distributed():
        return {k: v.detach() for k, v in model.named_parameters()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_optimizer_state(model, optimizer) -> dict:
    if not is_distributed():
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model, optimizer, state: dict) -> None:
    if not is_distributed():
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
