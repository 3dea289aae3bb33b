"""``Linear``: ``nn.Linear`` (same parameters, same names) with faster few-row products on the CPU.

A decode step multiplies one row (or one per batch row) by every weight of the decoder. torch runs
that ``[1, K] x [K, N]`` product as one single-threaded GEMV, which reaches about 17 GB/s of weights on
the 2-core CPU here, and a few rows no better. When the weight is stored column-major
(``load_model(decode_layout=True)``: ``weight.t()`` is a contiguous ``[K, N]``), the product splits into
``K / 64`` independent ``[rows, 64] x [64, N]`` products over contiguous blocks -- one ``bmm``, which
spreads them over the threads -- whose partial sums are added: about 27 GB/s for one row, so the
decode step is ~1.5x faster (``bench/bench_model.py``), and 1.1-2x faster than ``F.linear`` for 2-16
rows (batched decode, a short question on a cached prefix). Float32 only; the partial sums are added
in a different order than one GEMV would, so results differ from ``F.linear`` in the last bits (well
inside the 1e-4 parity tolerance; tested).

Every other case (more than 16 rows, row-major weights, other dtypes or devices, one thread, weights
under 128k elements) is plain ``nn.Linear``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BLOCK = 64
_MAX_ROWS = 16  # more rows: one GEMM is faster (measured: K x N = 768 x 4096, 32 rows)
_MIN_WEIGHTS = 1 << 17  # smaller products are faster as one GEMV (measured: K x N = 128 x 64, 256 x 256)


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        K = w.shape[1]
        rows = x.numel() // K if K else 0
        if (
            0 < rows <= _MAX_ROWS
            and K * w.shape[0] >= _MIN_WEIGHTS
            and w.stride() == (1, w.shape[0])
            and x.dtype == w.dtype == torch.float32
            and w.device.type == "cpu"
            and K % _BLOCK == 0
            and K >= 2 * _BLOCK
            and torch.get_num_threads() > 1
        ):
            n = K // _BLOCK
            xb = x.reshape(rows, n, _BLOCK).transpose(0, 1)  # [n, rows, 64]
            y = torch.bmm(xb, w.t().view(n, _BLOCK, w.shape[0])).sum(0)
            if self.bias is not None:
                y = y + self.bias
            return y.view(*x.shape[:-1], w.shape[0])
        return F.linear(x, w, self.bias)
