"""Preprocessing: images (crops), video (sampling + decoding), token layout and chat template."""

from molmo2.processing.processor import Batch, Encoded, Molmo2Processor, PreparedMedia, VideoSettings

__all__ = ["Batch", "Encoded", "Molmo2Processor", "PreparedMedia", "VideoSettings"]
