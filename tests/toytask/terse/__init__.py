"""A third task, kept outside dpo_exp to prove that a task needs no framework edit: terse answers.

The wanted reply is short: at most `words` words. `Terse` is the judge (a shorter-than-the-limit reply
beats a longer one; two of a kind tie), `TerseRate` the behaviour metric (the share of replies within
the limit, and the mean length). Its prompts and held-out prompts ship beside this file, named by the
presets in `../conf` as `${pkg_file:terse,prompts.jsonl}`; tests/test_tasks_apart.py builds pairs with
it and trains on them, through `--config-dir tests/toytask/conf` with this folder's parent on PYTHONPATH.
"""

from __future__ import annotations

import math

from dpo_exp.judges import PointwiseJudge

TERSE, WORDY = "terse", "wordy"


def label(reply: str, words: int) -> str:
    return TERSE if len(reply.split()) <= words else WORDY


class Terse(PointwiseJudge):
    """The reply of at most `words` words wins over a longer one."""

    SCORES = {TERSE: 1.0, WORDY: 0.0}

    def __init__(self, words: int = 3):
        self.words = words
        self.name = f"terse[words={words}]"  # the setting changes verdicts: part of the identity

    def label(self, prompt, reply: str, context) -> str:
        return label(reply, self.words)


class TerseRate:
    """The share of held-out replies of at most `words` words, and their mean length in words."""

    name = "terse answers"

    def __init__(self, words: int = 3):
        self.words = words
        self.headline = [("terse_rate", f"replies of at most {words} words")]

    def label(self, row, response: str) -> str:
        return label(response, self.words)

    def metrics(self, rows, responses) -> dict[str, float]:
        n = len(responses)
        return {"terse_rate": sum(label(r, self.words) == TERSE for r in responses) / n if n else math.nan,
                "mean_words": sum(len(r.split()) for r in responses) / n if n else math.nan}
