"""SFT stage: SFT then DPO from the SFT adapter, and the automatic base/SFT/SFT+DPO comparison."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import all_runs, mlflow_client, run_cli
from dpo_exp.sft import sft_rows

SMOKE = ["+experiment=sycophancy", "+debug=smoke"]


def test_sft_rows_train_on_the_chosen_reply():
    row = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}],
           "rejected": [{"role": "assistant", "content": "bad"}]}
    assert sft_rows([row]) == [{"prompt": row["prompt"], "completion": row["chosen"]}]


def test_sft_then_dpo_uses_the_sft_model_as_reference_and_compares_three_ways(workdir):
    out = run_cli([*SMOKE, "stage=sft_dpo", "sft.max_steps=4", "sft.learning_rate=1e-3"], cwd=workdir)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    train = next(r for r in all_runs(workdir) if r.data.tags.get("mlflow.runName", "").startswith("sycophancy"))
    assert train.info.status == "FINISHED"
    client = mlflow_client(workdir)
    assert client.get_metric_history(train.info.run_id, "sft/loss"), "SFT metrics are logged with an sft/ prefix"
    kl = sorted(client.get_metric_history(train.info.run_id, "eval_kl/sampled_full_vocab"), key=lambda m: m.step)
    # The reference is the SFT model: before the first DPO step the policy equals it exactly.
    assert kl[0].step == 0 and kl[0].value == 0.0
    run_dir = Path(train.data.tags["dpo_exp.run_dir"])
    assert (run_dir / "sft_adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    report = (run_dir / "three_way" / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| metric"))
    assert "base" in header and "sft" in header and "sft_dpo" in header and "delta" in header
    assert "== dpo_exp model comparison ==" in out.stdout
    assert "[dpo_exp] sft: 4 steps on " in out.stdout


def test_sft_then_dpo_is_reproducible_for_a_seed_and_its_caches_change_nothing(tmp_path):
    # The README promises: same config, seed, packages and machine -> the same numbers. The first run fills a cache
    # (reference log-probs, the SFT model's held-out replies, the step-0 evaluation); the second reads it. Any
    # unseeded step (the SFT stage's LoRA init, data order, the 'ref' adapter) or a cache entry keyed too loosely
    # (the base model's instead of the SFT model's) makes the two differ.
    cache = tmp_path / "cache"
    runs = []
    for name in ("first", "second"):
        workdir = tmp_path / name
        workdir.mkdir()
        out = run_cli([*SMOKE, "stage=sft_dpo", "sft.max_steps=4", "sft.learning_rate=1e-3", "train.seed=7",
                       "hardware.num_threads=1", f"paths.cache={cache}"], cwd=workdir)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        train = next(r for r in all_runs(workdir) if r.data.tags.get("mlflow.runName", "").startswith("sycophancy"))
        client = mlflow_client(workdir)
        curves = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(train.info.run_id, key),
                                                           key=lambda m: m.step)]
                  for key in ("sft/loss", "loss", "eval_kl/sampled_full_vocab")}
        run_dir = Path(train.data.tags["dpo_exp.run_dir"])
        adapters = {d: (run_dir / d / "adapter_model.safetensors").read_bytes() for d in ("sft_adapter", "adapter")}
        heldout = {k: v for k, v in train.data.metrics.items() if k.startswith("heldout/")}
        runs.append((curves, adapters, heldout, train.data.tags))
    (curves1, adapters1, heldout1, tags1), (curves2, adapters2, heldout2, tags2) = runs
    assert tags1["dpo_exp.ref_logps.train"] == "computed" and tags2["dpo_exp.ref_logps.train"] == "cached"
    assert all(curves1[k] for k in curves1), curves1
    assert curves1 == curves2
    assert heldout1 and heldout1 == heldout2
    assert adapters1["sft_adapter"] == adapters2["sft_adapter"], "the SFT stage is not reproducible for a seed"
    assert adapters1["adapter"] == adapters2["adapter"], "the DPO stage after SFT is not reproducible for a seed"
