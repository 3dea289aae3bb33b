"""Inference: token generation with a KV cache (generate.py)."""

from molmo2.inference.generate import Generated, SamplingParams, generate

__all__ = ["Generated", "SamplingParams", "generate"]
