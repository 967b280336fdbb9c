"""Training end to end on the tiny model: real TRL, real MLflow (sqlite), real Hydra composition."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, all_runs, compose, mlflow_client, run_cli
from dpo_exp import cache, config, data, models, runs, train
from dpo_exp.config import LossType

SMOKE = ["+experiment=sycophancy_facts", "+debug=smoke"]

TRL_KEYS = ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
            "logps/chosen", "logps/rejected"]
KL_KEYS = ["eval_kl/sampled", "eval_kl/sampled_full_vocab", "eval_kl/sampled_stderr", "eval_kl/sampled_per_token"]


def tiny_trainer(tmp_path: Path, monkeypatch, overrides: list[str]) -> train.DPOExpTrainer:
    """The trainer `python -m dpo_exp` would build, in-process, logging to a sqlite store in tmp_path."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_MAX_LOG_PARAMS", "0")
    from transformers import set_seed

    conf = config.to_object(compose([*SMOKE, *overrides]))
    splits = data.load_splits(conf.data, conf.train.seed)
    set_seed(conf.train.seed)
    corpus = [m["content"] for r in splits.train + splits.eval for m in r["prompt"] + r["chosen"] + r["rejected"]]
    tokenizer, model, ref = models.load(conf, corpus)
    return train.build_trainer(conf, model=model, ref_model=ref, tokenizer=tokenizer, train_rows=splits.train,
                               eval_rows=splits.eval, run_dir=tmp_path / "run", run_name="test",
                               peft_config=models.peft_config(conf.lora))


def test_4bit_training_runs_under_bf16_autocast_whatever_the_unquantized_weights_dtype():
    """gpu_4bit computes in bf16 (bnb_4bit_compute_dtype); with hardware.dtype=float32 the embeddings and
    norms load in fp32, so the first parameter's dtype does not say bf16: the trainer must still autocast."""
    import torch

    conf = config.to_object(compose([*SMOKE, "hardware=gpu_4bit", "hardware.dtype=float32"]))
    _, model = models.build_tiny(conf.model.tiny, ["Is the sky blue? Yes, it is."], seed=0)
    assert next(model.parameters()).dtype == torch.float32
    assert train.computes_in_bf16(conf, model)
    cpu = config.to_object(compose(SMOKE))
    assert not train.computes_in_bf16(cpu, model)
    assert train.computes_in_bf16(cpu, model.to(torch.bfloat16))  # a bf16 model (hardware=gpu_bf16)


def test_kl_estimate_is_zero_untrained_and_positive_after_training(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path, monkeypatch, [
        "train.max_steps=30", "train.learning_rate=5e-3", "eval.at_start=false", "train.eval_steps=1000",
        "eval.kl_prompts=4", "eval.kl_samples_per_prompt=4", "eval.kl_max_new_tokens=16"])
    from dpo_exp import evaluate

    # LoRA's B matrices start at zero: policy == reference, bit for bit, so the trainer reports 0 without
    # sampling; sampling says the same.
    assert trainer.policy_is_reference()
    sampled = evaluate.sampled_kl(trainer.model, trainer.processing_class, trainer.kl_prompts,
                                  evaluate.reference_context(trainer), samples_per_prompt=4, max_new_tokens=16, seed=0)
    assert sampled == trainer.estimate_kl() == dict.fromkeys(sampled, 0.0)
    trainer.train()
    assert not trainer.policy_is_reference()
    after = trainer.estimate_kl()
    assert after["kl/sampled_full_vocab"] > 0.01
    assert after["kl/sampled"] > 0
    assert math.isfinite(after["kl/sampled_stderr"])


def test_token_logprobs_projects_only_the_completion_positions_and_equals_the_full_logits():
    """The KL estimate's scoring projects onto the vocabulary only the positions that predict a completion
    token (transformers' boolean `logits_to_keep`); the result equals log-softmax over every position's logits."""
    import torch
    from dpo_exp import evaluate

    conf = config.to_object(compose(SMOKE))
    _, model = models.build_tiny(conf.model.tiny, ["Is the sky blue? Yes, it is. No, it is green."], seed=0)
    model.eval()
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    shapes = [(5, 3), (9, 1), (2, 6), (7, 4)]  # (prompt, completion) lengths: right padding differs per row
    pairs = [(torch.randint(3, vocab, (n,), generator=g), torch.randint(3, vocab, (k,), generator=g)) for n, k in shapes]
    projected = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: projected.append(tuple(i[0].shape)))
    (scored,) = list(evaluate.token_logprobs(model, pairs, pad_id=0, batch_size=4))
    hook.remove()
    assert projected == [(sum(k for _, k in shapes), model.config.hidden_size)]  # 14 positions, not 4 x 15
    ids, mask, completion = evaluate._pad(pairs, 0)
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), dim=-1)
    for i, (logprobs, tokens) in enumerate(scored):
        sel = completion[i, 1:]
        assert len(tokens) == shapes[i][1]
        torch.testing.assert_close(logprobs, full[i][sel], rtol=0, atol=1e-5)
        assert torch.equal(tokens, ids[i, 1:][sel])


def test_verdict_probe_matches_the_reference_until_training_moves_it(tmp_path, monkeypatch):
    from dpo_exp import evaluate
    from dpo_exp.tasks.claims.probe import verdict_metrics

    trainer = tiny_trainer(tmp_path, monkeypatch, [
        "train.max_steps=20", "train.learning_rate=5e-3", "eval.at_start=false", "train.eval_steps=1000"])
    conf = config.to_object(compose(SMOKE))
    heldout = data.load_heldout(conf.data.heldout_path, conf.data.system_prompt)[:8]
    rows = [{} for _ in heldout]
    as_ref = evaluate.reference_context(trainer)
    untrained = verdict_metrics(trainer.model, trainer.processing_class, heldout, as_ref, rows)
    assert untrained["before/verdict_auc"] == untrained["after/verdict_auc"]
    assert [r["verdict_before"] for r in rows] == [r["verdict_after"] for r in rows]
    trainer.train()
    verdict_metrics(trainer.model, trainer.processing_class, heldout, as_ref, rows)
    assert [r["verdict_before"] for r in rows] != [r["verdict_after"] for r in rows]
    assert all(math.isfinite(r["verdict_after"]) for r in rows)


def test_reference_cache_key_ignores_which_layers_carry_lora(tmp_path, monkeypatch):
    """The reference is the base model whatever the LoRA targets, so a lora sweep reuses one reference pass."""
    hashes = {cache.base_weights_hash(tiny_trainer(tmp_path / preset, monkeypatch, [f"lora={preset}"]).model)
              for preset in ("attn", "all_linear")}
    assert len(hashes) == 1


def test_kl_with_full_finetuning_uses_the_frozen_reference(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path, monkeypatch, [
        "lora=none", "train.max_steps=10", "train.learning_rate=1e-3", "eval.at_start=false", "train.eval_steps=1000"])
    assert trainer.ref_model is not None
    assert trainer.estimate_kl()["kl/sampled_full_vocab"] == 0.0
    trainer.train()
    assert trainer.estimate_kl()["kl/sampled_full_vocab"] > 0


@pytest.mark.parametrize("loss", [t.value for t in LossType])
def test_every_loss_preset_trains(loss, tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path, monkeypatch, [
        f"loss={loss}", "train.max_steps=2", "train.logging_steps=1", "eval.at_start=false", "train.eval_steps=1000"])
    assert trainer.loss_types == [loss]
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert losses and all(math.isfinite(v) for v in losses)


def test_runs_are_reproducible_with_the_same_seed(tmp_path, monkeypatch):
    args = ["train.max_steps=3", "train.logging_steps=1", "eval.at_start=false", "train.eval_steps=1000"]
    first = tiny_trainer(tmp_path / "a", monkeypatch, args)
    first.train()
    second = tiny_trainer(tmp_path / "b", monkeypatch, args)
    second.train()
    key = lambda t: [e["loss"] for e in t.state.log_history if "loss" in e]  # noqa: E731
    assert key(first) == key(second)


def test_smoke_run_logs_every_metric_param_and_artifact(workdir):
    out = run_cli(SMOKE, cwd=workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "== dpo_exp summary ==" in out.stdout and "mlflow ui --backend-store-uri sqlite:///" in out.stdout
    (run,) = all_runs(workdir)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "sycophancy_facts debug=smoke"
    client = mlflow_client(workdir)
    expected = TRL_KEYS + [f"eval_{k}" for k in TRL_KEYS if k != "loss"] + ["eval_loss"] + KL_KEYS + [
        "heldout/before/false_corrected", "heldout/after/false_corrected", "heldout/after/true_affirmed",
        "heldout/before/verdict_auc", "heldout/after/verdict_auc"]
    for key in expected:
        history = client.get_metric_history(run.info.run_id, key)
        assert history, f"metric {key} missing"
        assert all(math.isfinite(m.value) for m in history), key
    kl0 = min(client.get_metric_history(run.info.run_id, "eval_kl/sampled_full_vocab"), key=lambda m: m.step)
    assert kl0.step == 0 and kl0.value == 0.0  # evaluated before the first step: KL to itself
    params = run.data.params
    assert params["beta.value"] == "0.1" and params["model.name"] == "tiny" and params["loss.type"] == "sigmoid"
    assert "per_device_train_batch_size" not in params  # params are our config, not all TrainingArguments
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "dpo_config.json", "heldout_generations.json", "heldout_generations.md", "adapter"} <= artifacts
    adapter = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in adapter and "adapter/adapter_config.json" in adapter
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "heldout_generations.json", str(workdir))).read_text())
    assert {"prompt", "before", "after", "claim_is_true", "label_before", "label_after", "verdict_before",
            "verdict_after"} <= set(table["columns"])
    assert "held-out fact claims (before -> after): false claims corrected " in out.stdout
    run_dir = Path(run.data.tags["dpo_exp.run_dir"])
    state = json.loads((run_dir / "run_state.json").read_text())
    assert state["status"] == "finished" and state["mlflow_run_id"] == run.info.run_id
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file() and (run_dir / "config.yaml").is_file()


def test_divergence_stops_the_run_and_marks_it_failed(workdir):
    # IPO's target 1/(2*beta) squared overflows float32 for a tiny beta: a real non-finite loss.
    out = run_cli([*SMOKE, "loss=ipo", "beta.value=1e-30", "train.logging_steps=1"], cwd=workdir)
    assert out.returncode == 2
    assert "Training diverged" in out.stderr and "not finite" in out.stderr
    (run,) = all_runs(workdir)
    assert run.info.status == "FAILED"


def test_interrupted_run_resumes_into_the_same_mlflow_run(workdir):
    args = [*SMOKE, "train.max_steps=40", "train.eval_steps=5", "eval.kl_prompts=1", "eval.at_start=false"]
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    proc = subprocess.Popen([sys.executable, "-m", "dpo_exp", *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300

    def saved_a_checkpoint() -> bool:
        # Complete means a parseable trainer_state.json, what resume requires: the file exists, empty,
        # from Trainer's open() to its close(), and a SIGTERM inside that window leaves a checkpoint that
        # resume rightly passes over (the likeliest cause of one CI failure that did not reproduce here).
        return any(runs.last_checkpoint(state.parent) for state in workdir.glob(f"outputs/**/{runs.STATE_FILE}"))

    while not saved_a_checkpoint() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    (run,) = all_runs(workdir)
    assert run.info.status == "KILLED"  # not left RUNNING
    run_dir = Path(run.data.tags["dpo_exp.run_dir"])
    assert json.loads((run_dir / "run_state.json").read_text())["status"] == "killed"
    assert runs.last_checkpoint(run_dir)

    out = run_cli([*args, "resume=true"], cwd=workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"continuing {run_dir}" in out.stdout and "resuming at step" in out.stdout, out.stdout[-3000:]
    (run,) = all_runs(workdir)  # the same run, continued
    assert run.info.status == "FINISHED"
    steps = [m.step for m in mlflow_client(workdir).get_metric_history(run.info.run_id, "loss")]
    assert max(steps) == 40

    again = run_cli([*args, "resume=true"], cwd=workdir)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert len(all_runs(workdir)) == 1


@pytest.mark.parametrize(
    "make_input, expected",
    [
        (lambda d: d.joinpath("bad.jsonl").write_text(
            '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b", "rejected": "d"}\n'
            '{"prompt": "a", "chosen": "b", "rejected" "oops"}\n'), r"bad\.jsonl.*line 3"),
        (lambda d: d.joinpath("bad.jsonl").write_text(
            '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "q", "chosen": "  ", "rejected": "d"}\n'),
         r"bad\.jsonl.*line 2.*chosen"),
    ],
)
def test_malformed_data_fails_before_the_model_loads(make_input, expected, workdir):
    import re

    make_input(workdir)
    out = run_cli(["+debug=smoke", "data=file", "data.path=bad.jsonl"], cwd=workdir, timeout=120)
    assert out.returncode == 2
    assert re.search(expected, out.stderr, re.S), out.stderr[-2000:]
    assert "loaded on" not in out.stdout and not all_runs(workdir)


def test_unreachable_tracking_server_fails_fast(workdir):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run_cli(SMOKE, cwd=workdir, env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}, timeout=120)
    assert out.returncode == 2
    assert f"http://127.0.0.1:{port} is unreachable" in out.stderr and "mlflow server" in out.stderr
    assert "loaded on" not in out.stdout


def test_a_cached_reference_pass_trains_exactly_like_a_computed_one(tmp_path, monkeypatch):
    """A re-run (or a later sweep job) that reuses the reference cache must reproduce the first run's numbers:
    same reference values, and the reference pass must not shift the seeded RNG stream."""
    overrides = [f"paths.cache={tmp_path / 'cache'}", "train.max_steps=6", "eval.at_start=false", "train.eval_steps=1000"]
    histories = {}
    for attempt in ("computed", "cached"):
        trainer = tiny_trainer(tmp_path / attempt, monkeypatch, overrides)
        assert trainer.ref_cache_events["train"] == attempt
        trainer.train()
        histories[attempt] = [(e["step"], e["loss"], e["rewards/margins"]) for e in trainer.state.log_history if "loss" in e]
    assert histories["computed"] and histories["cached"] == histories["computed"]


def test_reference_pass_values_are_the_reference_models_log_probs(tmp_path, monkeypatch):
    """dpo_exp's reference pass (its batches, kept on the device until the end) gives, pair for pair, what TRL's
    own `compute_ref_log_probs` gives for each pair alone (no padding): the batching changes nothing."""
    import torch

    trainer = tiny_trainer(tmp_path, monkeypatch, ["train.cache_ref_log_probs=false", "train.eval_batch_size=3"])
    ds = trainer.train_dataset
    assert len(ds) > 3  # several batches, the last one short
    columns = [c for c in ds.column_names if c not in ("ref_chosen_logps", "ref_rejected_logps")]
    for i in range(len(ds)):
        batch = trainer.data_collator([{k: ds[i][k] for k in columns}])
        chosen, rejected = trainer.compute_ref_log_probs(trainer.model, batch)
        assert ds[i]["ref_chosen_logps"] == pytest.approx(chosen.item(), abs=1e-5, rel=1e-6), i
        assert ds[i]["ref_rejected_logps"] == pytest.approx(rejected.item(), abs=1e-5, rel=1e-6), i
    assert isinstance(ds[0]["ref_chosen_logps"], float) and torch.isfinite(torch.tensor(ds["ref_chosen_logps"])).all()


@pytest.mark.parametrize("flag", [False, True])
def test_torch_compile_reaches_the_trainer_arguments(tmp_path, flag):
    """train.torch_compile is Trainer's `torch_compile` (what gpu_check's mfu stage measures); off by default."""
    conf = config.to_object(compose([*SMOKE, f"train.torch_compile={str(flag).lower()}"]))
    args = train.dpo_config(conf, tmp_path, has_eval=False, run_name="t", bf16=False, use_cpu=True)
    assert args.torch_compile is flag
    assert config.to_object(compose(SMOKE)).train.torch_compile is False


def test_the_step0_evaluation_is_computed_once_per_start(tmp_path, monkeypatch):
    """A second run from the same start (here: another learning rate, or another beta: before the first step every
    log-ratio is 0, so the sigmoid loss and the rewards do not depend on it) logs the cached step-0 evaluation, the
    same numbers the first run computed, KL included; another seed, or a loss whose value at 0 depends on beta (ipo),
    is another start and computes its own."""
    common = [f"paths.cache={tmp_path / 'cache'}", "train.max_steps=2", "train.eval_steps=1000", "eval.at_start=true"]

    histories = {}

    def step0(name, overrides):
        trainer = tiny_trainer(tmp_path / name, monkeypatch, [*common, *overrides])
        trainer.train()
        (entry,) = [e for e in trainer.state.log_history if "eval_loss" in e and e["step"] == 0]
        histories[name] = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
        return trainer.start_eval_event, {k: v for k, v in entry.items() if "runtime" not in k and "per_second" not in k}

    event, first = step0("first", [])
    assert event == "computed" and "eval_kl/sampled" in first and "eval_rewards/margins" in first
    event, rerun = step0("rerun", [])
    # Reusing it leaves the random stream where computing it did: the same batches, the same losses.
    assert event == "cached" and rerun == first and histories["rerun"] == histories["first"]
    event, again = step0("again", ["train.learning_rate=1e-3"])
    assert event == "cached" and again == first
    event, beta = step0("beta", ["beta.value=0.3"])
    assert event == "cached" and beta == first
    # What sharing it across beta assumes, computed: another beta's own step-0 evaluation is the same numbers.
    event, beta_computed = step0("beta_off", ["beta.value=0.3", "eval.cache_start=false"])
    assert event is None and beta_computed == first
    assert step0("ipo", ["loss.type=ipo"])[0] == "computed"
    assert step0("ipo_beta", ["loss.type=ipo", "beta.value=0.3"])[0] == "computed"
    assert step0("seed", ["train.seed=7"])[0] == "computed"
    assert step0("off", ["eval.cache_start=false"])[0] is None


def test_a_reused_step0_evaluation_leaves_the_random_stream_where_computing_it_did(tmp_path, monkeypatch):
    """The evaluation draws from the random generators (each DataLoader draws a seed) and the training batches
    drawn after it depend on that: reusing it must move the generators exactly as computing it did."""
    import random

    import numpy as np
    import torch

    after = {}
    for event in ("computed", "cached"):
        trainer = tiny_trainer(tmp_path / event, monkeypatch, [f"paths.cache={tmp_path / 'cache'}"])
        before = torch.get_rng_state()
        trainer.evaluate()
        assert trainer.start_eval_event == event
        after[event] = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1])
    assert not torch.equal(after["computed"][0], before)  # the evaluation does draw: the test means something
    assert torch.equal(after["cached"][0], after["computed"][0])
    assert after["cached"][1] == after["computed"][1] and (after["cached"][2] == after["computed"][2]).all()
