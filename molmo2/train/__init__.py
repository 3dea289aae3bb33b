"""Training: data stream, message trees, packing, weighted loss, per-part optimizer, FSDP2, recipes.

Entry points: ``molmo2 train --recipe NAME [--set key=value ...]`` and ``Trainer(TrainConfig).fit()``.
"""
