"""Question answering: multiple-choice answer extraction and VQA-style short-answer scoring.

Multiple choice. The official evaluators each use their own parser (evaluation.md §9), and several fall
back to a **random, unseeded** letter when nothing parses. :func:`extract_choice` is one robust parser
that returns ``None`` instead of guessing, so a run reports its parse failures instead of hiding them in
noise. The official rules are available by name for exact reproduction (``mc_correct(rule=...)``):

==================  ===========================================================================
rule                official behaviour (function in ``olmo/eval``)
==================  ===========================================================================
``robust``          default: :func:`extract_choice` (no random fallback)
``em_start``        MVBench, MotionBench, MLVU-MC, VideoEvalPro, LVBench: the answer starts with the
                    GT letter (``VqaEval("em_start")``; "A ball is seen" counts as "A")
``perception_test`` PerceptionTest: first ``\\b([A-D])\\b`` (``select_perception_test_option``)
``nextqa``          NeXTQA: MMMU-style; "(A)" > " A " > "A." > option text (if > 5 words); the
                    candidate occurring **last** wins; random fallback (``nextqa_mc``)
``egoschema``       EgoSchema: MMMU-style, all candidate kinds at once, the **first** wins; random
                    fallback (``select_ego_schema_option``)
``videomme``        VideoMME: strip answer prefixes; > 10 words without A-D -> unparsed; first A-D.
                    Unparsed items are **dropped from the denominator** (``VideoMMEEval``)
``longvideobench``  LongVideoBench: strip prefixes; first A-E; random fallback
==================  ===========================================================================

Random fallbacks take an explicit ``rng`` (``random.Random``); without one they return ``None``.
:func:`summarize_mc` reports accuracy (an unparsed item is wrong) and the parse-failure rate; with
``rule="videomme"`` it also reports the official accuracy over parsed items only; for the rules with a
random fallback (``RANDOM_FALLBACK_RULES``) and the number of options per item it also reports
``accuracy_random_fallback``, the official accuracy **in expectation** (an unparsed item counts
``1 / num_options``, the chance its random letter is right): the number the official code gives on
average, without its run-to-run noise.

Short answers: VQA v2 normalization (punctuation, articles, number words, contractions) and
``min(#matching references / 3, 1)`` (``vqa_score``), after the official answer clean-up (text after
``Answer:``; for multi-line answers the most frequent line; whitespace collapsed).
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter
from collections.abc import Sequence

from molmo2.errors import Molmo2Error

LETTERS = string.ascii_uppercase
MC_RULES: tuple[str, ...] = ("robust", "em_start", "perception_test", "nextqa", "egoschema", "videomme",
                             "longvideobench")

_PREFIXES = re.compile(
    r"^\s*(?:the\s+)?(?:best|correct|right|final)?\s*(?:answer|option|choice)\s*(?:is|would be|:)?\s*:?\s*",
    re.IGNORECASE,
)


def _num_options(options: Sequence[str] | int) -> int:
    n = options if isinstance(options, int) else len(options)
    if isinstance(n, bool) or not 2 <= n <= 26:
        raise Molmo2Error(f"multiple choice needs 2..26 options, got {n!r}")
    return n


def extract_choice(text: str, options: Sequence[str] | int) -> int | None:
    """The 0-based option an answer picks, or None. ``options`` = the option texts, or just their number.

    Accepted, in this order: a leading letter (``B``, ``(B)``, ``B.``, ``B)``, ``B:`` after an optional
    "The answer is"); a letter in parentheses anywhere; ``answer/option (is) B``; a lone capital letter
    that is a valid option when it is the only one in the text; the exact text of exactly one option.
    Letters outside the option range are ignored. A leading capital followed by a space is read as the
    letter, as the official ``em_start`` does ("A ball is seen" picks A when there is an option A).
    """
    if not isinstance(text, str):
        raise Molmo2Error(f"the answer must be a string, got {type(text).__name__}")
    n = _num_options(options)
    valid = LETTERS[:n]
    s = text.strip()
    body = _PREFIXES.sub("", s, count=1).strip()
    m = re.match(r"^\(?([A-Z])(?:[.):,]|\s|$)", body)
    if m and m.group(1) in valid and not (len(body) > 1 and body[1].islower()):
        return valid.index(m.group(1))
    m = re.search(r"\(([A-Z])\)", s)
    if m and m.group(1) in valid:
        return valid.index(m.group(1))
    m = re.search(r"\b(?i:answer|option|choice)\s*(?i:is)?\s*:?\s*\(?([A-Z])\b", s)
    if m and m.group(1) in valid:
        return valid.index(m.group(1))
    # a lone capital letter, except the pronoun "I" and a sentence-initial article "A" (both followed by
    # a lowercase word other than is/was/seems/looks/and/or/would/should)
    lone = set()
    for m in re.finditer(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])", s):
        c, before = m.group(1), s[: m.start()]
        word_follows = re.match(r"\s+(?!(?:is|was|seems|looks|and|or|would|should)\b)[a-z]", s[m.end():])
        if c not in valid or (word_follows and (c == "I" or (c == "A" and re.search(r"(^|[.!?:]\s*)$", before)))):
            continue
        lone.add(c)
    if len(lone) == 1:
        return valid.index(lone.pop())
    if not isinstance(options, int):
        norm = _norm_text(s)
        found = [i for i, o in enumerate(options) if _norm_text(o) and _norm_text(o) == norm]
        if len(found) != 1:
            found = [i for i, o in enumerate(options)
                     if _norm_text(o) and re.search(rf"(?<!\w){re.escape(_norm_text(o))}(?!\w)", norm)]
        if len(found) == 1:
            return found[0]
    return None


def _norm_text(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


# ------------------------------------------------------------------------------- official rules


def em_start_choice(text: str, options: Sequence[str] | int) -> int | None:
    """``em_start``: the letter the answer starts with (case-insensitive), if it is an option letter."""
    n = _num_options(options)
    pred = text.strip().lower()
    return LETTERS.lower().index(pred[0]) if pred and pred[0] in LETTERS.lower()[:n] else None


def perception_test_choice(text: str) -> int | None:
    m = re.search(r"\b([A-D])\b", text.strip())
    return None if m is None else "ABCD".index(m.group(1))


def _mmmu_choice(text: str, options: Sequence[str], nextqa: bool, rng: random.Random | None) -> int | None:
    """The MMMU-derived parsers of NeXTQA (``nextqa=True``) and EgoSchema, transcribed from ``vqa.py``."""
    choices = list(LETTERS[: len(options)])
    index2ans = {c: o.strip() for c, o in zip(choices, options)}
    response = text
    for ch in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(ch)
    response = " " + response + " "
    index_ans = True
    cands: list[str] = []
    kind = ""
    if nextqa:
        for pat, name in (("({})", "brack"), (" {} ", "space"), ("{}.", "dot")):
            cands = [c for c in choices if pat.format(c) in response]
            if cands:
                kind = name
                break
    else:
        cands = ([f"({c})" for c in choices if f"({c})" in response] + [f"{c} " for c in choices if f"{c} " in response]
                 + [f"{c}." for c in choices if f"{c}." in response])
    if not cands and len(response.split()) > 5:
        cands = [c for c, a in index2ans.items() if a.lower() in response.lower()]
        index_ans = False
    if not cands:
        return None if rng is None else choices.index(rng.choice(choices))
    if len(cands) == 1:
        pick = cands[0]
    elif nextqa:
        if index_ans:
            pat = {"brack": "({})", "space": " {} ", "dot": "{}."}[kind]
            starts = [response.rfind(pat.format(c)) for c in cands]
        else:
            starts = [response.lower().rfind(index2ans[c].lower()) for c in cands]
        pick = cands[max(range(len(cands)), key=lambda i: (starts[i], -i))]  # np.argmax: first of the max
    else:
        if index_ans:
            starts = [response.rfind(c) for c in cands]
        else:
            starts = [response.lower().rfind(index2ans[c].lower()) for c in cands]
        pick = cands[min(range(len(cands)), key=lambda i: (starts[i], i))]  # np.argmin
    letter = pick.replace("(", "").replace(")", "").replace(".", "").strip()
    return choices.index(letter) if letter in choices else None


_VIDEOMME_PREFIXES = ["The best answer is", "The correct answer is", "The answer is", "The answer",
                      "The best option isThe correct option is", "Best answer:Best option:", "Answer:", "Option:",
                      "The correct answer", "The correct option"]  # sic: two missing commas upstream
_LVB_PREFIXES = ["The best answer is", "The correct answer is", "The answer is", "The answer",
                 "The best option is", "The correct option is", "Best answer:", "Best option:"]


def _prefix_letter(text: str, prefixes: list[str], letters: str) -> str | None:
    s = text.strip()
    for p in prefixes:
        s = s.replace(p, "")
    if len(s.split()) > 10 and not re.search(f"[{letters}]", s):
        return None
    m = re.search(f"[{letters}]", s)
    return None if m is None else m.group(0)


def official_choice(text: str, options: Sequence[str] | int, rule: str, rng: random.Random | None = None) -> int | None:
    """The option an official rule (module table) extracts; ``None`` where it would guess and no ``rng``."""
    if not isinstance(text, str):
        raise Molmo2Error(f"the answer must be a string, got {type(text).__name__}")
    n = _num_options(options)
    if rule == "robust":
        return extract_choice(text, options)
    if rule == "em_start":
        return em_start_choice(text, n)
    if rule == "perception_test":
        return perception_test_choice(text)
    if rule in ("nextqa", "egoschema"):
        if isinstance(options, int):
            raise Molmo2Error(f"rule {rule!r} needs the option texts, not just their number")
        return _mmmu_choice(text, options, rule == "nextqa", rng)
    if rule == "videomme":
        letter = _prefix_letter(text, _VIDEOMME_PREFIXES, "ABCD")
        return None if letter is None else "ABCD".index(letter)
    if rule == "longvideobench":
        letter = _prefix_letter(text, _LVB_PREFIXES, "ABCDE")
        if letter is None:
            return None if rng is None else rng.randrange(min(n, 5))
        return "ABCDE".index(letter)
    raise Molmo2Error(f"unknown multiple-choice rule {rule!r}; expected one of {MC_RULES}")


def mc_correct(text: str, answer_idx: int, options: Sequence[str] | int, rule: str = "robust",
               rng: random.Random | None = None) -> bool:
    """Whether an answer picks option ``answer_idx`` (0-based) under ``rule``."""
    n = _num_options(options)
    if isinstance(answer_idx, bool) or not isinstance(answer_idx, int) or not 0 <= answer_idx < n:
        raise Molmo2Error(f"answer_idx must be an int in [0, {n}), got {answer_idx!r}")
    return official_choice(text, options, rule, rng) == answer_idx


RANDOM_FALLBACK_RULES = ("nextqa", "egoschema", "longvideobench")


def summarize_mc(choices: Sequence[int | None], answers: Sequence[int], rule: str = "robust",
                 num_options: Sequence[int] | None = None) -> dict[str, float]:
    """``accuracy`` over all items (unparsed = wrong), ``parse_failure`` rate; for ``videomme`` also
    ``accuracy_parsed`` (the official number: unparsed items excluded); for a rule with a random fallback,
    given ``num_options`` per item, also ``accuracy_random_fallback`` (the official number in expectation)."""
    if len(choices) != len(answers):
        raise Molmo2Error(f"{len(choices)} choices but {len(answers)} answers")
    if not answers:
        raise Molmo2Error("no multiple-choice items to summarize")
    ok = [c is not None and c == a for c, a in zip(choices, answers)]
    parsed = [c is not None for c in choices]
    out = {"accuracy": sum(ok) / len(ok), "parse_failure": 1 - sum(parsed) / len(parsed)}
    if rule == "videomme":
        out["accuracy_parsed"] = sum(ok) / sum(parsed) if any(parsed) else math.nan
    if rule in RANDOM_FALLBACK_RULES and num_options is not None:
        if len(num_options) != len(answers) or any(int(n) < 1 for n in num_options):
            raise Molmo2Error(f"num_options must give a positive number of options for each of the {len(answers)} "
                              "items")
        guessed = sum(1 / int(n) for n, p in zip(num_options, parsed) if not p)
        out["accuracy_random_fallback"] = (sum(ok) + guessed) / len(ok)
    return out


# ---------------------------------------------------------------------------------- short answer

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "oclock": "o'clock", "shant": "shan't", "shouldve": "should've",
    "shouldnt": "shouldn't", "somebodys": "somebody's", "someones": "someone's", "thats": "that's",
    "theres": "there's", "theyd": "they'd", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "wasnt": "wasn't", "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whens": "when's", "whered": "where'd", "wheres": "where's", "whod": "who'd",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "yall": "y'all",
    "youd": "you'd", "youll": "you'll", "youre": "you're", "youve": "you've",
}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def normalize_answer(ans: str) -> str:
    """VQA v2 answer normalization (the official ``preprocess_answer``)."""
    s = ans.replace("\n", " ").replace("\t", " ").lower().strip()
    out = s
    for p in _PUNCT:
        if (p + " " in s or " " + p in s) or _COMMA_STRIP.search(s) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD_STRIP.sub("", out)
    words = [_NUMBERS.get(w, w) for w in out.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def clean_short_answer(text: str) -> str:
    """The official answer clean-up before scoring (``VqaEval.__call__``)."""
    pred = text.strip()
    if "Answer:" in pred:
        return pred.split("Answer:")[1].strip()
    if "\n" in pred:
        lines = [" ".join(x.strip().split()) for x in pred.split("\n")]
        counts = Counter(lines)
        top = max(counts.values())
        return next(x for x in lines if counts[x] == top)
    return " ".join(pred.split())


def vqa_score(text: str, answers: Sequence[str] | str) -> float:
    """VQA accuracy of one answer: ``min(#references equal after normalization / 3, 1)``.

    One reference string (not a list) scores exact match after normalizing the prediction only, as the
    official ``vqa_score`` does.
    """
    if not isinstance(text, str):
        raise Molmo2Error(f"the answer must be a string, got {type(text).__name__}")
    pred = normalize_answer(clean_short_answer(text))
    if isinstance(answers, str):
        return float(pred == answers)
    if not answers:
        raise Molmo2Error("vqa_score needs at least one reference answer")
    refs = Counter(normalize_answer(a) for a in answers)
    return min(refs[pred] / 3.0, 1.0)


__all__ = [
    "MC_RULES",
    "RANDOM_FALLBACK_RULES",
    "clean_short_answer",
    "em_start_choice",
    "extract_choice",
    "mc_correct",
    "normalize_answer",
    "official_choice",
    "perception_test_choice",
    "summarize_mc",
    "vqa_score",
]
