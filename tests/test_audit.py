"""dpo_exp.data.audit and `python -m dpo_exp.audit`: every planted flaw found, a clean file clean, token
counts exactly TRL's, and the pre-train audit of `python -m dpo_exp` (data.audit=warn|error|off)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from conftest import HH_RLHF, all_runs, compose, mlflow_client, run_cli
from dpo_exp import config
from dpo_exp.data import audit, load_splits

MAX_LENGTH = 128  # tokens of the tiny tokenizer: clean pairs are ~40-60, the long planted texts ~400
WORDS = ("amber basil cedar delta ember fable garnet harbor indigo jasper kettle lantern meadow nectar orchid "
         "pebble quartz raven saffron thistle umber velvet willow yarrow zephyr anchor bramble canyon dune "
         "falcon glacier heron island juniper kelp lagoon marble nutmeg otter prairie quill reef spruce tundra "
         "valley walnut badger copper drift fern grove hazel iris lichen mango nettle olive pine ridge sage "
         "timber vine wren acorn birch clover dahlia elm fig ginger hollow ivy lotus maple oak poppy rye "
         "sorrel tulip violet yew alder briar comet dawn echo flint gale husk inlet jade knoll loam mist "
         "north onyx plume quiver rust shale tide vapor wisp azure beacon cobalt").split()

CHECKS = ["malformed", "empty", "identical", "exact_duplicates", "near_duplicates", "identical_truncated",
          "prompt_too_long", "completion_truncated", "length_bias", "eval_overlap", "heldout_overlap",
          "flattened_prompts"]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def pair(prompt, chosen: str, rejected: str, **extra) -> dict:
    prompt = [user(prompt)] if isinstance(prompt, str) else prompt
    return {"prompt": prompt, "chosen": [assistant(chosen)], "rejected": [assistant(rejected)], **extra}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def make_data(folder: Path, planted: bool) -> dict:
    """Train, eval and held-out files of random-word text (no shared phrases by accident), chosen longer in
    exactly half the pairs. With `planted`, one flaw per check is added (the flaw -> its line or prompt
    number) and every chosen reply is made the longer one (length bias)."""
    rng = random.Random(0)
    train = []
    for i in range(40):
        long, short = words(rng, 9), words(rng, 6)
        chosen, rejected = (long, short) if i % 2 == 0 or planted else (short, long)
        train.append(pair(words(rng, 8), chosen, rejected, id=i))
    eval_rows = [pair(words(rng, 8), *((words(rng, 9), words(rng, 6))[:: 1 if i % 2 else -1]), id=100 + i)
                 for i in range(8)]
    heldout = [{"prompt": words(rng, 8)} for _ in range(6)]
    expected: dict[str, list[int]] = {}
    if planted:
        long_text = words(rng, 150)

        def plant(check: str, row) -> None:
            train.append(row)
            expected.setdefault(check, []).append(len(train))  # its line number

        plant("malformed", {"prompt": [user(words(rng, 8))], "chosen": [assistant(words(rng, 6))]})
        plant("empty", pair(words(rng, 8), words(rng, 6), "   "))
        plant("identical", pair(words(rng, 8), "Same reply.", "Same reply."))
        plant("identical_truncated", pair(words(rng, 8), long_text + " Yes.", long_text + " No."))
        expected["completion_truncated"] = [len(train)]  # both replies are cut too
        plant("prompt_too_long", pair(words(rng, 150), words(rng, 9), words(rng, 6)))
        plant("completion_truncated", pair(words(rng, 8), words(rng, 150), words(rng, 6)))
        plant("exact_duplicates", dict(train[3]))
        near = json.loads(json.dumps(train[5]))
        near["rejected"][0]["content"] = near["rejected"][0]["content"][:-1] + " extra."  # one more word
        plant("near_duplicates", near)
        plant("flattened_prompts", pair(f"Human: {words(rng, 6)}\n\nAssistant: {words(rng, 6)}\n\nHuman: "
                                        f"{words(rng, 6)}", words(rng, 9), words(rng, 6)))
        eval_rows.append(pair(train[7]["prompt"][0]["content"][:-1] + " indeed.", words(rng, 9), words(rng, 6)))
        expected["eval_overlap"] = [len(eval_rows)]
        heldout.append({"prompt": "Tell me: " + train[9]["prompt"][0]["content"]})
        expected["heldout_overlap"] = [len(heldout)]
    return {"train": write_jsonl(folder / "train.jsonl", train), "eval": write_jsonl(folder / "eval.jsonl", eval_rows),
            "heldout": write_jsonl(folder / "heldout.jsonl", heldout), "expected": expected}


def data_args(files: dict) -> list[str]:
    return ["data=file", f"data.path={files['train']}", f"data.eval_path={files['eval']}",
            f"data.heldout_path={files['heldout']}", f"train.max_length={MAX_LENGTH}"]


def found_numbers(check: dict) -> set[int]:
    """Line numbers (files) or prompt numbers (held-out) named first in each example of a check."""
    return {int(re.search(r"(?:line|prompt) (\d+)", e).group(1)) for e in check["examples"]}


def audit_dir(workdir: Path) -> Path:
    return next((workdir / "outputs" / "dpo_exp-data").glob("audit_*"))


# --- the command ---------------------------------------------------------------------------------


def test_audit_finds_every_planted_flaw_and_logs_the_report(tmp_path, workdir):
    files = make_data(tmp_path, planted=True)
    out = run_cli(["model=tiny", *data_args(files), "audit.max_examples=20"], workdir, module="dpo_exp.audit")
    assert out.returncode == 1, out.stderr  # a check at severity error
    report = json.loads((audit_dir(workdir) / "audit.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == CHECKS
    for name, numbers in files["expected"].items():
        assert checks[name]["severity"] != "ok", checks[name]
        assert found_numbers(checks[name]) == set(numbers), (name, checks[name]["examples"])
    bias = checks["length_bias"]
    assert bias["severity"] == "error" and bias["value"] > 0.85, bias  # chosen is the longer reply in every train pair
    assert report["severity"] == "error"
    # the console table names each check with its severity
    for name in CHECKS:
        assert re.search(rf"{name}\s+│\s+(warn|error)", out.stdout), name

    # Markdown, JSON and the histogram, in the run dir and as an MLflow run in <experiment>-data
    folder = audit_dir(workdir)
    assert (folder / "lengths.png").read_bytes()[:4] == b"\x89PNG"
    assert "| exact_duplicates | warn |" in (folder / "audit.md").read_text()
    client = mlflow_client(workdir)
    exp = client.get_experiment_by_name("dpo_exp-data")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["dpo_exp.audit.severity"] == "error"
    assert run.data.tags["dpo_exp.audit.identical_truncated"] == "warn (1/55)"
    assert run.data.metrics["audit/length_bias"] == bias["value"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"audit.md", "audit.json", "lengths.png"}


def test_audit_reports_nothing_on_a_clean_file(tmp_path, workdir):
    files = make_data(tmp_path, planted=False)
    out = run_cli(["model=tiny", *data_args(files)], workdir, module="dpo_exp.audit")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((audit_dir(workdir) / "audit.json").read_text())
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert {c["name"]: c["severity"] for c in report["checks"]} == dict.fromkeys(CHECKS, "ok")
    assert report["rows"] == {"train": 40, "eval": 8, "heldout": 6, "refused": 0}
    assert "audit: ok" in out.stdout


def test_bad_input_is_one_clear_error(tmp_path, workdir):
    out = run_cli(["data=file", "model=tiny"], workdir, module="dpo_exp.audit")
    assert out.returncode == 2 and "data.path is not set" in out.stderr, out.stderr
    out = run_cli(["data=file", f"data.path={tmp_path / 'nope.jsonl'}", "model=tiny"], workdir, module="dpo_exp.audit")
    assert out.returncode == 2 and "Data file not found" in out.stderr and "Traceback" not in out.stderr
    out = run_cli(["data=file", "data.path=x.jsonl", "audit.near_duplicates.warn=0.5", "audit.near_duplicates.error=0.1"],
                  workdir, module="dpo_exp.audit")
    assert out.returncode == 2 and "audit.near_duplicates" in out.stderr and "warn <= error" in out.stderr


@pytest.mark.skipif(not HH_RLHF.is_file(), reason="needs ../shared/data/hh-rlhf-harmless-base-test.jsonl.gz")
def test_audit_of_the_hh_rlhf_sample_with_the_bundled_tokenizer(workdir):
    """The numbers README quotes: 9 of 2,312 rows unreadable, 30 prompts longer than 512 SmolLM2 tokens, ..."""
    out = run_cli(["data=file", f"data.path={HH_RLHF}"], workdir, module="dpo_exp.audit")
    assert out.returncode == 1, out.stderr
    checks = {c["name"]: c for c in json.loads((audit_dir(workdir) / "audit.json").read_text())["checks"]}
    counts = {name: (c["count"], c["total"]) for name, c in checks.items()}
    assert counts["malformed"] == (5, 2312) and counts["empty"] == (4, 2312) and counts["identical"] == (0, 2312)
    assert counts["exact_duplicates"] == (0, 2303) and counts["near_duplicates"] == (0, 2303)
    assert counts["prompt_too_long"] == (30, 2303) and counts["completion_truncated"] == (58, 2303)
    assert counts["identical_truncated"] == (0, 2303) and counts["flattened_prompts"] == (0, 2303)
    assert checks["length_bias"]["detail"].startswith("chosen longer in 1012, shorter in 1255, equal in 36")
    assert "1645 of 2303 prompts have more than one turn" in checks["flattened_prompts"]["detail"]


# --- the measurements match what training does ----------------------------------------------------


def test_token_counts_and_truncation_are_exactly_trls(tmp_path, monkeypatch):
    """A real DPOTrainer (dpo_exp's own build_trainer) on the planted data: the pairs it keeps, their token ids,
    and its collator's truncation agree with the audit's."""
    from dpo_exp import models, train

    monkeypatch.chdir(tmp_path)
    files = make_data(tmp_path, planted=True)
    conf = config.to_object(compose(["model=tiny", "hardware=cpu", *data_args(files), "data.on_error=skip",
                                     "train.precompute_ref_log_probs=false", "train.cache_ref_log_probs=false"]))
    splits = load_splits(conf.data, conf.train.seed)
    corpus = [m["content"] for row in splits.train + splits.eval for m in row["prompt"] + row["chosen"] + row["rejected"]]
    tokenizer, model, _ = models.load(conf, corpus)
    assert models.load_tokenizer(conf, corpus).get_vocab() == tokenizer.get_vocab()  # the audit's tokenizer
    trainer = train.build_trainer(conf, model=model, ref_model=None, tokenizer=tokenizer, train_rows=splits.train,
                                  eval_rows=[], run_dir=tmp_path / "run", run_name="t",
                                  peft_config=models.peft_config(conf.lora))

    ours = audit.tokenize_like_trl(tokenizer, splits.train)
    kept = [t for t in ours if len(t.prompt) < MAX_LENGTH]
    assert len(kept) == len(ours) - 1  # the planted long prompt is dropped, by TRL and by the audit
    theirs = trainer.train_dataset
    assert len(theirs) == len(kept)
    for t, row in zip(kept, theirs):
        assert (t.prompt, t.chosen, t.rejected) == (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])

    # TRL's collator cuts both sequences of the identical_truncated pair to the same ids, as the audit says
    same = [i for i, t in enumerate(kept) if t.chosen[: MAX_LENGTH - len(t.prompt)] ==
            t.rejected[: MAX_LENGTH - len(t.prompt)]]
    assert len(same) == 1
    batch = trainer.data_collator([theirs[same[0]]])
    assert batch["input_ids"].shape[1] == MAX_LENGTH and batch["input_ids"][0].tolist() == batch["input_ids"][1].tolist()


def test_chat_templates_that_drop_or_refuse_turns_are_flagged(tmp_path, monkeypatch):
    """The flattened_prompts check renders multi-turn prompts with the model's own template."""
    from dpo_exp.models import train_tiny_tokenizer

    monkeypatch.chdir(tmp_path)
    rng = random.Random(1)
    multi = [user(words(rng, 6)), assistant(words(rng, 6)), user(words(rng, 6))]
    system = [{"role": "system", "content": "Be brief."}, user(words(rng, 6))]
    rows = [pair(words(rng, 8), words(rng, 7), words(rng, 5)) for _ in range(6)]
    rows += [pair(multi, words(rng, 7), words(rng, 5)), pair(system, words(rng, 7), words(rng, 5))]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    templates = {
        "chatml": None,  # the tiny tokenizer's own: holds every turn
        "last_turn_only": "{{ '<|im_start|>' + messages[-1]['role'] + '\\n' + messages[-1]['content'] + '<|im_end|>\\n' }}"
                          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        "no_system": "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                     "{% endif %}{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}",
    }
    found = {}
    for name, template in templates.items():
        folder = tmp_path / name
        tok = train_tiny_tokenizer([m["content"] for r in rows for m in r["prompt"] + r["chosen"]], 512)
        if template:
            tok.chat_template = template
        tok.save_pretrained(folder)
        conf = config.to_object(compose(["model=local", f"model.path={folder}", "data=file", f"data.path={data}",
                                         "data.eval_fraction=0"]))
        report = audit.standalone(conf, tmp_path / f"out_{name}")
        (check,) = [c for c in report.checks if c.name == "flattened_prompts"]
        found[name] = sorted(re.sub(r".*line \d+: ", "", e) for e in check.examples)
    assert found["chatml"] == []
    assert found["last_turn_only"] == ["the chat template drops turn 1 (system)", "the chat template drops turn 1 (user)"]
    assert len(found["no_system"]) == 1 and "refuses it" in found["no_system"][0]
    assert "System role not supported" in found["no_system"][0]


# --- the pre-train audit of `python -m dpo_exp` ------------------------------------------------------


def test_data_audit_error_stops_training_before_the_model_loads(tmp_path, workdir):
    files = make_data(tmp_path, planted=True)
    out = run_cli([*data_args(files), "+debug=smoke", "data.on_error=skip", "data.audit=error"], workdir)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "loaded on" not in out.stdout and not all_runs(workdir)
    err = " ".join(out.stderr.split())
    assert "pre-train data audit failed (data.audit=error), before loading the model" in err
    for name in ("malformed", "length_bias"):  # the checks at error; the warnings are not failures
        assert f"{name}: " in err and f"audit.{name}.error=" in err, name
    assert "exact_duplicates" not in err
    assert "data.audit=warn" in err and "data.audit=off" in err and "python -m dpo_exp.audit" in err


def test_data_audit_warn_trains_and_logs_the_findings_on_the_run(tmp_path, workdir):
    files = make_data(tmp_path, planted=True)
    out = run_cli([*data_args(files), "+debug=smoke", "data.on_error=skip"], workdir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "data audit: error" in out.stdout and "data.audit=warn" in out.stdout
    assert out.stdout.index("data audit:") < out.stdout.index("loaded on")
    (run,) = all_runs(workdir)
    assert run.info.status == "FINISHED"
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["dpo_exp.audit.severity"] == "error"
    assert tags["dpo_exp.audit.malformed"].startswith("error (3/")  # the skipped rows: malformed, empty, identical
    assert tags["dpo_exp.audit.exact_duplicates"].startswith("warn (1/")
    assert metrics["audit/length_bias"] > 0.85
    client = mlflow_client(workdir)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "audit")} == {
        "audit/audit.md", "audit/audit.json", "audit/lengths.png"}
    assert (Path(tags["dpo_exp.run_dir"]) / "audit" / "audit.json").is_file()


def test_data_audit_off_skips_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = make_data(tmp_path, planted=False)
    conf = config.to_object(compose(["model=tiny", *data_args(files), "data.audit=off"]))
    assert audit.pretrain(conf, load_splits(conf.data, conf.train.seed), []) is None
    conf = config.to_object(compose(["model=tiny", *data_args(files)]))
    report = audit.pretrain(conf, load_splits(conf.data, conf.train.seed), [])
    assert report is not None and report.severity == "ok"


def test_pretrain_audit_does_not_count_data_balance_by_repeats_as_duplicates(tmp_path, monkeypatch):
    """The repeats data.balance_by makes are wanted: the audit reads the train rows before them."""
    monkeypatch.chdir(tmp_path)
    rows = [{"prompt": f"Question number {i} about topic {i * 7}?", "chosen": f"Answer {i}, explained at length {i}.",
             "rejected": f"No idea {i * 3}.", "kind": "rare" if i % 4 == 0 else "common"} for i in range(40)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    conf = config.to_object(compose(["model=tiny", "data=file", f"data.path={path}", "data.balance_by=kind"]))
    splits = load_splits(conf.data, conf.train.seed)
    assert len(splits.train) > len(splits.unbalanced)  # repeated for training
    report = audit.pretrain(conf, splits, [])
    assert {c.name: c.severity for c in report.checks}["exact_duplicates"] == "ok"


def test_pretrain_audit_of_the_default_data_takes_seconds(monkeypatch, tmp_path):
    """The default run's data with the bundled tokenizer: what it finds (the eval split shares facts with
    train, by design) and how long it takes (README quotes it)."""
    monkeypatch.chdir(tmp_path)
    conf = config.to_object(compose(["+experiment=sycophancy_facts"]))
    from dpo_exp.data import load_heldout

    report = audit.pretrain(conf, load_splits(conf.data, conf.train.seed), load_heldout(conf.data.heldout_path))
    severities = {c.name: c.severity for c in report.checks}
    assert severities == {**dict.fromkeys(severities, "ok"), "eval_overlap": "warn"}
    assert report.seconds < 30


def test_audit_settings_do_not_change_the_run_fingerprint():
    """data.audit and audit.* change no result: resume=true finds the run whatever they are."""
    base = config.fingerprint(compose([]))
    assert config.fingerprint(compose(["data.audit=off", "audit.ngram=13", "audit.exact_duplicates.error=0.5"])) == base
    assert config.fingerprint(compose(["train.max_length=256"])) != base


@pytest.mark.skipif(not HH_RLHF.is_file(), reason="needs ../shared/data/hh-rlhf-harmless-base-test.jsonl.gz")
def test_the_hh_rlhf_preset_reads_the_sample_despite_its_malformed_rows(tmp_path, monkeypatch):
    """The audit's finding on the sample, acted on: data=hh_rlhf skips (and counts) its 9 malformed rows, so the
    README's `+experiment=hh_rlhf` command trains instead of stopping at line 87."""
    monkeypatch.chdir(tmp_path)
    conf = config.to_object(compose(["+experiment=hh_rlhf", f"data.path={HH_RLHF}"]))
    splits = load_splits(conf.data, conf.train.seed)
    assert (len(splits.train) + len(splits.eval), splits.skipped, splits.read) == (400, 9, 2312)


def test_the_random_model_audits_with_the_tokenizer_it_trains_with(tmp_path, monkeypatch):
    """model=random: the audit's tokenizer, before and after the weights folder exists, is the folder's."""
    from dpo_exp import models

    monkeypatch.chdir(tmp_path)
    small = "model.architecture_overrides={num_hidden_layers: 1, hidden_size: 64, intermediate_size: 128, " \
            "num_attention_heads: 2, num_key_value_heads: 1}"
    conf = config.to_object(compose(["model=random", small, f"paths.cache={tmp_path / 'cache'}"]))
    before = models.load_tokenizer(conf, [])
    folder = models.random_folder(conf.model, conf.paths.cache)
    from transformers import AutoTokenizer

    assert before.get_vocab() == AutoTokenizer.from_pretrained(folder).get_vocab()
    assert models.load_tokenizer(conf, []).get_vocab() == before.get_vocab()
