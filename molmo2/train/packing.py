"""Packing: fill training rows with whole examples up to a token budget and a crop budget.

A pure, separately tested component (no torch): it sees only ``(key, num_tokens, num_crops)`` and
decides which examples share a row.

Algorithm (the official one, training.md §3.2, plus ageing): examples enter a buffer of
``buffer_size``; once it is full, a 0/1 two-dimensional knapsack over the buffer picks the subset
that maximizes ``tokens + image_weight * crops`` subject to ``tokens <= max_tokens`` and
``crops <= max_crops``; that subset becomes one row. Token lengths are quantized to ``granularity``
(``max_tokens // 512``) so the DP table stays ``[buffer+1, 513, max_crops+1]``.

Trade-offs, measured in bench/bench_packing.py: a larger buffer fills rows better but delays
examples and costs more DP time; without ageing an awkward (very long) example could wait forever,
so an example that has been passed over ``max_age`` times is forced into the next row first.
An example too large for any row on its own is rejected by ``add`` (the caller counts and skips it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PackItem:
    key: object  # identifies the example (e.g. its stream index); must be JSON-serializable for state
    num_tokens: int
    num_crops: int = 0
    age: int = 0


@dataclass
class Packer:
    max_tokens: int
    max_crops: int = 0
    buffer_size: int = 48
    image_weight: float = 1.0
    max_age: int = 64
    granularity: int = 0  # 0 -> max(1, max_tokens // 512)
    buffer: list[PackItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_tokens <= 0 or self.max_crops < 0 or self.buffer_size < 1:
            raise ValueError("Packer needs max_tokens > 0, max_crops >= 0 and buffer_size >= 1")
        if self.granularity <= 0:
            self.granularity = max(1, self.max_tokens // 512)

    def fits(self, num_tokens: int, num_crops: int) -> bool:
        return num_tokens <= self.max_tokens and num_crops <= self.max_crops

    def add(self, item: PackItem) -> list[PackItem] | None:
        """Buffer ``item``; return a packed row (list of items) once the buffer is full, else None."""
        if not self.fits(item.num_tokens, item.num_crops):
            raise ValueError(f"example {item.key!r} ({item.num_tokens} tokens, {item.num_crops} crops) does not fit "
                             f"a row of {self.max_tokens} tokens and {self.max_crops} crops")
        self.buffer.append(item)
        if len(self.buffer) < self.buffer_size:
            return None
        return self.pop_row()

    def pop_row(self) -> list[PackItem]:
        """Solve the knapsack over the current buffer and remove the chosen items."""
        assert self.buffer
        forced = [i for i, it in enumerate(self.buffer) if it.age >= self.max_age]
        forced = forced[:1] if forced else []
        chosen = self._solve(forced)
        row = [self.buffer[i] for i in chosen]
        for i in sorted(chosen, reverse=True):
            del self.buffer[i]
        for it in self.buffer:
            it.age += 1
        return row

    def flush(self) -> list[list[PackItem]]:
        rows = []
        while self.buffer:
            rows.append(self.pop_row())
        return rows

    def _solve(self, forced: list[int]) -> list[int]:
        g = self.granularity
        T = self.max_tokens // g  # quantized lengths are rounded up, so the floor budget is safe
        C = self.max_crops
        tq0, c0 = 0, 0
        for i in forced:
            tq0 += -(-self.buffer[i].num_tokens // g)
            c0 += self.buffer[i].num_crops
        cand = [i for i in range(len(self.buffer)) if i not in forced]
        tq = np.array([-(-self.buffer[i].num_tokens // g) for i in cand], np.int64)
        cr = np.array([self.buffer[i].num_crops for i in cand], np.int64)
        val = np.array([self.buffer[i].num_tokens + self.image_weight * self.buffer[i].num_crops for i in cand],
                       np.float64)
        Tb, Cb = T - tq0, C - c0
        # best[t, c]: best value with quantized tokens <= t and crops <= c; keep[i] records choices
        best = np.zeros((Tb + 1, Cb + 1), np.float64)
        keep = np.zeros((len(cand), Tb + 1, Cb + 1), bool)
        for i in range(len(cand)):
            ti, ci = tq[i], cr[i]
            if ti > Tb or ci > Cb:
                continue
            shifted = np.full_like(best, -1.0)
            shifted[ti:, ci:] = best[: Tb + 1 - ti, : Cb + 1 - ci] + val[i]
            better = shifted > best
            keep[i] = better
            best = np.where(better, shifted, best)
        chosen = []
        t, c = Tb, Cb
        for i in range(len(cand) - 1, -1, -1):
            if keep[i, t, c]:
                chosen.append(cand[i])
                t -= tq[i]
                c -= cr[i]
        if not chosen and not forced:
            chosen = [0]  # cannot happen for items that fit, kept for safety
        return forced + chosen[::-1]

    def state_dict(self) -> dict:
        return {"buffer": [[it.key, it.num_tokens, it.num_crops, it.age] for it in self.buffer]}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = [PackItem(k, n, c, a) for k, n, c, a in state["buffer"]]
