"""Checkpoint I/O: the hub key table (hf.py) and sharded safetensors reading/writing (io.py)."""

from molmo2.checkpoint.io import load_model, read_config, resolve_model_dir, save_pretrained

__all__ = ["load_model", "read_config", "resolve_model_dir", "save_pretrained"]
