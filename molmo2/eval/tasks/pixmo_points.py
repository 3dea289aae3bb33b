"""PixMo-Points eval (``molmo2 eval --task pixmo-points``): point to every instance of a label in an image.

Released as the Hugging Face dataset ``allenai/pixmo-points-eval``, split ``test`` (images by URL);
official loader ``PixMoPointsEval`` (``olmo/data/pixmo_datasets.py``), eval name ``pointing_eval_v2``,
metric ``PointingEval`` (evaluation.md §7). Layout (``--data DIR``)::

    DIR/data/test-*.parquet (or DIR/test.jsonl)    rows: image_url, label, points [{"x", "y"}] in percent
                                                   (0-100), masks [N, H, W] (one boolean mask per point)
    DIR/images/<sha256 of image_url>               the images, named as the official download_pixmo_urls does

Prompt: the first ``pointing`` template, ``Point to {label}\\nPlease say 'There are none.' if it is not in
the image.`` with the label lower-cased (style ``pointing``, a demo style: no prefix), greedy, at most 192
new tokens. Score: :func:`~molmo2.eval.metrics.image_pointing_prf1` — Hungarian matching on pixel
distance, a hit is a matched point inside its instance's mask; GT pixels = percent x (W, H) / 100 with
(H, W) the masks' shape; points parsed at the image's size. Means over images; headline ``f1``.

Uncertain: the official eval draws one of the ``pointing`` templates per item with a seeded RNG (the
RNG state is not reproducible outside its data pipeline); we ask with the first, or with ``prompt_seed``
(``molmo2 eval --prompt-seed``) draw one per item reproducibly (``_templates.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import PRF1, image_pointing_prf1, mean_pointing
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
from molmo2.eval.tasks._templates import POINTING_TEMPLATES
from molmo2.grounding import Point, parse

LAYOUT = __doc__.split("::\n\n")[1].split("\n\n")[0]
POINT_PROMPT = POINTING_TEMPLATES[0]  # "Point to {label}\nPlease say 'There are none.' if it is not in the image."


class PixMoPoints:
    name = "pixmo-points"
    split = "test"
    max_new_tokens = 192
    prompt_seed: int | None = None

    def load(self, data: str | Path, limit: int | None = None) -> list[Item]:
        check_limit(limit)
        root = check_dir(data, self.name, LAYOUT)
        rows, source = read_records(root, self.split, self.name)
        where = f"{self.name} ({source})"
        items = []
        for k, row in enumerate(rows):
            url, label = field_of(row, "image_url", where), field_of(row, "label", where)
            image = pixmo_image(root / "images", url)
            masks = np.asarray(field_of(row, "masks", where), dtype=bool)
            pts = field_of(row, "points", where)
            size = image_size(image)
            if len(pts):
                if masks.ndim != 3 or len(masks) != len(pts):
                    raise Molmo2Error(f"{where}: row {k} has {len(pts)} points but masks of shape {masks.shape}; "
                                      "expected [N, H, W], one mask per point")
                h, w = masks.shape[1:]
                gt = np.array([[p["x"], p["y"]] for p in pts], dtype=np.float64) * np.array([w, h]) / 100
            else:
                gt, masks = np.zeros((0, 2)), np.zeros((0, size[1], size[0]), dtype=bool)
            items.append(Item(id=f"{k}", media=image, medium="image",
                              prompt=pick_template(POINTING_TEMPLATES, f"{k}", self.prompt_seed).format(label=label.lower()), max_new_tokens=self.max_new_tokens,
                              size=size, gt={"points": gt, "masks": masks}))
            if limit is not None and len(items) >= limit:
                break
        return items

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        points = parse(text_of(item, record), item.size, video=False).points
        s = image_pointing_prf1(points, item.gt["points"], item.gt["masks"])
        return s.to_row()

    def example(self, item: Item, record: Mapping[str, Any], row: Mapping[str, Any]) -> Any:
        true = [Point(float(x), float(y)) for x, y in item.gt["points"]]
        mask = item.gt["masks"].any(axis=0) if len(item.gt["masks"]) else None
        return grounded_example(item, record, true, item.prompt.splitlines()[0], mask=mask)

    @staticmethod
    def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
        return mean_pointing([PRF1.from_row(r) for r in rows])

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score_items(self.name, items, predictions, self.score_one, self.summarize, "f1")


__all__ = ["POINT_PROMPT", "PixMoPoints"]
