"""Metrics of generated text, to catch mode collapse and length hacking (stdlib only).

DPO can raise its reward by making every answer look alike (mode collapse) or by making
answers longer (length hacking), without the answers getting better. These numbers make
both visible next to the behaviour metrics. Definitions, as computed:

* Words: ``text.lower().split()``, i.e. lowercased whitespace tokens; punctuation stays
  attached ("No," and "no" are different words).
* ``distinct_n(texts, n)``: number of unique n-grams / total number of n-grams, counted over
  all texts together (n-grams never span two texts). 1.0 means no n-gram repeats anywhere;
  it falls towards 0 as responses repeat themselves or each other. 0.0 when there are no
  n-grams at all (e.g. every text is shorter than n words).
* ``self_similarity(texts)``: mean Jaccard similarity |X & Y| / |X | Y| over all unordered
  pairs of texts, where a text's set is its word bigrams with a start and an end marker
  added, so "a b" -> {(<s>, a), (a, b), (b, </s>)}. The markers make one-word and empty
  responses comparable ("Yes" vs "No" -> 0.0; two empty responses -> 1.0) and count a
  shared first or last word as overlap. 1.0 when all texts are identical, 0.0 when no two
  share a bigram; nan for fewer than two texts. Cost grows with the square of the number
  of texts (fine for a few thousand responses).
* ``mean_length(texts)``: mean number of words per text (nan for no texts).
* ``reward_accuracy(chosen, rejected)``: share of pairs whose chosen reward is strictly
  greater than the rejected one (a tie counts as a miss) and the mean of chosen - rejected.
  Used for held-out implicit DPO rewards, beta * (log pi - log pi_ref).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Iterable, Sequence

_START, _END = "<s>", "</s>"


def _words(text: str) -> list[str]:
    return text.lower().split()


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Unique n-grams / total n-grams over all texts (0.0 when there are none)."""
    if n < 1:
        raise ValueError(f"distinct_n needs n >= 1, got {n}")
    grams = [g for text in texts for g in _ngrams(_words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _bigram_set(text: str) -> frozenset[tuple[str, str]]:
    return frozenset(_ngrams([_START, *_words(text), _END], 2))


def self_similarity(texts: Sequence[str]) -> float:
    """Mean pairwise Jaccard similarity of marked word-bigram sets (see the module docstring)."""
    sets = [_bigram_set(t) for t in texts]
    if len(sets) < 2:
        return math.nan
    # Sets are never empty (the markers alone give one bigram), so the union is never empty.
    total = sum(len(x & y) / len(x | y) for x, y in combinations(sets, 2))
    return total / (len(sets) * (len(sets) - 1) / 2)


def mean_length(texts: Sequence[str]) -> float:
    """Mean number of words per text (nan for no texts)."""
    return sum(len(_words(t)) for t in texts) / len(texts) if texts else math.nan


def diversity_report(texts: Sequence[str]) -> dict[str, float]:
    """distinct_1, distinct_2, self_similarity and mean_length_words of one set of responses."""
    texts = list(texts)
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "self_similarity": self_similarity(texts),
        "mean_length_words": mean_length(texts),
    }


def reward_accuracy(chosen_rewards: Iterable[float], rejected_rewards: Iterable[float]) -> dict[str, float]:
    """{"accuracy": share with chosen > rejected (strictly), "mean_margin": mean(chosen - rejected), "n"}.

    Accepts any iterables of numbers (lists, 1-D tensors, arrays); nan rates for no pairs.
    """
    chosen = [float(x) for x in chosen_rewards]
    rejected = [float(x) for x in rejected_rewards]
    if len(chosen) != len(rejected):
        raise ValueError(f"reward_accuracy needs one rejected reward per chosen one: got {len(chosen)} chosen "
                         f"and {len(rejected)} rejected")
    n = len(chosen)
    margins = [c - r for c, r in zip(chosen, rejected)]
    return {
        "accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n if n else math.nan,
        "mean_margin": sum(margins) / n if n else math.nan,
        "n": n,
    }
