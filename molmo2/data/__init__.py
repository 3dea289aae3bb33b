"""Datasets as data: the example schema (stdlib only) and the synthetic tiny-shapes generator."""

from molmo2.data.schema import TASK_KINDS, Annotation, DataError, Example, Media, read_jsonl, write_jsonl

__all__ = ["TASK_KINDS", "Annotation", "DataError", "Example", "Media", "read_jsonl", "write_jsonl"]
