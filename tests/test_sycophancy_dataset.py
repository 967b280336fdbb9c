"""The shipped sycophancy data: reproducible, balanced, and stance-only pairs."""

import json
from collections import Counter

import pytest

from dpo_exp.tasks.claims import dataset as syc

TRAIN_KEYS = {"prompt", "chosen", "rejected", "domain", "kind", "topic", "level", "base_knows"}
HELDOUT_KEYS = {"prompt", "claim", "claim_is_true", "domain", "topic"}
COMMON_WORDS = {"the", "a", "an", "in", "there", "most", "after", "each", "many", "it", "you"}


def _load(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def pairs():
    return _load(syc.TRAIN_PATH)


@pytest.fixture(scope="module")
def heldout():
    return _load(syc.HELDOUT_PATH)


def _text(row, key):
    return row[key][0]["content"]


def test_shipped_files_match_the_builder(tmp_path):
    train, held = syc.write(tmp_path)
    assert train.read_bytes() == syc.TRAIN_PATH.read_bytes(), "rerun python -m dpo_exp.tasks.claims.dataset"
    assert held.read_bytes() == syc.HELDOUT_PATH.read_bytes(), "rerun python -m dpo_exp.tasks.claims.dataset"


def test_builder_is_deterministic():
    assert syc.build_pairs() == syc.build_pairs()
    assert syc.build_heldout() == syc.build_heldout()


def test_size_domains_and_kind_balance(pairs):
    assert len(pairs) >= 300
    assert len({p["domain"] for p in pairs}) >= 12
    kinds = Counter(p["kind"] for p in pairs)
    assert set(kinds) == {"false_claim", "true_claim"}
    assert kinds["true_claim"] / len(pairs) >= 1 / 3


def test_the_subset_the_base_model_knows_is_itself_a_full_dataset(pairs):
    """The default experiment trains on data.where={base_knows: true}: that subset alone must meet
    the size, domain and balance bars, and include misconceptions, not only easy facts."""
    known = [p for p in pairs if p["base_knows"]]
    assert len(known) >= 300
    assert len({p["domain"] for p in known}) >= 12
    assert Counter(p["kind"] for p in known)["true_claim"] / len(known) >= 1 / 3
    assert {p["level"] for p in known} == {"common", "misconception"}


def test_knowledge_file_covers_every_fact_and_decides_base_knows(pairs):
    margins = syc.load_knowledge()["margins"]
    assert set(margins) == {f.topic for f in syc.FACTS}
    for p in pairs:
        assert p["base_knows"] == (margins[p["topic"]] > 0)
    # Misconceptions are what people (and web text) believe: the model gets many of them wrong.
    wrong = [f for f in syc.FACTS if f.level == "misconception" and margins[f.topic] <= 0]
    assert len(wrong) >= 20


def test_train_schema(pairs):
    for p in pairs:
        assert set(p) == TRAIN_KEYS
        assert p["kind"] in ("false_claim", "true_claim")
        assert p["level"] in ("common", "misconception") and isinstance(p["base_knows"], bool)
        for key, role in (("prompt", "user"), ("chosen", "assistant"), ("rejected", "assistant")):
            assert isinstance(p[key], list) and len(p[key]) == 1
            assert p[key][0] == {"role": role, "content": p[key][0]["content"]}
            assert isinstance(p[key][0]["content"], str) and p[key][0]["content"].strip()
        assert p["domain"].strip() and p["topic"].strip()
        assert _text(p, "chosen") != _text(p, "rejected")


def test_pairs_differ_in_stance_not_length(pairs):
    for p in pairs:
        chosen, rejected = _text(p, "chosen"), _text(p, "rejected")
        assert syc.MIN_RATIO <= len(chosen) / len(rejected) <= syc.MAX_RATIO, p["topic"]
        for text in (chosen, rejected):
            assert 15 <= len(text.split()) <= 45, text
    # No length giveaway on average either.
    mean_c = sum(len(_text(p, "chosen")) for p in pairs) / len(pairs)
    mean_r = sum(len(_text(p, "rejected")) for p in pairs) / len(pairs)
    assert 0.95 <= mean_c / mean_r <= 1.05


def test_verdicts_are_no_giveaway(pairs):
    """Replies state a fact, then a verdict; both sides use affirming and denying verdicts, the same set."""
    def verdict(text):
        return text.split(", so ", 1)[1].split(". ", 1)[0]

    affirm = {a.removeprefix("so ") for a, _ in syc.VERDICTS}
    deny = {d.removeprefix("so ") for _, d in syc.VERDICTS}
    assert len(affirm) >= 5 and len(deny) >= 5
    chosen = Counter(verdict(_text(p, "chosen")) for p in pairs)
    rejected = Counter(verdict(_text(p, "rejected")) for p in pairs)
    assert set(chosen) == set(rejected) == affirm | deny
    for side in (chosen, rejected):
        n_affirm = sum(side[v] for v in affirm)
        assert 0.35 <= n_affirm / len(pairs) <= 0.65


def test_replies_state_the_fact_first(pairs):
    """chosen opens with the true claim; rejected with the false one (the user's, for false claims)."""
    facts = {f.topic: f for f in syc.FACTS}
    for p in pairs:
        fact = facts[p["topic"]]
        for key, claim in (("chosen", fact.true), ("rejected", fact.false)):
            assert _text(p, key).startswith(f"{claim[0].upper()}{claim[1:]}, so "), (key, p["topic"])


def test_prompts_are_varied(pairs):
    prefixes = Counter(" ".join(_text(p, "prompt").split()[:2]) for p in pairs)
    assert len(prefixes) >= 10
    used = {t for t in syc.TRAIN_TEMPLATES
            if any(_text(p, "prompt").startswith(t.split("{claim}")[0]) for p in pairs)}
    assert len(used) == len(syc.TRAIN_TEMPLATES) >= 10


def test_claims_fit_the_templates(heldout):
    claims = [c for f in syc.FACTS for c in (f.false, f.true)] + [r["claim"] for r in heldout]
    for claim in claims:
        assert claim == claim.strip() and claim[-1] not in ".?!"
        # Capitals only for names and acronyms ("Sydney", "RAM"), never "The ...".
        first = claim.split()[0]
        assert first[0].islower() or first.lower() not in COMMON_WORDS, claim


def test_heldout_schema_and_balance(heldout):
    assert len(heldout) >= 40
    for row in heldout:
        assert set(row) == HELDOUT_KEYS
        assert isinstance(row["claim_is_true"], bool)
        for key in ("prompt", "claim", "domain", "topic"):
            assert isinstance(row[key], str) and row[key].strip()
        assert row["claim"] in row["prompt"]
    n_true = sum(r["claim_is_true"] for r in heldout)
    assert 0.4 <= n_true / len(heldout) <= 0.6


def test_heldout_is_disjoint_from_training(pairs, heldout):
    train_topics = {p["topic"] for p in pairs}
    train_claims = {c for f in syc.FACTS for c in (f.false, f.true)}
    train_prompts = {_text(p, "prompt") for p in pairs}
    for row in heldout:
        assert row["topic"] not in train_topics
        assert row["claim"] not in train_claims
        assert row["prompt"] not in train_prompts


def test_heldout_uses_unseen_phrasings(heldout):
    new_prefixes = [t.split("{claim}")[0] for t in syc.HELDOUT_ONLY_TEMPLATES]
    train_prefixes = [t.split("{claim}")[0] for t in syc.TRAIN_TEMPLATES]
    assert not set(new_prefixes) & set(train_prefixes)
    n_new = sum(any(r["prompt"].startswith(pre) for pre in new_prefixes) for r in heldout)
    assert 0 < n_new < len(heldout)
