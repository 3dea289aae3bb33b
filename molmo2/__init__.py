"""molmo2: Molmo2 vision-language models in plain PyTorch.

The public API is re-exported here lazily so that ``import molmo2`` stays cheap (no torch import).
"""

from molmo2.errors import CheckpointError, ConfigError, MediaError, Molmo2Error

__all__ = ["CheckpointError", "ConfigError", "MediaError", "Molmo2Error", "__version__"]
__version__ = "0.1.0"
