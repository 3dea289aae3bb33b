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
- all-reduce and all-gather helpers that are no-ops in a single process; ``shutdown()`` (barrier, then destroy the
  process groups) at the end of ``molmo2 train``.
- context parallelism (``TrainConfig.context_parallel``, for the long-context stage, training.md
  §6.3), hooked in after activation checkpointing and before sharding: ``check_context_parallel``
  validates the degree, ``init_context_parallel`` lays the ranks out as a ``(dp, cp)`` mesh with CP
  innermost (ranks ``g*cp .. g*cp+cp-1`` form CP group ``g``, whose data-parallel rank is ``g``), and
  ``apply_context_parallel`` hands the model a :class:`ContextParallel`.

Context parallelism, as built: the ranks of one CP group draw the *same* packed rows (the stream is
split over data-parallel ranks, not over all ranks; rows are padded to a multiple of ``cp``), and
each keeps a contiguous ``1/cp`` slice of every row's tokens after the embedding. Every rank of the
group encodes all the row's crops (redundant ViT work, as the official default; only the local
slice's features get gradients) and keeps the full-row ``SegmentMask``. Ulysses attention: an
all-to-all turns q, k, v ``[B, H, S/cp, D]`` (all heads, local tokens) into ``[B, H/cp, S, D]``
(local heads, all tokens), attention runs with the full-row mask, the inverse all-to-all brings the
output back; hence query and KV heads must divide by ``cp``. Per layer that is two all-to-alls
forward (``(H + 2 KV) D S/cp`` and ``H D S/cp`` elements out of each rank, ``(cp-1)/cp`` of it over
the wire) and two backward: the Functions' backward is the inverse all-to-all (``all_to_all_single``,
which gloo and nccl both provide). Loss: each rank sums its own slice's weighted CE, the total weight
is all-reduced over all ranks (each token counted once) and the per-rank loss is divided by
``total / world`` as without CP: FSDP2 averages gradients over the flattened dp x cp mesh and the
ranks' gradients add up to the gradient of the global weighted sum, so the step is the 1-process step
(the official ``* cp_degree`` is the same factor, §2.2). Tested on CPU with 2 processes over gloo
(fp32: the losses, grad norms and weights of 1 process; also with activation checkpointing, LoRA and
bf16 autocast); not yet run on CUDA, where the same mask compiles into a FlexAttention block mask.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.distributed as dist
from torch.utils.checkpoint import checkpoint

from molmo2.errors import ConfigError


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


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable, small), in rank order; ``[obj]`` in a single process."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    """Wait for every rank, then destroy the process groups: a torchrun process exiting with its group
    still alive can abort in gloo's teardown ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def apply_activation_checkpointing(model: torch.nn.Module) -> None:
    blocks = list(model.text.blocks) + list(model.vision.blocks)
    for block in blocks:
        if getattr(block, "_molmo2_ckpt", False):
            continue
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
        block._molmo2_ckpt = True


def check_context_parallel(degree: int, world: int, num_heads: int, num_kv_heads: int, seq_len: int) -> None:
    """ConfigError unless ``degree`` ranks can split one packed row (pure; the trainer calls it first)."""
    if degree < 1:
        raise ConfigError(f"context_parallel must be >= 1, got {degree}")
    if world % degree:
        raise ConfigError(f"context_parallel={degree} needs a world size divisible by it, got {world} process(es); "
                          f"launch with torchrun --nproc-per-node=<multiple of {degree}> or lower context_parallel")
    for what, n in (("num_heads", num_heads), ("num_kv_heads", num_kv_heads)):
        if n % degree:
            raise ConfigError(f"context_parallel={degree} splits attention heads over ranks (Ulysses), but the "
                              f"model's text {what}={n} is not divisible by it; use a degree that divides {n}")
    if seq_len % degree:
        raise ConfigError(f"context_parallel={degree} splits every row into equal slices, but data.seq_len={seq_len} "
                          f"is not divisible by it; use a multiple of {degree}")


class ContextParallel:
    """This rank's place in its context-parallel group, and the layout changes the model asks for:
    ``shard`` (the local slice of a row), ``seq_to_heads`` and ``heads_to_seq`` (Ulysses)."""

    def __init__(self, group, rank: int, size: int, dp_rank: int, dp_size: int):
        self.group, self.rank, self.size = group, rank, size
        self.dp_rank, self.dp_size = dp_rank, dp_size

    def shard(self, t: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """The contiguous ``1/size`` slice of ``t`` along ``dim`` (the sequence) that this rank keeps."""
        n = t.shape[dim]
        assert n % self.size == 0, (t.shape, self.size)
        return t.narrow(dim, self.rank * (n // self.size), n // self.size)

    def seq_to_heads(self, *ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``[B, H_i, S/cp, D]`` each (all heads, local tokens) -> ``[B, H_i/cp, S, D]`` (local heads,
        all tokens); one all-to-all for all tensors."""
        return _Ulysses.apply(self, True, *ts)

    def heads_to_seq(self, *ts: torch.Tensor):
        """The inverse of ``seq_to_heads``; one tensor in, one out."""
        out = _Ulysses.apply(self, False, *ts)
        return out[0] if len(ts) == 1 else out


def _all_to_all(send: torch.Tensor, cp: ContextParallel) -> torch.Tensor:
    """``recv[j] = send[i]`` of rank ``j`` on rank ``i``, over dim 0 (gloo and nccl both support it)."""
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=cp.group)
    return recv


def _seq_to_heads(ts, cp: ContextParallel) -> list[torch.Tensor]:
    n = cp.size
    heads = [t.shape[1] // n for t in ts]
    B, _, S_l, D = ts[0].shape
    # chunk j of every tensor's heads goes to rank j: [n, B, h_i, S_l, D], all tensors side by side
    send = torch.cat([t.reshape(B, n, h, S_l, D).transpose(0, 1) for t, h in zip(ts, heads)], dim=2).contiguous()
    recv = _all_to_all(send, cp)  # [n (whose tokens), B, sum h_i, S_l, D]
    out = recv.permute(1, 2, 0, 3, 4).reshape(B, sum(heads), n * S_l, D)
    return list(out.split(heads, dim=1))


def _heads_to_seq(ts, cp: ContextParallel) -> list[torch.Tensor]:
    n = cp.size
    heads = [t.shape[1] for t in ts]
    B, _, S, D = ts[0].shape
    # chunk j of every tensor's tokens goes to rank j: [n, B, h_i, S/n, D]
    send = torch.cat([t.reshape(B, h, n, S // n, D).permute(2, 0, 1, 3, 4) for t, h in zip(ts, heads)],
                     dim=2).contiguous()
    recv = _all_to_all(send, cp)  # [n (whose heads), B, sum h_i, S/n, D]
    return [r.transpose(0, 1).reshape(B, n * h, S // n, D) for r, h in zip(recv.split(heads, dim=2), heads)]


class _Ulysses(torch.autograd.Function):
    """One all-to-all, ``seq_to_heads`` (``to_heads``) or ``heads_to_seq``. It is a permutation, so its
    adjoint is the inverse all-to-all: the backward runs the other direction. Outputs without a gradient
    arrive as zeros (autograd materializes them), so every rank joins every backward all-to-all."""

    @staticmethod
    def forward(ctx, cp, to_heads: bool, *ts):
        ctx.cp, ctx.to_heads = cp, to_heads
        return tuple((_seq_to_heads if to_heads else _heads_to_seq)(ts, cp))

    @staticmethod
    def backward(ctx, *grads):
        return (None, None, *(_heads_to_seq if ctx.to_heads else _seq_to_heads)(grads, ctx.cp))


def init_context_parallel(degree: int) -> ContextParallel | None:
    """The ``(dp, cp)`` layout with CP innermost; None when ``degree`` is 1. Every rank creates every
    CP group (``new_group`` is collective) and keeps its own."""
    if degree == 1:
        return None
    world, rank = dist.get_world_size(), dist.get_rank()
    assert world % degree == 0, (world, degree)  # check_context_parallel ran first
    mine = None
    for g in range(world // degree):
        group = dist.new_group(list(range(g * degree, (g + 1) * degree)))
        if rank // degree == g:
            mine = group
    return ContextParallel(mine, rank % degree, degree, rank // degree, world // degree)


def apply_context_parallel(model: torch.nn.Module, cp: ContextParallel) -> None:
    """Hook ``cp`` into the model: ``Molmo2Model.forward`` keeps the local slice of packed rows after
    the embedding, and every LLM attention runs Ulysses around ``attend``. Before sharding (FSDP2
    keeps the attributes)."""
    model.context_parallel = cp
    for block in model.text.blocks:
        block.attn.context_parallel = cp


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
