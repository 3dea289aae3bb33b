"""Molmo2 architecture only: vision encoder, connector, text backbones, and their composition.

No checkpoint I/O, no preprocessing, no distributed code lives here; those wrap the model from outside.
"""

from molmo2.model.molmo2 import Molmo2Model, VisualInputs
from molmo2.model.text import KVCache

__all__ = ["KVCache", "Molmo2Model", "VisualInputs"]
