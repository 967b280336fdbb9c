"""dpo_exp.data.convert and `python -m dpo_exp.convert`: round trips between every pair of layouts that can
hold the content, extra fields kept, and clear refusals (content a layout cannot hold, the input, an existing
output)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conftest import HH_RLHF, run_cli
from dpo_exp.config import DataConfig, DataFormat, UserError
from dpo_exp.data import load_pairs
from dpo_exp.data.convert import OutConfig, convert

FORMATS = [f for f in DataFormat if f != DataFormat.auto]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


PROVENANCE = {"id": "p1", "score_chosen": 8.5, "score_rejected": 3.0,
              "judge": {"name": "heuristic", "verdicts": ["A", "B"]}, "tags": ["math", "easy"]}
SINGLE = [  # every layout holds these
    {"prompt": [user("Is the Earth flat?")], "chosen": [assistant("No, it is round.")],
     "rejected": [assistant("Yes, it is flat.")], **PROVENANCE},
    {"prompt": [user("What is 2+2?\nAnswer briefly.")], "chosen": [assistant("4")], "rejected": [assistant("5")],
     "id": "p2"},
]
MULTI = [  # every layout but preference (one user string)
    {"prompt": [user("Hi"), assistant("Hello! How can I help?"), user("What is the capital of France?")],
     "chosen": [assistant("Paris.")], "rejected": [assistant("Lyon.")], "id": "m1"},
]
SYSTEM = [  # a system message: neither preference nor hh_rlhf
    {"prompt": [{"role": "system", "content": "Answer in one word."}, user("Largest planet?")],
     "chosen": [assistant("Jupiter.")], "rejected": [assistant("Saturn.")], "id": "s1"},
]
HOLDS = {
    DataFormat.preference: SINGLE,
    DataFormat.hh_rlhf: SINGLE + MULTI,
    DataFormat.conversational: SINGLE + MULTI + SYSTEM,
    DataFormat.sharegpt: SINGLE + MULTI + SYSTEM,
    DataFormat.ultrafeedback: SINGLE + MULTI + SYSTEM,
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pairs_of(path: Path, fmt: DataFormat | str = "auto") -> list[dict]:
    rows, _, _ = load_pairs(str(path), fmt)
    return [{k: [(m["role"], m["content"].strip()) for m in r[k]] for k in ("prompt", "chosen", "rejected")}
            for r in rows]


def extras(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("prompt", "chosen", "rejected", "conversations", "messages")}


def source_file(folder: Path, fmt: DataFormat) -> Path:
    """The rows `fmt` can hold, written in `fmt` (by convert, from the canonical conversational file)."""
    canonical = write_jsonl(folder / f"canonical_{fmt.value}.jsonl", HOLDS[fmt])
    out = folder / f"source.{fmt.value}.jsonl"
    convert(DataConfig(path=str(canonical)), OutConfig(path=str(out), format=fmt))
    return out


@pytest.mark.parametrize("source", FORMATS, ids=lambda f: f.value)
@pytest.mark.parametrize("target", FORMATS, ids=lambda f: f.value)
def test_round_trip_between_every_pair_of_layouts(source, target, tmp_path):
    src = source_file(tmp_path, source)
    rows = HOLDS[source]
    out, back = tmp_path / f"out.{target.value}.jsonl", tmp_path / f"back.{source.value}.jsonl"
    if not all(r in HOLDS[target] for r in rows):
        with pytest.raises(UserError) as e:
            convert(DataConfig(path=str(src), format=source), OutConfig(path=str(out), format=target))
        assert f"to out.format={target.value}; the first, at {src}, line " in str(e.value)
        assert "conversational, sharegpt, ultrafeedback" in str(e.value) and "out.flatten=true" in str(e.value)
        assert not out.exists()
        return
    result = convert(DataConfig(path=str(src), format=source), OutConfig(path=str(out), format=target))
    assert result.rows == len(rows) and result.source_format == source
    assert pairs_of(out, target) == pairs_of(out) == pairs_of(src)  # the same pairs, and auto-detection agrees
    assert [extras(r) for r in read_jsonl(out)] == [extras(r) for r in rows]  # provenance kept
    convert(DataConfig(path=str(out)), OutConfig(path=str(back), format=source))
    assert read_jsonl(back) == read_jsonl(src)  # and back: the very same records


def test_flatten_writes_what_a_lossy_layout_cannot_hold(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", SINGLE + MULTI + SYSTEM)
    pref = tmp_path / "pref.jsonl"
    result = convert(DataConfig(path=str(src)), OutConfig(path=str(pref), format="preference", flatten=True))
    assert result.flattened == 2
    prompts = [r["prompt"] for r in read_jsonl(pref)]
    assert prompts[:2] == ["Is the Earth flat?", "What is 2+2?\nAnswer briefly."]  # single turns untouched
    assert prompts[2] == "User: Hi\n\nAssistant: Hello! How can I help?\n\nUser: What is the capital of France?"
    assert prompts[3] == "System: Answer in one word.\n\nUser: Largest planet?"
    hh = tmp_path / "hh.jsonl"
    result = convert(DataConfig(path=str(src)), OutConfig(path=str(hh), format="hh_rlhf", flatten=True))
    assert result.flattened == 1
    assert read_jsonl(hh)[3]["chosen"] == "\n\nHuman: Answer in one word.\n\nLargest planet?\n\nAssistant: Jupiter."


def test_ultrafeedback_rows_keep_their_fields_and_come_back_unchanged(tmp_path):
    row = {"prompt": "Is the Earth flat?", "prompt_id": "abc123",
           "chosen": [user("Is the Earth flat?"), assistant("No, it is round.")],
           "rejected": [user("Is the Earth flat?"), assistant("Yes, it is flat.")],
           "messages": [user("Is the Earth flat?"), assistant("No, it is round.")],
           "score_chosen": 9.0, "score_rejected": 2.0}
    src = write_jsonl(tmp_path / "uf.jsonl", [row])
    convert(DataConfig(path=str(src)), OutConfig(path=str(tmp_path / "sg.jsonl"), format="sharegpt"))
    (sg,) = read_jsonl(tmp_path / "sg.jsonl")
    assert extras(sg) == {"prompt_id": "abc123", "score_chosen": 9.0, "score_rejected": 2.0}
    assert "messages" not in sg  # ultrafeedback's own copy of the chosen conversation, not provenance
    convert(DataConfig(path=str(tmp_path / "sg.jsonl")), OutConfig(path=str(tmp_path / "uf2.jsonl"), format="ultrafeedback"))
    assert read_jsonl(tmp_path / "uf2.jsonl") == [row]


def test_refusals_name_the_row_and_the_way_out(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", SINGLE + MULTI)
    with pytest.raises(UserError, match=r"Cannot convert 1 of 3 rows to out.format=preference; the first, at .*"
                                         r"in.jsonl, line 3: its prompt has 3 turns \(user, assistant, user\)"):
        convert(DataConfig(path=str(src)), OutConfig(path=str(tmp_path / "o.jsonl"), format="preference"))
    marker = [{"prompt": [user("Quote this: '\n\nHuman: hi'")], "chosen": [assistant("ok")], "rejected": [assistant("no")]}]
    with pytest.raises(UserError, match="HH turn marker"):
        convert(DataConfig(path=str(write_jsonl(tmp_path / "m.jsonl", marker))),
                OutConfig(path=str(tmp_path / "o.jsonl"), format="hh_rlhf"))
    clash = [{**SINGLE[1], "conversations": "a field that would make the output read as sharegpt"}]
    with pytest.raises(UserError, match=r"extra field\(s\) \['conversations'\]"):
        convert(DataConfig(path=str(write_jsonl(tmp_path / "c.jsonl", clash)), format="conversational"),
                OutConfig(path=str(tmp_path / "o.jsonl"), format="preference"))
    with pytest.raises(UserError, match="out.format=auto"):
        convert(DataConfig(path=str(src)), OutConfig(path=str(tmp_path / "o.jsonl"), format="auto"))
    with pytest.raises(UserError, match=r"unsupported output type.*\.jsonl"):
        convert(DataConfig(path=str(src)), OutConfig(path=str(tmp_path / "o.csv")))
    assert not (tmp_path / "o.jsonl").exists()


def test_never_overwrites_the_input_nor_an_existing_output_unless_asked(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", SINGLE)
    before = src.read_bytes()
    with pytest.raises(UserError, match="is the input .data.path.; convert never overwrites its input"):
        convert(DataConfig(path=str(src)), OutConfig(path=str(tmp_path / "." / "in.jsonl"), overwrite=True))
    assert src.read_bytes() == before
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(UserError, match="already exists.*out.overwrite=true"):
        convert(DataConfig(path=str(src)), OutConfig(path=str(out), format="sharegpt"))
    assert out.read_text() == "keep me\n"
    convert(DataConfig(path=str(src)), OutConfig(path=str(out), format="sharegpt", overwrite=True))
    assert pairs_of(out) == pairs_of(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temporary file left


@pytest.mark.parametrize("name", ["out.json", "out.jsonl.gz", "out.json.gz"])
def test_json_and_gzip_outputs(name, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", SINGLE + MULTI)
    convert(DataConfig(path=str(src)), OutConfig(path=str(tmp_path / name), format="hh_rlhf"))
    assert pairs_of(tmp_path / name) == pairs_of(src)


# --- the command ---------------------------------------------------------------------------------


@pytest.mark.skipif(not HH_RLHF.is_file(), reason="needs ../shared/data/hh-rlhf-harmless-base-test.jsonl.gz")
def test_cli_converts_the_hh_rlhf_sample_there_and_back(workdir):
    args = [f"data.path={HH_RLHF}", "data.on_error=skip", "out.path=hh_sharegpt.jsonl", "out.format=sharegpt"]
    out = run_cli(args, workdir, module="dpo_exp.convert")
    assert out.returncode == 0, out.stderr
    assert ("converted 2303 rows of" in out.stdout and "(format hh_rlhf) to hh_sharegpt.jsonl (format sharegpt); "
            "9 malformed rows skipped (data.on_error=skip; first: " in out.stdout and "line 87" in out.stdout), out.stdout
    out = run_cli(["data.path=hh_sharegpt.jsonl", "out.path=hh_again.jsonl.gz", "out.format=hh_rlhf"], workdir,
                  module="dpo_exp.convert")
    assert out.returncode == 0, out.stderr
    original, _, _ = load_pairs(str(HH_RLHF), on_error="skip")
    again, _, _ = load_pairs(str(workdir / "hh_again.jsonl.gz"))
    assert again == original
    assert sorted(p.name for p in workdir.iterdir()) == ["hh_again.jsonl.gz", "hh_sharegpt.jsonl"]  # no outputs/


def test_cli_refusals_are_one_clear_paragraph(tmp_path, workdir):
    src = write_jsonl(tmp_path / "in.jsonl", SINGLE + MULTI)
    out = run_cli([f"data.path={src}", "out.path=pref.jsonl", "out.format=preference"], workdir, module="dpo_exp.convert")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "Cannot convert 1 of 3 rows to out.format=preference" in out.stderr and "line 3" in out.stderr
    out = run_cli([f"data.path={src}", f"out.path={src}", "out.overwrite=true"], workdir, module="dpo_exp.convert")
    assert out.returncode == 2 and "never overwrites its input" in out.stderr
    out = run_cli([f"data.path={src}"], workdir, module="dpo_exp.convert")
    assert out.returncode == 2 and "out.path is not set" in out.stderr
    assert [p.name for p in workdir.iterdir()] == ["in.jsonl"]  # nothing written
