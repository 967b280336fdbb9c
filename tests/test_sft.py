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
