"""The text backbone: Qwen3-style (Molmo2-4B/8B) and OLMo-style (Molmo2-O-7B) decoders in one module.

Differences between the two are three switches of ``TextConfig``:

* ``norm_after``: pre-norm blocks (Qwen3) or OLMo-2/3 post-norm blocks (norm applied to each sublayer's
  output before the residual add);
* ``qk_norm_type``: RMSNorm per head over ``head_dim`` (qwen3) or over the full q/k projection (olmo);
* ``rope_scaling`` + ``rope_scaling_layers``: YaRN on chosen layers only, plain RoPE elsewhere (O-7B).

Projections are fused as the checkpoints store them: ``qkv`` = [q | k | v], ``up_gate`` = [up | gate].
The embedding table holds the base vocabulary plus Molmo2's extra tokens; the LM head covers only the
base vocabulary. RoPE is applied in fp32. A preallocated ``KVCache`` serves incremental decoding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from molmo2.config import TextConfig
from molmo2.model.attention import attend
from molmo2.model.linear import Linear


_SMALL_NORM = 4096  # elements: a few rows (decode steps)
_SCALARS: dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor]] = {}


def _small_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The fp32 formula in seven small kernels, four of them on the ``[..., 1]`` statistic and three in
    place: ~8 us on the CPU here against ~12 us for ``F.rms_norm``, which runs nine on a few rows (a decode
    step has 7 norms). Bitwise the same values (tested)."""
    scalars = _SCALARS.get((x.shape[-1], eps))
    if scalars is None:  # 0-dim tensors: a Python number would be wrapped into one at every call
        scalars = _SCALARS[x.shape[-1], eps] = (torch.tensor(float(x.shape[-1])), torch.tensor(eps))
    s = (x * x).sum(-1, keepdim=True)
    s.div_(scalars[0]).add_(scalars[1]).rsqrt_()
    return x * s * weight


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim, times ``weight``: ``[D]``, or any shape broadcast against ``x`` (``[H, D]``:
    a weight per head, as for the query and key heads normalized in one call)."""
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        if x.numel() <= _SMALL_NORM and x.device.type == "cpu" and not torch.is_grad_enabled():
            return _small_rms_norm(x, weight, eps)
        # one fused kernel, bitwise the same as the steps below in float32 (tested); it saves six
        # small ops per norm, which is most of a decode step's framework overhead
        if weight.dim() == 1:
            return F.rms_norm(x, weight.shape, weight, eps)
        return F.rms_norm(x, x.shape[-1:], None, eps) * weight
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def rope_inv_freq(cfg: TextConfig, scaled: bool) -> tuple[torch.Tensor, float]:
    """Inverse frequencies ``[head_dim/2]`` and the cos/sin multiplier, for plain RoPE or YaRN."""
    dim, base = cfg.head_dim, cfg.rope_theta
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float32, device="cpu") / dim)
    rs = cfg.rope_scaling
    if not scaled or rs is None or rs.get("rope_type", "default") == "default":
        return 1.0 / pos_freqs, 1.0
    # YaRN (Peng et al. 2023): blend interpolated and extrapolated frequencies by a linear ramp over dims.
    factor = rs.get("factor") or cfg.max_position_embeddings / rs["original_max_position_embeddings"]
    attention_factor = rs.get("attention_factor")
    if attention_factor is None:
        attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    beta_fast, beta_slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1
    original = rs["original_max_position_embeddings"]

    def correction_dim(num_rotations: float) -> float:
        return dim * math.log(original / (num_rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32, device="cpu") - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, float(attention_factor)


def apply_rope(x_BHTD: torch.Tensor, cos_B1TD: torch.Tensor, sin_B1TD: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE. ``sin_B1TD`` comes with its first half negated (``RopeTable``), so the
    rotation is one ``roll`` of the halves: ``[x1, x2] * cos + [x2, x1] * [-sin, sin]`` -- bitwise the
    same products as ``[-x2, x1] * sin``, with three ops fewer per call."""
    if x_BHTD.dtype != torch.float32:
        return apply_rope(x_BHTD.float(), cos_B1TD, sin_B1TD).to(x_BHTD.dtype)
    return x_BHTD * cos_B1TD + x_BHTD.roll(x_BHTD.shape[-1] // 2, dims=-1) * sin_B1TD


class RopeTable:
    """cos and (half-negated) sin of every position ``[max_len, head_dim]`` in fp32, grown on demand:
    a forward looks its positions up instead of computing the angles again (four ops fewer per step;
    the same values, as each entry is computed exactly as from the positions). Both methods give
    ``[B, 1, T, head_dim]``, which broadcasts over the heads."""

    def __init__(self, inv_freq: torch.Tensor, factor: float):
        self.inv_freq, self.factor = inv_freq, factor
        self.tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _table(self, device: torch.device, need: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The tables on ``device``, grown to at least ``need`` positions (in steps of 1024)."""
        cos, sin = self.tables.get(device, (None, None))
        if cos is None or cos.shape[0] < need:
            size = max(256, -(-need // 1024) * 1024)
            freqs = torch.arange(size, device=device).float()[:, None] * self.inv_freq.to(device)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            if self.factor != 1.0:
                cos, sin = cos * self.factor, sin * self.factor
            half = sin.shape[-1] // 2
            sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)
            self.tables[device] = (cos, sin)
        return cos, sin

    def lookup(self, position_ids_BT: torch.Tensor, bound: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin ``[B, 1, T, head_dim]``; ``bound``: a number no position reaches, when the caller
        knows one (saves reading the largest position back from the device)."""
        if bound is None:
            bound = int(position_ids_BT.max()) + 1 if position_ids_BT.numel() else 1
        cos, sin = self._table(position_ids_BT.device, bound)
        return F.embedding(position_ids_BT, cos)[:, None], F.embedding(position_ids_BT, sin)[:, None]

    def span(self, start: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin ``[1, 1, length, head_dim]`` of positions ``start, start + 1, ...`` (the same for
        every row): views of the table, no lookup."""
        cos, sin = self._table(device, start + length)
        return cos[None, None, start : start + length], sin[None, None, start : start + length]


class KVCache:
    """Preallocated keys/values for every layer: ``[L, B, KV, max_len, D]``. ``length`` counts cached
    positions; a forward writes at ``length`` and ``advance`` moves it once all layers are done."""

    def __init__(self, cfg: TextConfig, batch: int, max_len: int, dtype: torch.dtype, device: torch.device):
        shape = (cfg.num_layers, batch, cfg.num_kv_heads, max_len, cfg.head_dim)
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self._layers()
        self.max_len = max_len
        self.length = 0

    def _layers(self) -> None:
        self.k_layers, self.v_layers = self.k.unbind(0), self.v.unbind(0)  # views: no indexing per step

    def update(self, layer: int, k_BKTD: torch.Tensor, v_BKTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = k_BKTD.shape[2]
        start, end = self.length, self.length + T
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; {end} needed")
        k, v = self.k_layers[layer], self.v_layers[layer]
        k.narrow(2, start, T).copy_(k_BKTD)
        v.narrow(2, start, T).copy_(v_BKTD)
        return k.narrow(2, 0, end), v.narrow(2, 0, end)

    def advance(self, n: int) -> None:
        self.length += n

    def select(self, batch_idx: torch.Tensor) -> None:
        """Keep only the given batch rows (drop finished sequences)."""
        self.k, self.v = self.k[:, batch_idx], self.v[:, batch_idx]
        self._layers()


class TextAttention(nn.Module):
    # training with context parallelism only (set by ``molmo2.train.parallel.apply_context_parallel``):
    # this rank holds a slice of the row's tokens; Ulysses all-to-alls around ``attend`` give it all
    # tokens of a slice of the heads, and back
    context_parallel = None

    def __init__(self, cfg: TextConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.num_heads, self.num_kv, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        q_dim, kv_dim = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
        self.split = (q_dim, kv_dim, kv_dim)
        self.qkv = Linear(cfg.hidden_size, q_dim + 2 * kv_dim, bias=cfg.qkv_bias)
        self.out = Linear(q_dim, cfg.hidden_size, bias=False)
        self.per_head_norm = cfg.qk_norm_type == "qwen3"
        self.q_norm = RMSNorm(cfg.head_dim if self.per_head_norm else q_dim, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(cfg.head_dim if self.per_head_norm else kv_dim, cfg.rms_norm_eps)
        self._qk_weight: tuple | None = None

    def _qk_norm_weight(self) -> torch.Tensor:
        """The query heads' and key heads' norm weights stacked ``[H + KV, D]`` (no-grad calls only), kept
        between calls and rebuilt when either weight changes."""
        qw, kw = self.q_norm.weight, self.k_norm.weight
        key = (qw.data_ptr(), qw._version, kw.data_ptr(), kw._version)
        if self._qk_weight is None or self._qk_weight[0] != key:
            self._qk_weight = (key, torch.cat((qw.expand(self.num_heads, -1), kw.expand(self.num_kv, -1))))
        return self._qk_weight[1]

    def forward(self, x_BTD, cos, sin, mask, cache: KVCache | None) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        H, KV, D = self.num_heads, self.num_kv, self.head_dim
        qkv = self.qkv(x_BTD)
        if self.per_head_norm:
            qk = qkv[..., : (H + KV) * D].view(B, T, H + KV, D)
            if torch.is_grad_enabled():  # training: two calls, so each norm weight's gradient sums as before
                qk = torch.cat((self.q_norm(qk[:, :, :H]), self.k_norm(qk[:, :, H:])), dim=2)
            else:
                # the query and key heads lie side by side in the projection: normalized in one call, each
                # head with its own side's weights (elementwise, so the same values as two calls)
                qk = rms_norm(qk, self._qk_norm_weight(), self.q_norm.eps)
        else:
            q, k, _ = qkv.split(self.split, dim=-1)
            qk = torch.cat((self.q_norm(q).view(B, T, H, D), self.k_norm(k).view(B, T, KV, D)), dim=2)
        # one rotation for the query and key heads together (elementwise, so the same values)
        q, k = apply_rope(qk.transpose(1, 2), cos, sin).split((H, KV), dim=1)
        v = qkv[..., (H + KV) * D:].view(B, T, KV, D).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if self.context_parallel is None:
            out = attend(q, k, v, mask)
        else:
            q, k, v = self.context_parallel.seq_to_heads(q, k, v)
            out = self.context_parallel.heads_to_seq(attend(q, k, v, mask))
        return self.out(out.transpose(1, 2).reshape(B, T, -1))


class TextBlock(nn.Module):
    def __init__(self, cfg: TextConfig, layer: int):
        super().__init__()
        self.norm_after = cfg.norm_after
        # training only (``TextModel.set_dropout``): dropout on each residual branch's output, at every
        # position and/or only at the loss-bearing ones (the official recipe: 0.1 at response tokens
        # in pre-training, 0.1 everywhere in SFT); per element, inverted
        self.residual_dropout = self.response_dropout = 0.0
        self.attn = TextAttention(cfg, layer)
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.ff_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.up_gate = Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.down = Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        up, gate = self.up_gate(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)

    def dropout(self, y: torch.Tensor, drop_mask: torch.Tensor | None) -> torch.Tensor:
        if not self.training:
            return y
        if self.residual_dropout:
            y = F.dropout(y, self.residual_dropout, training=True)
        if self.response_dropout:
            if drop_mask is None:
                raise ValueError("response dropout needs the loss-bearing positions (drop_mask)")
            y = torch.where(drop_mask[..., None], F.dropout(y, self.response_dropout, training=True), y)
        return y

    def forward(self, x, cos, sin, mask, cache, drop_mask=None):
        if self.norm_after:
            x = x + self.dropout(self.attn_norm(self.attn(x, cos, sin, mask, cache)), drop_mask)
            return x + self.dropout(self.ff_norm(self.mlp(x)), drop_mask)
        x = x + self.dropout(self.attn(self.attn_norm(x), cos, sin, mask, cache), drop_mask)
        return x + self.dropout(self.mlp(self.ff_norm(x)), drop_mask)


class TextModel(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Parameter(torch.zeros(cfg.vocab_size + cfg.additional_vocab_size, cfg.hidden_size))
        self.blocks = nn.ModuleList(TextBlock(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        scaled_layers = cfg.rope_scaling_layers
        self.layer_scaled = [scaled_layers is None or i in scaled_layers for i in range(cfg.num_layers)]
        self.rope = {flag: RopeTable(*rope_inv_freq(cfg, flag)) for flag in set(self.layer_scaled)}

    def embed_tokens(self, input_ids_BT: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids_BT.clamp(min=0), self.embed)

    def set_dropout(self, residual: float = 0.0, response: float = 0.0) -> None:
        """Training-time residual dropout (see ``TextBlock.dropout``); no effect in eval mode."""
        for p in (residual, response):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"dropout rates must be in [0, 1), got {p}")
        for block in self.blocks:
            block.residual_dropout, block.response_dropout = residual, response

    def forward(self, x_BTD: torch.Tensor, position_ids_BT: torch.Tensor | int, mask, cache: KVCache | None = None,
                position_bound: int | None = None, drop_mask: torch.Tensor | None = None):
        """``position_ids_BT``: the positions, or an int ``p``: positions ``p, p + 1, ...`` in every row.
        ``position_bound``: a number larger than every position id, when the caller knows one.
        ``drop_mask [B, T]``: the loss-bearing positions, for response dropout (training)."""
        if isinstance(position_ids_BT, int):
            rope = {flag: table.span(position_ids_BT, x_BTD.shape[1], x_BTD.device) for flag, table in self.rope.items()}
        else:
            rope = {flag: table.lookup(position_ids_BT, position_bound) for flag, table in self.rope.items()}
        for block, scaled in zip(self.blocks, self.layer_scaled):
            x_BTD = block(x_BTD, *rope[scaled], mask, cache, drop_mask)
        if cache is not None:
            cache.advance(x_BTD.shape[1])
        return self.norm(x_BTD)
