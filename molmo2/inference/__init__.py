"""Inference: token generation with a KV cache (generate.py) and the ``Molmo2`` pipeline (pipeline.py).

``Molmo2`` (and ``ChatRequest``, one conversation of ``Molmo2.chat_batch``) is imported lazily
(``molmo2.inference.Molmo2``) so that generate-only users do not pay for it.
"""

from molmo2.inference.generate import Generated, SamplingParams, generate, prefill_cache

__all__ = ["ChatRequest", "Generated", "Molmo2", "SamplingParams", "generate", "prefill_cache"]


def __getattr__(name: str):
    if name in ("Molmo2", "ChatRequest"):
        from molmo2.inference import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'molmo2.inference' has no attribute {name!r}")
