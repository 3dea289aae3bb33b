"""Exceptions raised for bad user input.

Every error a user can trigger (a missing file, a corrupt video, a checkpoint with wrong keys) is one of
these, with a message that says what was wrong and what to do. They subclass ``ValueError`` so callers
that only know the standard library still catch them. Internal invariants use ``assert`` instead.
"""


class Molmo2Error(ValueError):
    """Base class of every user-facing error in molmo2."""


class MediaError(Molmo2Error):
    """An image or video could not be read or is unusable (missing, empty, corrupt, unsupported)."""


class CheckpointError(Molmo2Error):
    """A checkpoint directory is missing files, has unexpected or mis-shaped tensors, or is truncated."""


class ConfigError(Molmo2Error):
    """A configuration is invalid or describes a model this package does not know."""
