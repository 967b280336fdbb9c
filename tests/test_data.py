"""dpo_exp.data: every input layout -> the canonical conversational rows, and clear errors for bad rows."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dpo_exp.config import DataConfig, DataFormat, OnError, UserError
from dpo_exp.data import Splits, load_heldout, load_pairs, load_splits, to_dataset

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HH_FILE = SHARED_DATA / "hh-rlhf-harmless-base-test.jsonl.gz"


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict:
    return {"role": "system", "content": text}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# The same two pairs, written in every layout; each must come out as EXPECTED.
EXPECTED = [
    {"prompt": [user("Is the Earth flat?")], "chosen": [assistant("No, it is round.")],
     "rejected": [assistant("Yes, it is flat.")]},
    {"prompt": [user("Hi"), assistant("Hello! How can I help?"), user("What is 2+2?")],
     "chosen": [assistant("4")], "rejected": [assistant("5")]},
]

LAYOUTS = {
    DataFormat.preference: [
        {"prompt": "Is the Earth flat?", "chosen": "No, it is round.", "rejected": "Yes, it is flat."},
        None,  # a flat string prompt cannot hold history
    ],
    DataFormat.conversational: [
        {"prompt": [user("Is the Earth flat?")], "chosen": [assistant("No, it is round.")],
         "rejected": [assistant("Yes, it is flat.")]},
        # implicit prompt: the whole conversation in chosen/rejected, the shared turns become the prompt
        {"chosen": [user("Hi"), assistant("Hello! How can I help?"), user("What is 2+2?"), assistant("4")],
         "rejected": [user("Hi"), assistant("Hello! How can I help?"), user("What is 2+2?"), assistant("5")]},
    ],
    DataFormat.sharegpt: [
        {"conversations": [{"from": "human", "value": "Is the Earth flat?"}],
         "chosen": {"from": "gpt", "value": "No, it is round."},
         "rejected": {"from": "gpt", "value": "Yes, it is flat."}},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello! How can I help?"},
                           {"from": "user", "value": "What is 2+2?"}],
         "chosen": "4", "rejected": "5"},
    ],
    DataFormat.hh_rlhf: [
        {"chosen": "\n\nHuman: Is the Earth flat?\n\nAssistant: No, it is round.",
         "rejected": "\n\nHuman: Is the Earth flat?\n\nAssistant: Yes, it is flat."},
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: What is 2+2?\n\nAssistant: 4",
         "rejected": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: What is 2+2?\n\nAssistant: 5"},
    ],
    DataFormat.ultrafeedback: [
        {"prompt": "Is the Earth flat?", "prompt_id": "abc123",
         "chosen": [user("Is the Earth flat?"), assistant("No, it is round.")],
         "rejected": [user("Is the Earth flat?"), assistant("Yes, it is flat.")],
         "messages": [user("Is the Earth flat?"), assistant("No, it is round.")],
         "score_chosen": 9.0, "score_rejected": 2.0},
        None,
    ],
}


def layout_file(tmp_path: Path, fmt: DataFormat) -> tuple[Path, list[dict]]:
    """A JSONL file of `fmt` rows, and the canonical rows it must give."""
    pairs = [(row, want) for row, want in zip(LAYOUTS[fmt], EXPECTED) if row is not None]
    path = write_jsonl(tmp_path / f"{fmt.value}.jsonl", [row for row, _ in pairs])
    return path, [want for _, want in pairs]


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(LAYOUTS), ids=lambda f: f.value)
def test_each_format_gives_the_canonical_rows(tmp_path, fmt):
    path, expected = layout_file(tmp_path, fmt)
    rows, skipped, detected = load_pairs(str(path), fmt)
    assert rows == expected
    assert (skipped, detected) == (0, fmt)


@pytest.mark.parametrize("fmt", list(LAYOUTS), ids=lambda f: f.value)
def test_auto_detects_each_format(tmp_path, fmt):
    path, expected = layout_file(tmp_path, fmt)
    rows, _, detected = load_pairs(str(path), "auto")
    assert detected == fmt
    assert rows == expected


@pytest.mark.parametrize("fmt", list(LAYOUTS), ids=lambda f: f.value)
def test_canonical_rows_are_conversational_for_trl(tmp_path, fmt):
    from trl.data_utils import is_conversational

    path, _ = layout_file(tmp_path, fmt)
    rows, _, _ = load_pairs(str(path))
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert is_conversational(row)
        assert all(is_conversational({key: row[key]}) for key in row)
        assert row["prompt"][-1]["role"] == "user"


def test_conversational_strips_a_prompt_repeated_in_the_replies(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"prompt": [user("Q?")], "chosen": [user("Q?"), assistant("good")], "rejected": [user("Q?"), assistant("bad")]},
    ])
    rows, _, _ = load_pairs(str(path), "conversational")
    assert rows == [{"prompt": [user("Q?")], "chosen": [assistant("good")], "rejected": [assistant("bad")]}]


def test_sharegpt_accepts_string_and_dict_replies_and_a_system_turn(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Q?"}],
         "chosen": {"from": "gpt", "value": "good"}, "rejected": "bad"},
    ])
    rows, _, _ = load_pairs(str(path), "sharegpt")
    assert rows == [{"prompt": [system("Be brief."), user("Q?")], "chosen": [assistant("good")],
                     "rejected": [assistant("bad")]}]


def test_system_prompt_is_prepended_once(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"prompt": [user("A?")], "chosen": [assistant("a")], "rejected": [assistant("b")]},
        {"prompt": [system("Own."), user("B?")], "chosen": [assistant("a")], "rejected": [assistant("b")]},
    ])
    rows, _, _ = load_pairs(str(path), system_prompt="Be honest.")
    assert rows[0]["prompt"] == [system("Be honest."), user("A?")]
    assert rows[1]["prompt"] == [system("Own."), user("B?")]


def test_hh_rlhf_rows_that_differ_before_the_last_reply_are_malformed(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [
        {"chosen": "\n\nHuman: A\n\nAssistant: x\n\nHuman: B\n\nAssistant: good",
         "rejected": "\n\nHuman: A\n\nAssistant: y\n\nHuman: B\n\nAssistant: bad"},
    ])
    with pytest.raises(UserError, match="line 1.*share every turn but one final assistant reply"):
        load_pairs(str(path), "hh_rlhf")


def test_hh_rlhf_transcript_ending_with_a_human_turn_is_malformed(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [
        {"chosen": "\n\nHuman: A\n\nAssistant: good\n\nHuman: more?", "rejected": "\n\nHuman: A\n\nAssistant: bad"},
    ])
    with pytest.raises(UserError, match="'chosen' ends with a Human turn"):
        load_pairs(str(path), "hh_rlhf")


@pytest.mark.skipif(not HH_FILE.is_file(), reason=f"shared HH-RLHF sample not found at {HH_FILE}")
def test_real_hh_rlhf_sample_parses():
    rows, skipped, fmt = load_pairs(str(HH_FILE), on_error="skip")
    assert fmt == DataFormat.hh_rlhf
    assert len(rows) >= 2000
    assert len(rows) + skipped == 2312
    # Row 1 of the file: two Human/Assistant exchanges, then a third Human turn the replies answer.
    first = rows[0]
    assert [m["role"] for m in first["prompt"]] == ["user", "assistant", "user", "assistant", "user"]
    assert first["prompt"][0]["content"] == "what are some pranks with a pen i can do?"
    assert first["chosen"][0]["content"].startswith("No, sorry!")
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert all(r["prompt"][-1]["role"] == "user" for r in rows)


# --- malformed rows ----------------------------------------------------------------------------

GOOD = {"prompt": "Q?", "chosen": "good", "rejected": "bad"}


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(UserError) as err:
        load_pairs(str(path))
    message = str(err.value)
    assert "pairs.jsonl" in message and "line 3" in message and "invalid JSON" in message
    assert "data.on_error=skip" in message
    assert "\n" not in message  # one paragraph


def test_empty_chosen_names_line_and_key(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD, {**GOOD, "chosen": "   "}])
    with pytest.raises(UserError, match=r"pairs\.jsonl, line 2.*'chosen' is empty"):
        load_pairs(str(path))


@pytest.mark.parametrize("bad, why", [
    ({"prompt": "Q?", "chosen": "good"}, "missing key 'rejected'"),
    ({**GOOD, "chosen": 3}, "'chosen' must be a string, got a number"),
    ({**GOOD, "prompt": ""}, "'prompt' is empty"),
    ({**GOOD, "rejected": "good"}, "identical"),
    ({**GOOD, "rejected": " good "}, "identical"),  # whitespace is not a different reply
])
def test_malformed_preference_rows(tmp_path, bad, why):
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD, bad])
    with pytest.raises(UserError, match=f"line 2.*{why}"):
        load_pairs(str(path), "preference")


def test_unknown_role_is_malformed(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"prompt": [{"role": "bot", "content": "Q?"}], "chosen": [assistant("a")], "rejected": [assistant("b")]},
    ])
    with pytest.raises(UserError, match="line 1.*message 1 of 'prompt' has unknown role 'bot'"):
        load_pairs(str(path), "conversational")


@pytest.mark.parametrize("bad, why", [
    ({"prompt": [assistant("hi")], "chosen": [assistant("a")], "rejected": [assistant("b")]},
     "the prompt's last turn is 'assistant'"),
    ({"prompt": [user("Q?")], "chosen": [], "rejected": [assistant("b")]}, "'chosen' must be a non-empty list"),
    ({"prompt": [user("Q?")], "chosen": [{"role": ["user"], "content": "a"}], "rejected": [assistant("b")]},
     "unknown role"),
    ({"prompt": [user("Q?")], "chosen": [assistant("a"), user("more")], "rejected": [assistant("b")]},
     "share every turn but one final assistant reply"),
    ({"prompt": [user("Q?")], "chosen": [assistant("a")], "rejected": [assistant("")]},
     "message 1 of 'rejected' \\(assistant\\) is empty"),
    ({"chosen": [assistant("a")], "rejected": [assistant("b")]}, "there is no prompt"),
])
def test_malformed_conversational_rows(tmp_path, bad, why):
    path = write_jsonl(tmp_path / "c.jsonl", [bad])
    with pytest.raises(UserError, match=f"c\\.jsonl, line 1 \\(data.format=conversational\\).*{why}"):
        load_pairs(str(path), "conversational")


def test_sharegpt_unknown_from_is_malformed(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [
        {"conversations": [{"from": "robot", "value": "Q?"}], "chosen": "a", "rejected": "b"},
    ])
    with pytest.raises(UserError, match="unknown from 'robot'.*use one of assistant, gpt, human, system, user"):
        load_pairs(str(path))


def test_ultrafeedback_with_a_system_turn_in_the_messages(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [
        {"prompt": "Q?", "chosen": [system("S."), user("Q?"), assistant("a")],
         "rejected": [system("S."), user("Q?"), assistant("b")], "score_chosen": 5.0},
    ])
    rows, _, fmt = load_pairs(str(path))
    assert fmt == DataFormat.ultrafeedback
    assert rows == [{"prompt": [system("S."), user("Q?")], "chosen": [assistant("a")], "rejected": [assistant("b")]}]


def test_bad_first_line_stops_auto_detection_in_raise_mode(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("[1, 2]\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(UserError, match="pairs.jsonl, line 1: the row is a list, not a JSON object"):
        load_pairs(str(path))


def test_skip_counts_malformed_rows_and_keeps_the_rest(tmp_path, caplog):
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps(GOOD), "", "{not json", json.dumps({**GOOD, "chosen": ""}),
             json.dumps({**GOOD, "rejected": "good"}), json.dumps({**GOOD, "prompt": "Q2?"}), ""]
    path.write_text("\n".join(lines))
    for on_error in ("skip", OnError.skip):
        rows, skipped, _ = load_pairs(str(path), on_error=on_error)
        assert skipped == 3  # blank lines are not rows, so not skipped either
        assert [r["prompt"][0]["content"] for r in rows] == ["Q?", "Q2?"]
    assert "Skipped 3 of 5 rows" in caplog.text


def test_skip_mode_detects_the_format_past_a_broken_first_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("{oops\n" + json.dumps(GOOD) + "\n")
    rows, skipped, fmt = load_pairs(str(path), on_error="skip")
    assert (len(rows), skipped, fmt) == (1, 1, DataFormat.preference)


def test_all_rows_malformed_is_an_error_even_when_skipping(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{**GOOD, "chosen": ""}, {**GOOD, "rejected": ""}])
    with pytest.raises(UserError, match="No usable rows.*all 2 rows are malformed"):
        load_pairs(str(path), on_error="skip")


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(UserError, match="empty.jsonl holds no rows"):
        load_pairs(str(path))


def test_undetectable_format_names_the_keys_found(tmp_path):
    path = write_jsonl(tmp_path / "odd.jsonl", [{"question": "Q?", "good": "a", "bad": "b"}])
    with pytest.raises(UserError, match="keys question \\(a string\\), good .*data.format"):
        load_pairs(str(path))


def test_missing_file_names_the_path_and_folder(tmp_path):
    missing = tmp_path / "nope" / "pairs.jsonl"
    with pytest.raises(UserError) as err:
        load_pairs(str(missing))
    assert str(missing) in str(err.value) and "does not exist" in str(err.value)
    write_jsonl(tmp_path / "other.jsonl", [GOOD])
    with pytest.raises(UserError, match="exists, but has no pairs.jsonl; data files there: other.jsonl"):
        load_pairs(str(tmp_path / "pairs.jsonl"))


def test_unreachable_hub_id_suggests_a_local_file(monkeypatch):
    import datasets
    import huggingface_hub.constants

    # Offline mode fails at once; otherwise the hub client retries for ~20 s before giving up.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="'no-such-org/no-such-data' is neither a local file nor a reachable hub"):
        load_pairs("no-such-org/no-such-data")


def test_invalid_format_name_lists_choices(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [GOOD])
    with pytest.raises(UserError, match="data.format='csv'.*preference"):
        load_pairs(str(path), "csv")


# --- sources -----------------------------------------------------------------------------------


def test_json_gz_and_jsonl_gz_files(tmp_path):
    want = [EXPECTED[0]]
    row = LAYOUTS[DataFormat.preference][0]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write(json.dumps(row) + "\n")
    with gzip.open(tmp_path / "b.json.gz", "wt") as f:
        json.dump([row], f)
    (tmp_path / "c.json").write_text(json.dumps({"data": [row]}))
    (tmp_path / "d.json").write_text(json.dumps({"rows": [row]}))
    for name in ("a.jsonl.gz", "b.json.gz", "c.json", "d.json"):
        assert load_pairs(str(tmp_path / name))[0] == want, name


def test_json_list_errors_say_row(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([GOOD, {**GOOD, "chosen": ""}]))
    with pytest.raises(UserError, match=r"pairs\.json, row 2.*'chosen' is empty"):
        load_pairs(str(path))


def test_save_to_disk_folders(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = LAYOUTS[DataFormat.conversational]
    Dataset.from_list([rows[0]]).save_to_disk(str(tmp_path / "ds"))
    assert load_pairs(str(tmp_path / "ds"))[0] == [EXPECTED[0]]

    hh = LAYOUTS[DataFormat.hh_rlhf]
    DatasetDict({"train": Dataset.from_list([hh[0]]), "test": Dataset.from_list([hh[1]])}).save_to_disk(
        str(tmp_path / "dd"))
    assert load_pairs(str(tmp_path / "dd"), split="test")[0] == [EXPECTED[1]]
    with pytest.raises(UserError, match="without a split 'validation'.*data.split"):
        load_pairs(str(tmp_path / "dd"), split="validation")


def test_folder_of_data_files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [LAYOUTS[DataFormat.preference][0]])
    assert load_pairs(str(folder), split="train")[0] == [EXPECTED[0]]


def test_to_dataset_round_trips():
    ds = to_dataset(EXPECTED)
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert [dict(r) for r in ds] == EXPECTED


def test_import_is_fast_and_lazy():
    code = "import sys, dpo_exp.data; print([m for m in ('datasets', 'torch', 'trl') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


# --- splits and held-out prompts ---------------------------------------------------------------


def numbered_pairs(tmp_path: Path, n: int, name: str = "pairs.jsonl") -> Path:
    return write_jsonl(tmp_path / name, [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"}
                                         for i in range(n)])


def prompts(rows: list[dict]) -> list[str]:
    return [r["prompt"][-1]["content"] for r in rows]


def test_load_splits_is_deterministic_and_respects_eval_fraction(tmp_path):
    cfg = DataConfig(path=str(numbered_pairs(tmp_path, 20)), eval_fraction=0.25)
    a, b, c = load_splits(cfg, seed=1), load_splits(cfg, seed=1), load_splits(cfg, seed=2)
    assert isinstance(a, Splits)
    assert (len(a.train), len(a.eval), a.skipped) == (15, 5, 0)
    assert (prompts(a.train), prompts(a.eval)) == (prompts(b.train), prompts(b.eval))
    assert prompts(a.train) != prompts(c.train)  # another seed, another shuffle
    assert sorted(prompts(a.train) + prompts(a.eval)) == sorted(f"Q{i}?" for i in range(20))
    assert a.source == "pairs.jsonl (20 rows, format preference)"


def test_load_splits_small_data_and_zero_fraction(tmp_path):
    path = str(numbered_pairs(tmp_path, 3))
    tiny = load_splits(DataConfig(path=path, eval_fraction=0.01), seed=0)
    assert (len(tiny.train), len(tiny.eval)) == (2, 1)  # at least one eval row
    none = load_splits(DataConfig(path=path, eval_fraction=0.0), seed=0)
    assert (len(none.train), len(none.eval)) == (3, 0)


def test_load_splits_max_rows_caps_after_shuffle(tmp_path):
    cfg = DataConfig(path=str(numbered_pairs(tmp_path, 50)), eval_fraction=0.2, max_rows=10)
    splits = load_splits(cfg, seed=3)
    assert (len(splits.train), len(splits.eval)) == (8, 2)
    assert prompts(splits.train + splits.eval) != [f"Q{i}?" for i in range(10)]  # not just the file's head
    assert "10 of 50 rows" in splits.source


def test_where_keeps_rows_whose_fields_match(tmp_path):
    rows = [{**GOOD, "prompt": f"Q{i}?", "kind": "true" if i % 3 == 0 else "false", "level": i % 2}
            for i in range(12)]
    path = str(write_jsonl(tmp_path / "pairs.jsonl", rows))
    splits = load_splits(DataConfig(path=path, eval_fraction=0.0, where={"kind": "true"}), seed=0)
    assert sorted(prompts(splits.train)) == sorted(f"Q{i}?" for i in (0, 3, 6, 9))
    assert "data.where {kind: true}" in splits.source
    # a list means any of its values; several keys must all match
    both = load_splits(DataConfig(path=path, eval_fraction=0.0, where={"kind": ["true", "false"], "level": 1}),
                       seed=0)
    assert sorted(prompts(both.train)) == sorted(f"Q{i}?" for i in range(1, 12, 2))


def test_where_on_an_unknown_field_or_matching_nothing_is_a_clear_error(tmp_path):
    path = str(write_jsonl(tmp_path / "pairs.jsonl", [{**GOOD, "kind": "a"}]))
    with pytest.raises(UserError, match=r"data.where filters on 'knd'.*no row of .*pairs.jsonl.*fields seen: "
                                        r"chosen, kind, prompt, rejected\). Fix: .*data.where=null"):
        load_pairs(path, where={"knd": "a"})
    with pytest.raises(UserError, match=r"data.where \{kind: b\} keeps no row of .*pairs.jsonl"):
        load_pairs(path, where={"kind": "b"})


def test_balance_by_repeats_the_smaller_groups_in_train_only(tmp_path):
    """data.balance_by=kind: as many train pairs of each kind as of the most common one; the eval split is the
    unbalanced run's, so the two runs' eval numbers compare; no carried field reaches the trainer."""
    from collections import Counter

    rows = [{**GOOD, "prompt": f"Q{i}?", "kind": "rare" if i % 4 == 0 else "common"} for i in range(40)]
    path = str(write_jsonl(tmp_path / "pairs.jsonl", rows))
    plain = load_splits(DataConfig(path=path, eval_fraction=0.1), seed=5)
    balanced = load_splits(DataConfig(path=path, eval_fraction=0.1, balance_by="kind"), seed=5)
    assert balanced.eval == plain.eval
    assert set(prompts(balanced.train)) == set(prompts(plain.train))  # every train pair, none of eval's
    kind = {f"Q{i}?": ("rare" if i % 4 == 0 else "common") for i in range(40)}
    before = Counter(kind[p] for p in prompts(plain.train))
    after = Counter(kind[p] for p in prompts(balanced.train))
    assert after["rare"] == after["common"] == before["common"] > before["rare"]
    assert max(Counter(p for p in prompts(balanced.train) if kind[p] == "rare").values()) <= \
        -(-before["common"] // before["rare"])  # repeated in turn, not one row many times
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in balanced.train + balanced.eval)
    assert f"{len(plain.train)} -> {len(balanced.train)} train pairs" in balanced.source
    with pytest.raises(UserError, match=r"data.balance_by=knd, but no row of .*pairs.jsonl has that field "
                                        r"\(fields seen: chosen, kind, prompt, rejected\)\. Fix: .*data.balance_by=null"):
        load_splits(DataConfig(path=path, balance_by="knd"), seed=0)


def test_where_composes_from_the_command_line():
    """The README's idioms: set on a config without a filter, replace (null first), add, change, drop."""
    from conftest import compose

    from dpo_exp.config import validate

    cfg = compose(["data=file", "data.path=pairs.jsonl", "data.where={kind: true_claim, domain: [math, law]}"])
    assert cfg.data.where == {"kind": "true_claim", "domain": ["math", "law"]}
    validate(cfg)
    # The shipped data trains on what the base model knows; your own file (data=file) is not filtered.
    syc = ["+experiment=sycophancy_facts"]
    assert compose(syc).data.where == {"base_knows": True}
    assert compose([*syc, "data=file", "data.path=pairs.jsonl"]).data.where is None
    assert compose([*syc, "data.where=null", "data.where={kind: true_claim}"]).data.where == {"kind": "true_claim"}
    assert compose([*syc, "+data.where.kind=true_claim"]).data.where == {"base_knows": True, "kind": "true_claim"}
    assert compose([*syc, "data.where.base_knows=false"]).data.where == {"base_knows": False}
    assert compose([*syc, "data.where=null"]).data.where is None
    with pytest.raises(UserError, match=r"data.where=3.*mapping of field to value.*data.where=\{kind: question\}"):
        validate(compose(["data.where=3"]))


def test_load_splits_uses_eval_path_and_counts_skips_of_both(tmp_path):
    train = numbered_pairs(tmp_path, 6)
    evalf = write_jsonl(tmp_path / "eval.jsonl", [GOOD, {**GOOD, "chosen": ""}])
    (tmp_path / "pairs.jsonl").write_text(train.read_text() + "{bad\n")
    cfg = DataConfig(path=str(train), eval_path=str(evalf), eval_fraction=0.5, on_error="skip",
                     system_prompt="Sys.")
    splits = load_splits(cfg, seed=0)
    assert len(splits.train) == 6  # eval_fraction is unused when eval_path is set
    assert prompts(splits.eval) == ["Q?"]
    assert splits.skipped == 2
    assert all(r["prompt"][0] == system("Sys.") for r in splits.train + splits.eval)
    assert "eval.jsonl" in splits.source


def test_load_heldout_keeps_extra_keys(tmp_path):
    path = write_jsonl(tmp_path / "heldout.jsonl", [
        {"prompt": "The Moon is made of cheese, right?", "claim_is_true": False, "topic": "space"},
        {"prompt": [user("Water boils at 100 C at sea level, right?")], "claim_is_true": True, "topic": "physics"},
    ])
    rows = load_heldout(str(path), system_prompt="Be honest.")
    assert rows == [
        {"prompt": [system("Be honest."), user("The Moon is made of cheese, right?")], "claim_is_true": False,
         "topic": "space"},
        {"prompt": [system("Be honest."), user("Water boils at 100 C at sea level, right?")],
         "claim_is_true": True, "topic": "physics"},
    ]


def test_load_heldout_errors_name_the_line(tmp_path):
    path = write_jsonl(tmp_path / "heldout.jsonl", [{"prompt": "ok?"}, {"topic": "x"}])
    with pytest.raises(UserError, match=r"heldout\.jsonl, line 2.*missing key 'prompt'"):
        load_heldout(str(path))
