"""Point-Bench (PointArena; ``molmo2 eval --task point-bench``): point where a request says, all points must land.

Released as the Hugging Face dataset ``PointArena/pointarena-data`` (``data.json``, ``selected_images.zip``,
``selected_masks.zip``); official loader ``PointBench`` (``olmo/data/academic_image_datasets.py``), metric
``PointBenchEval`` (evaluation.md §7). Layout (``--data DIR``, the unzipped release)::

    DIR/data.json                                   [{"image_filename", "mask_filename", "category",
                                                      "user_input", ...}]; rows without mask_filename are skipped
    DIR/selected_images/{category}/{image_filename}
    DIR/selected_masks/{category}/{mask_filename}   a pixel is in the mask if any channel is > 127

Prompt: ``user_input`` verbatim (style ``pointing``, a demo style: no prefix), greedy, at most 256 new
tokens. Score: :func:`~molmo2.eval.metrics.point_bench_success` — at least one point and every point
inside the mask (coordinates truncated), points parsed at the image's size; per category the mean, and
``average`` = the unweighted mean of the five category means (the headline; NaN while a category has no
item, so a partial run cannot pass for a full one). No count check for "counting", as officially.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import (
    POINT_BENCH_CATEGORIES,
    point_bench_mask,
    point_bench_scores,
    point_bench_success,
)
from molmo2.eval.tasks._common import (
    Item,
    ask,
    check_dir,
    check_limit,
    field_of,
    grounded_example,
    image_size,
    need_file,
    read_json,
    score_items,
    text_of,
)
from molmo2.grounding import parse

LAYOUT = __doc__.split("::\n\n")[1].split("\n\n")[0]


class PointBench:
    name = "point-bench"
    max_new_tokens = 256

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        rows = read_json(need_file(root / "data.json", f"{self.name} annotations (data.json)"))
        if not isinstance(rows, list):
            raise Molmo2Error(f"{root / 'data.json'}: expected a list of items")
        where = f"{self.name} ({root / 'data.json'})"
        items = []
        for k, row in enumerate(rows):
            if "mask_filename" not in row:
                continue
            cat = field_of(row, "category", where)
            if cat not in POINT_BENCH_CATEGORIES:
                raise Molmo2Error(f"{where}: item {k} has category {cat!r}; expected one of {POINT_BENCH_CATEGORIES}")
            image = need_file(root / "selected_images" / cat / field_of(row, "image_filename", where), "image")
            mask = need_file(root / "selected_masks" / cat / row["mask_filename"], "mask")
            items.append(Item(id=f"{cat}/{k}", media=image, medium="image", prompt=field_of(row, "user_input", where),
                              max_new_tokens=self.max_new_tokens, category=cat, size=image_size(image),
                              gt={"mask": mask}))
            if limit is not None and len(items) >= limit:
                break
        return items

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        from PIL import Image

        with Image.open(item.gt["mask"]) as im:
            mask = point_bench_mask(np.asarray(im))
        points = parse(text_of(item, record), item.size, video=False).points
        return {"success": point_bench_success(points, mask, size=item.size), "num_pred": len(points)}

    def example(self, item: Item, record: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        """The answer's points over the target mask (tinted): Point-Bench has no true points."""
        return grounded_example(item, record, [], f"{item.category}: {item.prompt}", mask=item.gt["mask"])

    @staticmethod
    def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": float(np.mean([r["success"] for r in rows]))}

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        out = score_items(self.name, items, predictions, self.score_one, self.summarize, "accuracy")
        if "all" in out["groups"]:  # the official numbers: five category means and their mean
            out["groups"]["all"].update(point_bench_scores((r["category"], r["success"]) for r in out["per_item"]))
            out["headline"]["all"] = {"metric": "average", "value": out["groups"]["all"]["average"]}
        return out


__all__ = ["PointBench"]
