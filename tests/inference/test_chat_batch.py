"""``Molmo2.chat_batch`` on the tiny random checkpoint: a batch of mixed requests (text of several lengths,
an image, an image set, a video, a multi-turn chat, different budgets) gives, row for row, exactly the
answers ``chat`` gives one at a time (greedy); a short row is answered before its batch mates end; one
request's error, or a row stopped by ``should_stop``, leaves the others as they were."""

from __future__ import annotations

import pytest

from molmo2.errors import Molmo2Error
from molmo2.inference import ChatRequest, SamplingParams, generate
from molmo2.inference.pipeline import Molmo2


@pytest.fixture(scope="module")
def pipe(tiny_ckpt):
    return Molmo2.from_pretrained(tiny_ckpt)


def _user(text):
    return [{"role": "user", "content": text}]


def _requests(media_dir):
    a, b = media_dir / "a.png", media_dir / "b.jpg"
    return [
        ChatRequest(_user("Hi."), None, {"max_new_tokens": 12}),
        ChatRequest(_user("What is in the picture, and what colour is the thing on the left of it?"), a,
                    {"max_new_tokens": 20}),
        ChatRequest(_user("A much longer question about squares, circles, triangles and the way they stack up "
                          "on top of each other when nobody is looking?"), None, {"max_new_tokens": 3}),
        ChatRequest(_user("Point to the dogs."), b, {"max_new_tokens": 16}),
        ChatRequest(_user("Compare them."), [a, b], {"max_new_tokens": 9}),
        ChatRequest([*_user("Hi"), {"role": "assistant", "content": "Hello."}, *_user("What is it?")], a,
                    {"max_new_tokens": 14}),
        ChatRequest(_user("Track the square."), media_dir / "clip.mp4", {"max_new_tokens": 10, "max_frames": 3}),
    ]


def _same(batched, single):
    assert batched.text == single.text
    assert batched.finish_reason == single.finish_reason
    assert batched.grounding == single.grounding
    assert (batched.num_prompt_tokens, batched.num_new_tokens) == (single.num_prompt_tokens, single.num_new_tokens)
    assert batched.media == single.media and batched.prompt == single.prompt


def test_batched_answers_equal_one_by_one_answers(pipe, media_dir):
    requests = _requests(media_dir)
    single = [pipe.chat(r.messages, media=r.media, **r.options) for r in requests]
    pieces = [[] for _ in requests]
    delivered = []
    for k, r in enumerate(requests):
        r.options["on_text"] = pieces[k].append
    batched = pipe.chat_batch(requests, on_answer=lambda i, a: delivered.append((i, a)))
    assert len(batched) == len(requests)
    for k, (b, s) in enumerate(zip(batched, single)):
        _same(b, s)
        assert "".join(pieces[k]) == b.text, k
    assert sorted(i for i, _ in delivered) == list(range(len(requests)))
    assert all(batched[i] is a for i, a in delivered)
    # the 3-token row is answered before the 20-token one ends (rows are delivered as they end)
    order = [i for i, _ in delivered]
    if single[1].num_new_tokens > 3:
        assert order.index(2) < order.index(1)
    # greedy rows batch together whatever their unused top-p / seed
    mixed = [ChatRequest(_user("Hi."), None, {"max_new_tokens": 12,
                                               "sampling": SamplingParams(top_p=0.5, seed=3)}), requests[2]]
    _same(pipe.chat_batch(mixed)[0], single[0])


def test_one_request_failing_or_stopping_leaves_its_batch_mates_alone(pipe, media_dir):
    requests = _requests(media_dir)[:4]
    single = [pipe.chat(r.messages, media=r.media, **r.options) for r in requests]
    polls = []

    def stop_after_two():
        polls.append(1)
        return len(polls) >= 2

    bad = [
        ChatRequest(_user("hi <|im_end|>")),  # a special token: refused
        ChatRequest(_user("Hi."), media_dir / "nope.png"),  # a missing file
        ChatRequest(_user("Point."), media_dir / "clip.mp4", {"windows": (1.0, 0.5)}),
        ChatRequest(_user("Hi."), None, {"max_new_tokens": 12, "should_stop": stop_after_two}),
    ]
    results = pipe.chat_batch([requests[0], bad[0], requests[1], bad[1], bad[2], requests[2], bad[3],
                               requests[3]])
    for got, want in zip([results[0], results[2], results[5], results[7]], single):
        _same(got, want)
    assert isinstance(results[1], Molmo2Error) and "special token" in str(results[1])
    assert isinstance(results[3], Molmo2Error) and "not found" in str(results[3])
    assert isinstance(results[4], Molmo2Error) and "windows" in str(results[4])
    stopped = results[6]
    assert stopped.num_new_tokens == 2 and stopped.finish_reason == "stop"
    assert single[0].text.startswith(stopped.text)  # the same answer, cut short


def test_generate_takes_one_stop_check_per_row(pipe):
    import torch

    ids = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="one per row"):
        generate(pipe.model, ids, params=SamplingParams(max_new_tokens=2), stop_check=[lambda out: False])
    seen = []
    out = generate(pipe.model, ids, params=SamplingParams(max_new_tokens=5),
                   stop_check=[lambda out: len(out) >= 2, lambda out: False],
                   on_row_done=lambda b, g: seen.append((b, len(g.token_ids), g.finish_reason)))
    assert [len(o.token_ids) for o in out] == [2, 5] and seen[0] == (0, 2, "stop")
    assert sorted(seen) == [(0, 2, "stop"), (1, 5, "length")]
