"""Inference: token generation with a KV cache (generate.py) and the ``Molmo2`` pipeline (pipeline.py).

``Molmo2`` is imported lazily (``molmo2.inference.Molmo2``) so that generate-only users do not pay for it.
"""

from molmo2.inference.generate import Generated, SamplingParams, generate, prefill_cache

__all__ = ["Generated", "Molmo2", "SamplingParams", "generate", "prefill_cache"]


def __getattr__(name: str):
    if name == "Molmo2":
        from molmo2.inference.pipeline import Molmo2

        return Molmo2
    raise AttributeError(f"module 'molmo2.inference' has no attribute {name!r}")
