"""Token generation: one prefill (vision + prompt) into a preallocated KV cache, then one token at a time.

Works on token ids only; the processor owns text and media. Greedy by default; temperature, top-k and
top-p sampling with an optional seed; stops on EOS, on a caller-supplied stop check (for stop
strings), or at ``max_new_tokens``. Several prompts run as one left-padded batch; finished rows keep
stepping with a pad token (cheaper than reshaping the cache) and their output is cut at the stop. Each row
may have its own stop check, and ``on_row_done`` hears of a row as soon as it ends, so that a caller
batching unrelated requests (``Molmo2.chat_batch``) can answer a short one before its batch mates finish.

``prefill_cache`` + ``generate(..., cache=)`` reuse a shared prompt prefix (e.g. the visual tokens of a
video asked about several times): the prefix's keys/values are computed once and every later prompt
that starts with it only prefills its own remaining tokens. This is exact, because no token of the
prefix attends to anything after it (visual tokens attend bidirectionally only among themselves).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from molmo2.model import KVCache, Molmo2Model, VisualInputs


@dataclass
class SamplingParams:
    max_new_tokens: int = 448
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None
    stop_token_ids: Sequence[int] = ()
    stop_strings: Sequence[str] = ()

    def validate(self) -> SamplingParams:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        return self


@dataclass
class Generated:
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS / stop token / stop string) or "length"
    stats: dict = field(default_factory=dict)


def sample_next(logits_BV: torch.Tensor, p: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    if p.temperature == 0:
        return logits_BV.argmax(-1)
    logits = logits_BV.float() / p.temperature
    if p.top_k:
        kth = torch.topk(logits, min(p.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if p.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > p.top_p  # keep the smallest prefix reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(
    model: Molmo2Model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    visual: VisualInputs | None = None,
    params: SamplingParams | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    stop_check: Callable[[list[int]], bool] | Sequence[Callable[[list[int]], bool]] | None = None,
    visual_features: torch.Tensor | None = None,
    cache: KVCache | None = None,
    on_row_done: Callable[[int, Generated], None] | None = None,
) -> list[Generated]:
    """Generate for a batch ``input_ids [B, T]`` (left-padded when ``attention_mask`` has zeros).

    ``stop_check(tokens)`` is called on a row's generated ids after each step (e.g. to detect stop
    strings in the decoded text); returning True ends that row. A sequence of ``B`` checks gives each
    row its own. ``on_row_done(b, generated)`` is called once per row when it ends (EOS, its stop check,
    or the last step), with that row's ids and finish reason and the timings so far.

    ``cache``: a KV cache (from ``prefill_cache``) already holding the first ``cache.length`` tokens
    of ``input_ids`` (no padding); only the rest is prefilled, so ``visual``/``visual_features`` must
    belong to the rest (usually: none). Generation writes on into it; the caller rewinds
    ``cache.length`` to reuse the prefix again. It needs room for ``T + max_new_tokens`` positions."""
    p = (params or SamplingParams()).validate()
    device = model.device
    input_ids = input_ids.to(device)
    B, T = input_ids.shape
    past = 0
    if cache is not None:
        past = cache.length
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("a prefilled cache cannot be combined with left padding")
        if not 0 < past < T:
            raise ValueError(f"the cache holds {past} positions; the prompt must be longer than that ({T} tokens)")
        if cache.max_len < T + p.max_new_tokens:
            raise ValueError(f"the cache holds at most {cache.max_len} positions; {T + p.max_new_tokens} needed")
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
        if bool(attention_mask.all()):
            attention_mask = None
    if stop_check is not None and not callable(stop_check) and len(stop_check) != B:
        raise ValueError(f"{len(stop_check)} stop checks for a batch of {B} rows; pass one, or one per row")
    stops = set(p.stop_token_ids) | ({eos_token_id} if eos_token_id is not None else set())
    generator = None
    if p.seed is not None:
        generator = torch.Generator(device=device).manual_seed(p.seed)

    if cache is None:
        cache = KVCache(model.cfg.text, B, T + p.max_new_tokens, model.dtype, device)
    t0 = time.perf_counter()
    logits = model(input_ids[:, past:], visual=visual.to(device) if visual is not None else None,
                   attention_mask=attention_mask, cache=cache, visual_features=visual_features,
                   logits_to_keep=1)[:, -1]
    t_prefill = time.perf_counter() - t0

    def row_done(b: int) -> None:
        if on_row_done is not None:
            decode_s = time.perf_counter() - t0 - t_prefill
            on_row_done(b, Generated(list(outputs[b]), reasons[b], {
                "prefill_s": t_prefill, "decode_s": decode_s, "prompt_tokens": T, "new_tokens": len(outputs[b]),
                "cached_tokens": past}))

    outputs: list[list[int]] = [[] for _ in range(B)]
    reasons = ["length"] * B
    # oneDNN's single-row bf16 matmul is ~2.5x slower than PyTorch's own CPU kernel (measured in
    # bench/bench_model.py); the prefill keeps oneDNN, where it is much faster.
    slow_onednn = device.type == "cpu" and model.dtype == torch.bfloat16 and B == 1
    with torch.backends.mkldnn.flags(enabled=False) if slow_onednn else contextlib.nullcontext():
        _decode_loop(model, p, logits, attention_mask, cache, outputs, reasons, stops, generator,
                     pad_token_id, stop_check, row_done)
    elapsed = time.perf_counter() - t0
    n_new = sum(len(o) for o in outputs)
    stats = {"prefill_s": t_prefill, "decode_s": elapsed - t_prefill, "prompt_tokens": T, "new_tokens": n_new,
             "cached_tokens": past}
    return [Generated(o, r, stats) for o, r in zip(outputs, reasons)]


@torch.inference_mode()
def prefill_cache(
    model: Molmo2Model,
    prefix_ids: torch.Tensor,
    visual_features: torch.Tensor | None = None,
    max_len: int | None = None,
) -> KVCache:
    """Keys/values of a prompt prefix ``prefix_ids [1, P]`` (with its visual features, one per
    ``<im_patch>``), in a cache of ``max_len`` positions (default ``P``) for ``generate(..., cache=)``.

    The prefix must end where no later token can change it: after the last visual token."""
    P = prefix_ids.shape[1]
    cache = KVCache(model.cfg.text, prefix_ids.shape[0], max(max_len or P, P), model.dtype, model.device)
    model(prefix_ids.to(model.device), cache=cache, visual_features=visual_features, logits_to_keep=1)
    return cache


def _decode_loop(model, p, logits, attention_mask, cache, outputs, reasons, stops, generator,
                 pad_token_id, stop_check, row_done) -> None:
    B = len(outputs)
    checks = [stop_check] * B if stop_check is None or callable(stop_check) else list(stop_check)
    finished = [False] * B  # per-row flags kept in Python: no tensor op per row and step
    for step in range(p.max_new_tokens):
        next_ids = sample_next(logits, p, generator)
        if any(finished):  # finished rows keep stepping with the pad token
            next_ids = next_ids.masked_fill(torch.tensor(finished, device=next_ids.device), pad_token_id)
        for b, tok in enumerate(next_ids.tolist()):
            if finished[b]:
                continue
            if tok in stops:
                stop = True
            else:
                outputs[b].append(tok)
                stop = checks[b] is not None and bool(checks[b](outputs[b]))
            if stop:
                finished[b], reasons[b] = True, "stop"
                row_done(b)
        if all(finished) or step == p.max_new_tokens - 1:
            for b in range(B):
                if not finished[b]:  # ended by the length limit
                    row_done(b)
            break
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(B, 1)], dim=1)
        logits = model(next_ids[:, None], attention_mask=attention_mask, cache=cache)[:, -1]
