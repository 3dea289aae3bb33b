"""molmo2: Molmo2 vision-language models in plain PyTorch.

The public API is re-exported here lazily so that ``import molmo2`` stays cheap (no torch import):
``molmo2.Molmo2`` (the pipeline: ask / point / count / track / caption / chat) loads torch on first use.
"""

from molmo2.errors import CheckpointError, ConfigError, MediaError, Molmo2Error

__all__ = ["CheckpointError", "ConfigError", "MediaError", "Molmo2", "Molmo2Error", "__version__"]
__version__ = "0.1.0"

_LAZY = {"Molmo2": "molmo2.inference.pipeline"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molmo2' has no attribute {name!r}")
