"""Generation metrics on hand-made texts whose values are worked out in the comments."""

import math

import pytest
import torch

from dpo_exp.eval.genmetrics import distinct_n, diversity_report, mean_length, reward_accuracy, self_similarity


def test_distinct_n_by_hand():
    # "a b a b": unigrams a, b, a, b -> 2 unique / 4
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    # bigrams (a b), (b a), (a b) -> 2 unique / 3
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    # lowercased: "A b" and "a B" -> a, b, a, b -> 2/4; the bigram (a b) twice -> 1/2
    assert distinct_n(["A b", "a B"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["A b", "a B"], 2) == pytest.approx(1 / 2)
    # n-grams never span texts: "x" and "y" have no bigram, so there are none at all
    assert distinct_n(["x", "y"], 2) == 0.0
    assert distinct_n([], 1) == 0.0
    # all different -> 1.0
    assert distinct_n(["one two three"], 1) == 1.0
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def test_self_similarity_by_hand():
    # identical texts -> 1.0
    assert self_similarity(["the cat sat", "the cat sat", "The Cat sat"]) == 1.0
    # no shared word, so no shared bigram, not even with the start/end markers -> 0.0
    assert self_similarity(["a b", "c d"]) == 0.0
    # "a b c" -> {<s> a, a b, b c, c </s>}, "a b d" -> {<s> a, a b, b d, d </s>}: 2 shared of 6 -> 1/3
    assert self_similarity(["a b c", "a b d"]) == pytest.approx(1 / 3)
    # three texts: pairs (1,2) = 1/3 as above, (1,3) = 0, (2,3) = 0 -> mean 1/9
    assert self_similarity(["a b c", "a b d", "x y"]) == pytest.approx(1 / 9)
    # one-word answers are comparable thanks to the markers; two empty responses are identical
    assert self_similarity(["Yes", "No"]) == 0.0
    assert self_similarity(["", ""]) == 1.0
    assert math.isnan(self_similarity(["only one"]))
    assert math.isnan(self_similarity([]))


def test_mean_length_and_report():
    texts = ["a b a b", "c d"]  # 4 and 2 words -> mean 3
    assert mean_length(texts) == 3.0
    assert math.isnan(mean_length([]))
    report = diversity_report(texts)
    # unigrams a b a b c d -> 4 unique / 6; bigrams ab ba ab cd -> 3 unique / 4
    assert report == pytest.approx({"distinct_1": 4 / 6, "distinct_2": 3 / 4, "self_similarity": 0.0,
                                    "mean_length_words": 3.0})


def test_mode_collapse_shows():
    collapsed = ["I am not sure about that."] * 5
    varied = ["Yes, that's right.", "No, it is a myth.", "Paris is the capital.", "Spiders have eight legs.",
              "Water boils at 100 C."]
    assert diversity_report(collapsed)["self_similarity"] == 1.0
    assert diversity_report(collapsed)["distinct_2"] < diversity_report(varied)["distinct_2"]
    assert diversity_report(varied)["self_similarity"] < 0.1


def test_reward_accuracy():
    # margins 1.0, -0.5, 0.0 (a tie is a miss), 2.0 -> 2 of 4 strictly greater; mean margin 2.5 / 4
    result = reward_accuracy([1.0, 0.0, 0.3, 2.0], [0.0, 0.5, 0.3, 0.0])
    assert result == pytest.approx({"accuracy": 0.5, "mean_margin": 0.625, "n": 4})
    # tensors work too
    assert reward_accuracy(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 3.0]))["accuracy"] == 0.5
    empty = reward_accuracy([], [])
    assert math.isnan(empty["accuracy"]) and math.isnan(empty["mean_margin"]) and empty["n"] == 0
    with pytest.raises(ValueError):
        reward_accuracy([1.0], [])
