"""The one attention entry point: PyTorch SDPA, with grouped-query heads handled inside the kernel.

Every attention in the model (ViT self-attention, connector pooling, LLM self-attention) goes through
``attend``. ``mask`` is either a boolean tensor (inference: causal + visual block + padding) or a
:class:`SegmentMask`, the structure of packed training rows, which is never expanded into a dense
``[S, S]`` mask per row:

- on CPU (and whenever FlexAttention is unavailable) each packed example is attended separately with
  a boolean mask of its own length only (``sum L_i^2`` bits instead of ``S^2`` floats), like varlen
  kernels do;
- on CUDA the same rule is compiled into a FlexAttention ``BlockMask`` (blocks that are fully masked
  are skipped, so the cost also drops with the packing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class SegmentMask:
    """Who may attend to whom in packed rows of message trees.

    Per token: ``example_ids [B, S]`` (which packed example; -1 = padding), ``branch_ids [B, S]`` (0 =
    the example's shared prefix: BOS + visual tokens; k >= 1 = its k-th conversation branch) and
    ``is_visual [B, S]``. Query q may attend key k iff they are in the same example, k is in the prefix
    or in q's own branch, and k <= q, or both are visual tokens (bidirectional within one example).
    """

    example_ids: torch.Tensor
    branch_ids: torch.Tensor
    is_visual: torch.Tensor
    backend: str = "auto"  # "segments" | "flex" | "auto" (flex on CUDA)
    _local: dict = field(default_factory=dict, repr=False)
    _block_mask: object = field(default=None, repr=False)

    def segments(self) -> list[tuple[int, int, int]]:
        """``(row, start, end)`` of every packed example; examples are contiguous within a row."""
        if "segments" not in self._local:
            out = []
            ex = self.example_ids.cpu()
            for b in range(ex.shape[0]):
                row = ex[b]
                change = torch.nonzero(row[1:] != row[:-1]).flatten().tolist()
                starts = [0] + [c + 1 for c in change]
                ends = [c + 1 for c in change] + [row.shape[0]]
                out += [(b, s, e) for s, e in zip(starts, ends) if row[s] >= 0]
            self._local["segments"] = out
        return self._local["segments"]

    def local_mask(self, b: int, start: int, end: int) -> torch.Tensor:
        """Boolean ``[L, L]`` mask of one example (cached: every layer reuses it)."""
        key = (b, start, end)
        if key not in self._local:
            br = self.branch_ids[b, start:end]
            vis = self.is_visual[b, start:end]
            pos = torch.arange(end - start, device=br.device)
            allowed = (pos[None, :] <= pos[:, None]) | (vis[:, None] & vis[None, :])
            allowed &= (br[None, :] == 0) | (br[None, :] == br[:, None])
            self._local[key] = allowed
        return self._local[key]

    def dense(self) -> torch.Tensor:
        """The full boolean ``[B, 1, S, S]`` mask (tests and debugging only)."""
        ex, br, vis = self.example_ids, self.branch_ids, self.is_visual
        S = ex.shape[1]
        pos = torch.arange(S, device=ex.device)
        same = (ex[:, :, None] == ex[:, None, :]) & (ex[:, :, None] >= 0)
        order = (pos[None, None, :] <= pos[None, :, None]) | (vis[:, :, None] & vis[:, None, :])
        branch = (br[:, None, :] == 0) | (br[:, None, :] == br[:, :, None])
        allowed = same & order & branch
        allowed |= torch.eye(S, dtype=torch.bool, device=ex.device)[None]  # keep padding rows finite
        return allowed[:, None]

    def use_flex(self, device: torch.device) -> bool:
        if self.backend == "segments":
            return False
        if self.backend == "flex":
            return True
        return device.type == "cuda"

    def block_mask(self, num_heads: int):
        from torch.nn.attention.flex_attention import create_block_mask

        if self._block_mask is None:
            ex, br, vis = self.example_ids, self.branch_ids, self.is_visual
            B, S = ex.shape

            def mask_mod(b, h, q, k):
                same = (ex[b, q] == ex[b, k]) & (ex[b, q] >= 0)
                order = (k <= q) | (vis[b, q] & vis[b, k])
                branch = (br[b, k] == 0) | (br[b, k] == br[b, q])
                return (same & order & branch) | (q == k)

            self._block_mask = create_block_mask(mask_mod, B, None, S, S, device=ex.device)
        return self._block_mask


def _attend_segments(q, k, v, mask: SegmentMask, scale, gqa: bool) -> torch.Tensor:
    B, H, S, D = q.shape
    rows: list[list[torch.Tensor]] = [[] for _ in range(B)]
    filled = [0] * B
    for b, s, e in mask.segments():
        if s > filled[b]:
            rows[b].append(q.new_zeros(H, s - filled[b], D))
        m = mask.local_mask(b, s, e)
        o = F.scaled_dot_product_attention(q[b : b + 1, :, s:e], k[b : b + 1, :, s:e], v[b : b + 1, :, s:e],
                                           attn_mask=m, scale=scale, enable_gqa=gqa)
        rows[b].append(o[0])
        filled[b] = e
    for b in range(B):
        if filled[b] < S:
            rows[b].append(q.new_zeros(H, S - filled[b], D))
    return torch.stack([torch.cat(r, dim=1) for r in rows])


_FLEX: dict[str, object] = {}


def _flex(device: torch.device):
    """FlexAttention, compiled on CUDA (fused kernel); eager elsewhere (tests only: it materializes
    the scores)."""
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    if "cuda" not in _FLEX:
        _FLEX["cuda"] = torch.compile(flex_attention, dynamic=False)
    return _FLEX["cuda"]


def attend(
    q_BHQD: torch.Tensor,
    k_BKvSD: torch.Tensor,
    v_BKvSD: torch.Tensor,
    mask: torch.Tensor | SegmentMask | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention. ``mask`` is boolean (True = may attend), broadcastable to
    ``[B, H, Q, S]``, or a :class:`SegmentMask` for packed training rows (then Q == S). Key/value heads
    may be fewer than query heads (GQA). Returns ``[B, H, Q, D]``."""
    gqa = q_BHQD.shape[1] != k_BKvSD.shape[1]
    if isinstance(mask, SegmentMask):
        if mask.use_flex(q_BHQD.device):
            return _flex(q_BHQD.device)(q_BHQD, k_BKvSD, v_BKvSD, block_mask=mask.block_mask(q_BHQD.shape[1]),
                                  scale=scale, enable_gqa=gqa)
        return _attend_segments(q_BHQD, k_BKvSD, v_BKvSD, mask, scale, gqa)
    return F.scaled_dot_product_attention(q_BHQD, k_BKvSD, v_BKvSD, attn_mask=mask, scale=scale, enable_gqa=gqa)
