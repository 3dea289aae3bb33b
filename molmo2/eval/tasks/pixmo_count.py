"""PixMo-Count (``molmo2 eval --task pixmo-count``): count the instances of a label in an image.

Scored, as CountBenchQA (``countbench_qa.py``), by the official ``PointCountEval`` (evaluation.md §8): the
predicted count is the **number of points** in the answer (its text number is ignored), ``correct`` =
exact (the headline), ``close`` = off by at most 1, per-GT-count accuracies ``correct_{k}`` and their mean
``per_category_average`` (:func:`~molmo2.eval.metrics.image_count_score`, ``summarize_counts``). Greedy,
at most 192 new tokens; style ``point_count`` (a demo style: no prefix).

Hugging Face ``allenai/pixmo-count``, split ``validation`` (eval name ``pixmo_count_counting:validation``),
images by URL; official loader ``PixMoCount`` (``olmo/data/pixmo_datasets.py``). Layout (``--data DIR``)::

    DIR/data/validation-*.parquet (or DIR/validation.jsonl)   rows: image_url, label, count
    DIR/images/<sha256 of image_url>                          as the official download_pixmo_urls stores them

Prompt: the first ``point_count`` template, ``How many {label} are there?`` (label lower-cased).
Uncertain: the official eval draws one of the ``point_count`` templates per item with a seeded RNG (its
state is not reproducible outside that data pipeline); we ask with the first, or with ``prompt_seed``
(``molmo2 eval --prompt-seed``) draw one per item reproducibly (``_templates.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from molmo2.eval.metrics import CountScore, image_count_score, summarize_counts
from molmo2.eval.tasks._common import (
    Item,
    ask,
    check_dir,
    check_limit,
    field_of,
    grounded_example,
    image_size,
    pick_template,
    pixmo_image,
    read_records,
    score_items,
    text_of,
)
from molmo2.eval.tasks._templates import POINT_COUNT_TEMPLATES
from molmo2.grounding import parse

COUNT_PROMPT = POINT_COUNT_TEMPLATES[0]  # "How many {label} are there?"
LAYOUT = __doc__.split("::\n\n")[1].split("\n\n")[0]


class ImageCount:
    """The shared half of the image counting tasks: predict, the official score and summary."""

    name = ""
    max_new_tokens = 192

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        points = parse(text_of(item, record), item.size, video=False).points
        c = image_count_score(len(points), item.gt["count"])
        return {"correct": c.correct, "close": c.close, "valid": c.valid, "pred": c.pred, "gt": c.gt}

    def example(self, item: Item, record: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        return grounded_example(item, record, [], f"{item.prompt} {row['pred']} points, true count {row['gt']}")

    @staticmethod
    def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
        return summarize_counts([CountScore(r["correct"], r["close"], r["valid"], r["pred"], r["gt"]) for r in rows],
                                medium="image")

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score_items(self.name, items, predictions, self.score_one, self.summarize, "correct")


class PixMoCount(ImageCount):
    name = "pixmo-count"
    split = "validation"
    prompt_seed: int | None = None

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        rows, source = read_records(root, self.split, self.name)
        where = f"{self.name} ({source})"
        items = []
        for k, row in enumerate(rows):
            label = field_of(row, "label", where)
            image = pixmo_image(root / "images", field_of(row, "image_url", where))
            items.append(Item(id=str(k), media=image, medium="image", prompt=pick_template(POINT_COUNT_TEMPLATES, str(k), self.prompt_seed).format(label=label.lower()),
                              max_new_tokens=self.max_new_tokens, size=image_size(image),
                              gt={"count": int(field_of(row, "count", where))}))
            if limit is not None and len(items) >= limit:
                break
        return items


__all__ = ["COUNT_PROMPT", "ImageCount", "PixMoCount"]
