"""The shared half of the multiple-choice video QA adapters (NeXTQA, MVBench, PerceptionTest).

An item's ``gt`` holds ``options`` (texts) and ``answer`` (0-based index); the answer text is read with one
of the official rules of :func:`molmo2.eval.metrics.official_choice` (``rule``), never with a random
fallback: where the official code guesses, we count the item wrong and report the ``parse_failure`` rate
instead, so numbers are reproducible (evaluation.md §9). ``accuracy`` (the headline) is the plain mean
over items, as officially. For a rule that guesses (NeXTQA's) the groups also report
``accuracy_random_fallback``: the official accuracy in expectation, an unparsed item counting
``1 / number of options`` (``summarize_mc``), which is what the official code scores on average.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from molmo2.eval.metrics import official_choice, summarize_mc
from molmo2.eval.tasks._common import Item, ask, score_items, text_of


class MultipleChoice:
    name = ""
    rule = "robust"

    def predict(self, pipe: Any, item: Item, **options: Any) -> dict[str, Any]:
        return ask(pipe, item, **options)

    def score_one(self, item: Item, record: Mapping[str, Any]) -> dict[str, Any]:
        choice = official_choice(text_of(item, record), item.gt["options"], self.rule)
        return {"choice": choice, "answer": item.gt["answer"], "correct": choice == item.gt["answer"],
                "num_options": len(item.gt["options"])}

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        return summarize_mc([r["choice"] for r in rows], [r["answer"] for r in rows], self.rule,
                            num_options=[r["num_options"] for r in rows])

    def score(self, items: Iterable[Item], predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score_items(self.name, items, predictions, self.score_one, self.summarize, "accuracy")


__all__ = ["MultipleChoice"]
