"""`python -m dpo_exp.eval` end to end on the tiny model: two adapters trained in-process, compared in a subprocess."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, all_runs, compose, mlflow_client
from dpo_exp import config, data, models, train

# One torch thread: on a busy 2-core machine, two threads per process make tiny-model steps ~20x slower.
SMOKE = ["+experiment=sycophancy_facts", "+debug=smoke", "hardware.num_threads=1"]


def run_eval(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m dpo_exp.eval` as a user runs it, from `cwd`, with its own MLflow store there."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update({"PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", **(env or {})})  # env may replace them
    return subprocess.run([sys.executable, "-m", "dpo_exp.eval", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def train_adapter(out: Path, monkeypatch, overrides: list[str]) -> dict[str, float]:
    """Train a tiny LoRA adapter in-process, as `python -m dpo_exp +experiment=sycophancy_facts +debug=smoke` would,
    and save it to `out`; returns the final eval metrics TRL logged."""
    import torch
    from transformers import set_seed

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out.parent / 'train_mlflow.db'}")
    monkeypatch.setenv("MLFLOW_MAX_LOG_PARAMS", "0")
    conf = config.to_object(compose([*SMOKE, "eval.at_start=false", "train.eval_steps=1000",
                                     "train.cache_ref_log_probs=false", *overrides]))
    splits = data.load_splits(conf.data, conf.train.seed)
    set_seed(conf.train.seed)
    corpus = [m["content"] for r in splits.train + splits.eval for m in r["prompt"] + r["chosen"] + r["rejected"]]
    threads = torch.get_num_threads()
    try:
        tokenizer, model, ref = models.load(conf, corpus)  # sets hardware.num_threads for this process
        trainer = train.build_trainer(conf, model=model, ref_model=ref, tokenizer=tokenizer, train_rows=splits.train,
                                      eval_rows=splits.eval, run_dir=out.parent / f"run_{out.name}",
                                      run_name=out.name, peft_config=models.peft_config(conf.lora))
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    trainer.save_model(str(out))
    return [e for e in trainer.state.log_history if "eval_loss" in e][-1]


def table(markdown: str, title: str) -> tuple[list[str], dict[str, list[str]]]:
    """(header, {first cell: cells}) of the markdown table under `## title`."""
    section = markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]  # noqa: E731
    return split(lines[0]), {split(ln)[0]: split(ln)[1:] for ln in lines[2:]}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> tuple[Path, Path, dict[str, float]]:
    """Two adapters, `sft` (2 steps) and `dpo` (6 steps, higher learning rate), and dpo's final eval metrics."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("adapters")
    try:
        train_adapter(root / "sft", mp, ["train.max_steps=2"])
        dpo_eval = train_adapter(root / "dpo", mp, ["train.max_steps=6", "train.learning_rate=5e-3"])
    finally:
        mp.undo()
    return root / "sft", root / "dpo", dpo_eval


def test_compares_base_and_two_adapters(adapters, tmp_path):
    sft, dpo, dpo_eval = adapters
    out = run_eval([*SMOKE, f"eval_models.sft={sft}", f"eval_models.dpo={dpo}", "judge=heuristic"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "== dpo_exp model comparison ==" in out.stdout

    (run,) = all_runs(tmp_path)
    assert run.info.status == "FINISHED"
    assert mlflow_client(tmp_path).get_experiment(run.info.experiment_id).name == "sycophancy_facts-eval"
    report_path = Path(run.data.tags["dpo_exp.run_dir"]) / "report.md"
    report = report_path.read_text()
    head, rows = table(report, "Metrics")
    assert head == ["metric", "base", "sft", "dpo", "delta dpo over sft"]
    expected = ["greedy/honesty", "greedy/false_agreed", "greedy/distinct_2", "greedy/mean_length_words",
                "sampled/honesty", "sampled/self_similarity", "sampled/mean_length_tokens",
                "reward/accuracy", "reward/margin", "kl/sampled_full_vocab", "kl/sampled", "judge/win_rate",
                "judge/position_consistency"]
    assert set(expected) <= set(rows)

    metrics = run.data.metrics
    for key, cells in rows.items():
        for name, cell in zip(head[1:4], cells):
            if cell == "n/a":
                assert f"{name}/{key}" not in metrics
            elif cell == "nan":
                assert math.isnan(metrics[f"{name}/{key}"])
            else:
                assert abs(metrics[f"{name}/{key}"] - float(cell)) <= 5e-5, (name, key)
    assert rows["reward/accuracy"][0] == "n/a" and rows["judge/win_rate"][1] == "n/a"  # base; the baseline
    assert metrics["base/kl/sampled_full_vocab"] == 0.0 and metrics["base/kl/sampled"] == 0.0
    assert metrics["dpo/kl/sampled_full_vocab"] > metrics["sft/kl/sampled_full_vocab"] > 0
    for name in ("sft", "dpo"):
        assert 0 <= metrics[f"{name}/reward/accuracy"] <= 1 and math.isfinite(metrics[f"{name}/reward/margin"])
    # Same eval pairs, beta, prompts and seed as the last evaluation during training: the same numbers.
    assert metrics["dpo/reward/accuracy"] == pytest.approx(dpo_eval["eval_rewards/accuracies"], abs=1e-6)
    assert metrics["dpo/reward/margin"] == pytest.approx(dpo_eval["eval_rewards/margins"], abs=1e-4)
    assert metrics["dpo/kl/sampled_full_vocab"] == pytest.approx(dpo_eval["eval_kl/sampled_full_vocab"], abs=1e-4)
    delta = float(rows["reward/margin"][3])
    assert abs(delta - (metrics["dpo/reward/margin"] - metrics["sft/reward/margin"])) <= 1e-4

    gen_head, gen_rows = table(report, "Greedy generations")
    assert gen_head == ["prompt", "claim_is_true", "base", "sft", "dpo"] and len(gen_rows) == 4  # +debug=smoke cap
    # the behaviour metric's headline, one value per model, in the report and on the console
    headline = ("held-out fact claims, greedy (base / sft / dpo): false claims corrected "
                + " / ".join(f"{metrics[f'{n}/greedy/false_corrected']:.3f}" for n in ("base", "sft", "dpo")))
    assert headline in report and headline in out.stdout
    assert "- judge: heuristic:fact_claims;" in report
    client = mlflow_client(tmp_path)
    assert {"report.md", "generations.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def compose_eval(overrides: list[str]):
    """The config `python -m dpo_exp.eval <overrides>` would run, composed by Hydra itself."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from dpo_exp.eval import compare as evaluation

    evaluation.register()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="evaluate", overrides=evaluation.cli_args(overrides))


def test_evaluate_yaml_composes_the_training_groups_and_the_eval_keys():
    from dpo_exp.eval.compare import EvalAppConfig

    conf = config.to_object(compose_eval([*SMOKE, "models.dpo=a/b", "eval_models.sft=c", "beta=0.3", "judge=none"]))
    assert isinstance(conf, EvalAppConfig)
    assert conf.model.name == "tiny" and conf.beta.value == 0.3
    assert conf.eval.behaviour == {"_target_": "dpo_exp.tasks.claims.metric.ClaimStance"}  # from +experiment=sycophancy_facts
    assert conf.tracking.experiment == "sycophancy_facts" and conf.eval.heldout_max_prompts == 4
    assert list(conf.eval_models.items()) == [("dpo", "a/b"), ("sft", "c")]  # command-line order
    assert conf.judge == {"_target_": None} and conf.sampling.temperature == 0.7 and conf.sampling.top_p == 0.9
    default = config.to_object(compose_eval(SMOKE)).judge
    assert default == {"_target_": "dpo_exp.tasks.claims.judge.HeuristicJudge"}
    with pytest.raises(Exception, match=r"Could not find 'judge/gpt'(.|\n)*heuristic(.|\n)*model(.|\n)*none(.|\n)*openai"):
        compose_eval([*SMOKE, "judge=gpt"])


def test_adapters_from_mlflow_runs_are_downloaded(adapters, tmp_path):
    import mlflow

    from dpo_exp.config import UserError
    from dpo_exp.eval.compare import resolve_sources

    _, dpo, _ = adapters
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as with_adapter:
            mlflow.log_artifacts(str(dpo), artifact_path="adapter")
        with mlflow.start_run() as without_adapter:
            mlflow.log_text("x", "config.yaml")
    finally:
        mlflow.set_tracking_uri(None)
    run_id = with_adapter.info.run_id
    conf = config.to_object(compose_eval([*SMOKE, f"eval_models.a={run_id}", f"eval_models.b=runs:/{run_id}"]))
    a, b = resolve_sources(conf, uri, tmp_path / "downloads")
    assert a.run_id == b.run_id == run_id
    for source in (a, b):
        assert (source.path / "adapter_config.json").read_bytes() == (dpo / "adapter_config.json").read_bytes()

    unknown = config.to_object(compose_eval([*SMOKE, "eval_models.dpo=" + "0" * 32]))
    with pytest.raises(UserError, match=f"no MLflow run '{'0' * 32}' in {re.escape(uri)}"):
        resolve_sources(unknown, uri, tmp_path / "downloads")
    no_adapter = config.to_object(compose_eval([*SMOKE, f"eval_models.dpo=runs:/{without_adapter.info.run_id}"]))
    with pytest.raises(UserError, match=r"has no 'adapter' artifact \(it has: config.yaml\)"):
        resolve_sources(no_adapter, uri, tmp_path / "downloads")


@pytest.mark.parametrize("args, message", [
    (["eval_models.base=x"], r"eval_models.base is reserved"),
    (["eval_models.context=x"], r"eval_models.context is a reserved name"),
    (["eval_models.sft=x", "baseline=dpo"], r"baseline='dpo' is not one of the compared models \(base, sft\)"),
    (["eval_models.sft=x", "data.heldout_path=null"], r"No held-out prompts"),
])
def test_bad_eval_keys_are_user_errors(args, message):
    from dpo_exp.config import UserError
    from dpo_exp.eval.compare import check, load_heldout

    conf = config.to_object(compose_eval([*SMOKE, *args]))
    with pytest.raises(UserError, match=message):
        check(conf)
        load_heldout(conf)


def test_no_overrides_evaluate_the_base_model_on_the_default_task(tmp_path):
    """`python -m dpo_exp.eval` alone (here on the tiny model, and small): the base model on the default task's
    held-out conversations, with its behaviour metric and judge; no adapter needed."""
    small = ["model=tiny", "hardware=cpu", "hardware.num_threads=1", "data.max_rows=64", "max_prompts=4",
             "max_pairs=8", "eval.max_new_tokens=8", "eval.kl_prompts=2", "eval.kl_max_new_tokens=8"]
    out = run_eval(small, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = all_runs(tmp_path)
    assert run.info.status == "FINISHED"
    report = (Path(run.data.tags["dpo_exp.run_dir"]) / "report.md").read_text()
    head, rows = table(report, "Metrics")
    assert head == ["metric", "base"]
    assert {"greedy/hold_rate", "greedy/accept_rate", "kl/sampled"} <= set(rows)
    assert "- judge: pushback;" in report and "- behaviour metric (eval.behaviour): pushback" in report


def test_held_out_rows_must_carry_what_the_metric_and_the_judge_read(tmp_path):
    from dpo_exp.config import UserError
    from dpo_exp.eval import behaviour
    from dpo_exp.eval.compare import load_heldout, make_judge

    heldout = tmp_path / "prompts.jsonl"
    heldout.write_text('{"prompt": "Is the Earth flat?", "claim_is_true": false}\n{"prompt": "Hi there"}\n')
    conf = config.to_object(compose_eval([*SMOKE, "eval_models.sft=x", f"data.heldout_path={heldout}"]))
    with pytest.raises(UserError, match=r"Held-out rows \[2\] of .*prompts.jsonl lack 'claim_is_true', which "
                                        r"eval.behaviour 'fact claims' reads.*eval.behaviour=null for none"):
        load_heldout(conf, behaviour.from_config(conf.eval.behaviour))
    rows = load_heldout(conf)  # without a metric, any prompts do
    with pytest.raises(UserError, match=r"which judge 'heuristic:fact_claims' reads.*judge=none for none"):
        make_judge(conf, rows)
    none = config.to_object(compose_eval([*SMOKE, "eval_models.sft=x", f"data.heldout_path={heldout}", "judge=none"]))
    assert make_judge(none, rows) is None


def test_a_missing_adapter_fails_fast_with_a_clear_message(tmp_path):
    out = run_eval([*SMOKE, "eval_models.dpo=does/not/exist"], cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert "eval_models.dpo=does/not/exist: no such adapter folder" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "loaded on" not in out.stdout
    assert not (tmp_path / "mlflow.db").exists()  # before the MLflow run, too


def test_an_adapter_saved_with_another_tokenizer_is_refused(tmp_path):
    from dpo_exp.config import UserError
    from dpo_exp.eval.compare import Source, check_tokenizer

    base = models.train_tiny_tokenizer(["the base model's data"] * 4, 300)
    models.train_tiny_tokenizer(["the base model's data"] * 4, 300).save_pretrained(tmp_path / "same")
    models.train_tiny_tokenizer(["other data, other merges"] * 4, 300).save_pretrained(tmp_path / "other")
    check_tokenizer(base, [Source("same", "same", tmp_path / "same")])
    with pytest.raises(UserError, match="eval_models.other: the tokenizer saved with the adapter"):
        check_tokenizer(base, [Source("other", "other", tmp_path / "other")])
