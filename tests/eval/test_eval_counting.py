"""Counting: stated-count parsing (with the official "none" quirk), exact/close rules, summaries (§5, §8)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from molmo2.errors import Molmo2Error
from molmo2.eval.metrics import (
    count_score,
    image_count_score,
    parse_count,
    summarize_counts,
    video_count_score,
)
from molmo2.grounding import format_points, parse
from molmo2.grounding.types import Point


@pytest.mark.parametrize("text,expected", [
    ("3", 3), (" 12. ", 12), ("Counting the <points coords=\"0.5 1 100 200\">dogs</points> shows a total of 4.", 4),
    ("A TOTAL OF 7", 7), ("The total number of red cars is: 5.", 5), ("the total number is: 9", 9),
    ("There are three dogs.", None), ("no idea", None), ("", None),
])
def test_parse_count_official_patterns(text, expected):
    assert parse_count(text) == expected
    assert parse_count(text, compat="official") == expected


def test_none_fallback_quirk():
    # The official pattern ".*\bnone\b.*" is not a raw string: \b is a backspace, so it never matches.
    assert re.match(".*\bnone\b.*", "there are none") is None
    assert parse_count("There are none.", compat="official") is None
    assert parse_count("There are none.") == 0
    assert parse_count("None") == 0
    assert parse_count("nonexistent", compat="correct") is None  # a word boundary, not a substring
    official = video_count_score("There are none.", 0, compat="official")
    assert (official.correct, official.valid) == (False, False)
    fixed = video_count_score("There are none.", 0)
    assert (fixed.correct, fixed.close, fixed.valid) == (True, True, True)


def test_negative_numbers():
    assert parse_count("-3", compat="official") == -3  # int() accepts it
    assert parse_count("-3") is None


def test_stated_count_is_used_for_video_not_the_points():
    text = format_points([Point(10, 10, t=0.5, object_id=1), Point(20, 20, t=0.5, object_id=2)], (100, 100),
                         "dogs", mode="point_then_count")
    assert parse(text, (100, 100), video=True).count.pointed == 2
    assert video_count_score(text.replace("a total of 2", "a total of 5"), 5).correct


def test_close_margins():
    # video: |d| <= 1 + floor(0.05 gt); image: |d| <= 1
    assert count_score(22, 20).close and not count_score(23, 20).close
    assert count_score(43, 40).close and not count_score(44, 40).close
    assert not count_score(22, 20, "image").close and count_score(21, 20, "image").close
    assert count_score(None, 3) == count_score(None, 3, "image")
    assert not count_score(None, 3).valid


def test_image_count_uses_the_number_of_points():
    r = parse('<points coords="1 1 100 200 2 300 400 3 500 500">cats</points> There are 2 cats.', (640, 480))
    s = image_count_score(len(r.points), 3)
    assert s.correct and s.valid and s.pred == 3


def test_summaries_video_bins_and_categories():
    scores = [count_score(3, 3), count_score(4, 3), count_score(None, 7), count_score(30, 30)]
    out = summarize_counts(scores, ["object", "animal", "object", "action/event"])
    assert out["correct"] == 0.5 and out["valid"] == 0.75 and out["close"] == 0.75
    assert out["acc_object"] == 0.5 and out["acc_animal"] == 0.0 and out["acc_action/event"] == 1.0
    assert out["correct_0_5"] == 0.5 and out["correct_5_10"] == 0.0 and out["correct_25_31"] == 1.0
    assert math.isnan(out["correct_10_15"])
    assert out["per_category_average"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)


def test_summaries_image_per_count():
    out = summarize_counts([count_score(2, 2, "image"), count_score(1, 2, "image"), count_score(5, 5, "image")],
                           medium="image")
    assert out["correct_2"] == 0.5 and out["correct_5"] == 1.0 and out["per_category_average"] == 0.75


def test_bad_input():
    with pytest.raises(Molmo2Error, match="compat"):
        parse_count("3", compat="strict")
    with pytest.raises(Molmo2Error, match="non-negative"):
        count_score(1, -1)
    with pytest.raises(Molmo2Error, match="string"):
        parse_count(3)  # type: ignore[arg-type]
    with pytest.raises(Molmo2Error, match="categories"):
        summarize_counts([count_score(1, 1)], ["a", "b"])


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_exact_implies_close_and_valid(pred, gt):
    s = count_score(pred, gt)
    assert s.valid and (not s.correct or s.close)
    assert video_count_score(str(pred), gt) == s
