"""Preprocessing: images (crops), video (sampling + decoding), token layout and chat template."""

import importlib
from typing import Any

_LAZY = {"Batch", "Encoded", "Molmo2Processor", "PreparedMedia", "VideoSettings"}


def __getattr__(name: str) -> Any:
    # the processor needs torch; media.py, video.py, prompts.py and subtitles.py do not, so they can be
    # imported (e.g. by molmo2.viz) without pulling torch in
    if name in _LAZY:
        return getattr(importlib.import_module("molmo2.processing.processor"), name)
    raise AttributeError(f"module 'molmo2.processing' has no attribute {name!r}")

__all__ = ["Batch", "Encoded", "Molmo2Processor", "PreparedMedia", "VideoSettings"]
