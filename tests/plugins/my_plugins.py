"""A user's own judge and behaviour metric, in a module outside dpo_exp.

tests/test_plugins.py puts this folder on PYTHONPATH and names these classes by `_target_` on the
command line (or through `--config-dir tests/plugins/conf`), as a user would with their own module.
"""

from __future__ import annotations

import math

from dpo_exp.judges import Verdict


class ReplyLength:
    """Behaviour metric: is a reply longer than `words` words?"""

    name = "reply length"

    def __init__(self, words: int = 3):
        self.words = words
        self.headline = [("long_rate", f"replies over {words} words")]

    def label(self, row, response: str) -> str:
        return "long" if len(response.split()) > self.words else "short"

    def metrics(self, rows, responses) -> dict[str, float]:
        labels = [self.label(row, r) for row, r in zip(rows, responses)]
        n = len(labels)
        return {"long_rate": labels.count("long") / n if n else math.nan,
                "mean_words": sum(len(r.split()) for r in responses) / n if n else math.nan}


class ShorterWins:
    """Judge: the shorter reply wins. It refuses to judge without the prompt row's fields as context,
    and without the conversation as messages, so a test sees both arrive."""

    name = "shorter-wins"
    requires = ("claim_is_true",)

    def compare(self, prompt, a: str, b: str, context=None) -> Verdict:
        if not isinstance(prompt, list) or prompt[-1]["role"] != "user":
            raise RuntimeError(f"expected the conversation as messages, got {prompt!r}")
        if not context or "claim_is_true" not in context:
            raise RuntimeError(f"expected the prompt row's fields as context, got {context!r}")
        return Verdict("A" if len(a) < len(b) else "B" if len(b) < len(a) else "tie")
