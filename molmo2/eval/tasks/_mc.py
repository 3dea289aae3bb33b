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

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import official_choice, summarize_mc
from molmo2.eval.tasks._common import Item, ask, mc_prompt, score_items, text_of


class MultipleChoice:
    """A video multiple-choice benchmark: subclasses read their released layout in ``load`` and build
    each question with :meth:`item`; predicting and scoring are shared."""

    name = ""
    rule = "robust"
    instruction = ""  # the last line of the official prompt
    max_new_tokens = 12

    def item(self, item_id: str, video: Path, question: str, options: Sequence[str], answer: int,
             category: str | None = None, clip: tuple[float, float] | None = None) -> Item:
        """One question: the official prompt (question, ``A. option`` lines, instruction), the GT index."""
        if not video.is_file():
            raise Molmo2Error(f"{self.name}: video not found: {video}")
        options = [str(o) for o in options]
        return Item(id=item_id, media=video, medium="video", prompt=mc_prompt(question, options, self.instruction),
                    max_new_tokens=self.max_new_tokens, category=category, clip=clip,
                    gt={"options": options, "answer": int(answer)})

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
