"""Message trees: one visual prefix shared by several conversations, linearized for training.

An example is ``[BOS][visual tokens] branch_1 branch_2 ...`` where each branch is one conversation
(``<|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>assistant\\n{a}<|im_end|>``, further turns
continue with ``\\n<|im_start|>user...``). The attention structure (``SegmentMask``) lets each branch
see the prefix and itself only, and its positions restart right after the prefix, so every branch
is trained exactly as if it were the only continuation (training.md §4). Loss falls on the answer
tokens and the EOS that ends each answer.

Token weights (training.md §2.1): ``"none"`` gives 1.0 per loss token (pre-training); ``"sft"`` gives
``2 / sqrt(n)`` per token of a branch with n loss tokens, divided by ``sqrt(K)`` for K kept branches,
except kinds with a fixed weight (captions 0.1, pointing/counting/tracking 0.2 per token, no root
terms). Branches are shuffled (seeded) and dropped whole, never truncated, when they would not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from molmo2.data.schema import DataError

SFT_KIND_WEIGHTS = {"caption": 0.1, "pointing": 0.2, "counting": 0.2, "tracking": 0.2}


class TooLong(DataError):
    """The prefix plus the shortest branch does not fit the sequence length."""


@dataclass
class Branch:
    ids: list[int]
    loss: list[bool]  # per token: is it a supervised answer token (or the answer's EOS)?
    kind: str = "qa"


@dataclass
class TreeSettings:
    max_seq_len: int = 4096
    weighting: str = "none"  # "none" | "sft"
    kind_weights: dict[str, float] = field(default_factory=lambda: dict(SFT_KIND_WEIGHTS))
    shuffle_branches: bool = True


@dataclass
class TreeTokens:
    """One linearized example. All arrays have length L = prefix + kept branches."""

    input_ids: np.ndarray  # [L] int64
    targets: np.ndarray  # [L] int64, the token each position must predict; -1 = none
    weights: np.ndarray  # [L] float32, loss weight of that prediction (0 where targets == -1)
    position_ids: np.ndarray  # [L] int64, branches restart after the prefix
    branch_ids: np.ndarray  # [L] int64, 0 = prefix, k = k-th kept branch
    num_branches: int
    num_dropped: int

    def __len__(self) -> int:
        return len(self.input_ids)


def branch_weights(branch: Branch, num_kept: int, s: TreeSettings) -> float:
    if s.weighting == "none":
        return 1.0
    if s.weighting != "sft":
        raise ValueError(f"unknown weighting {s.weighting!r}; use 'none' or 'sft'")
    if branch.kind in s.kind_weights:
        return s.kind_weights[branch.kind]
    n = max(1, sum(branch.loss))
    return 2.0 / math.sqrt(n) / math.sqrt(num_kept)


def build_tree(
    prefix_ids: list[int], branches: list[Branch], settings: TreeSettings, rng: np.random.Generator | None = None
) -> TreeTokens:
    if not branches:
        raise DataError("an example needs at least one conversation")
    order = list(range(len(branches)))
    if settings.shuffle_branches and rng is not None:
        rng.shuffle(order)
    kept: list[Branch] = []
    used = len(prefix_ids)
    for i in order:
        b = branches[i]
        if used + len(b.ids) <= settings.max_seq_len:
            kept.append(b)
            used += len(b.ids)
    if not kept:
        shortest = min(len(b.ids) for b in branches)
        raise TooLong(f"the example needs {len(prefix_ids) + shortest} tokens (prefix {len(prefix_ids)}) but the "
                      f"sequence length is {settings.max_seq_len}; raise max_seq_len or lower max_frames/max_crops")
    P = len(prefix_ids)
    ids = np.empty(used, np.int64)
    targets = np.full(used, -1, np.int64)
    weights = np.zeros(used, np.float32)
    pos = np.empty(used, np.int64)
    br = np.zeros(used, np.int64)
    ids[:P] = prefix_ids
    pos[:P] = np.arange(P)
    targets[: P - 1] = ids[1:P]
    start = P
    for k, b in enumerate(kept, 1):
        n = len(b.ids)
        sl = slice(start, start + n)
        ids[sl] = b.ids
        pos[sl] = np.arange(P, P + n)
        br[sl] = k
        w = branch_weights(b, len(kept), settings)
        loss = np.asarray(b.loss, bool)
        # position j predicts token j+1 of the same branch; the first branch token follows the prefix
        # and is never an answer token (it is the user turn's <|im_start|>)
        if loss[0]:
            raise DataError("a conversation must start with a user turn, not with supervised tokens")
        targets[start : start + n - 1] = ids[start + 1 : start + n]
        weights[start : start + n - 1] = np.where(loss[1:], w, 0.0)
        targets[start : start + n - 1][~loss[1:]] = -1
        start += n
    return TreeTokens(ids, targets, weights, pos, br, len(kept), len(branches) - len(kept))


def tokenize_conversation(messages: list[dict[str, str]], encode, eos_id: int) -> Branch:
    """Qwen3 chat format, media-free (the visual prefix is shared): supervised answers + EOS."""
    ids: list[int] = []
    loss: list[bool] = []
    if not messages or messages[0]["role"] != "user":
        raise DataError("a conversation must start with a user turn")
    for turn, m in enumerate(messages):
        role, text = m["role"], m["content"]
        if role not in ("user", "assistant") or (role == "user") != (turn % 2 == 0):
            raise DataError("conversation turns must alternate user, assistant, user, ...")
        if role == "user":
            t = encode(("\n" if turn else "") + f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")
            ids += t
            loss += [False] * len(t)
        else:
            t = encode(text) + [eos_id]
            ids += t
            loss += [True] * len(t)
    if messages[-1]["role"] != "assistant":
        raise DataError("a conversation must end with an assistant answer")
    return Branch(ids, loss)
