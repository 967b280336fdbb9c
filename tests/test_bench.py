"""benchmarks/bench_trl.py's command line, without training: the documented `make bench` call and its
--data presets must turn into overrides that Hydra's grammar accepts and that compose into the config
dpo_exp would run (a `~` in paths.cache once made `make bench` fail before the first step)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, compose
from dpo_exp import config


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_trl", REPO / "benchmarks" / "bench_trl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_trl = load_bench()


def test_help_lists_the_documented_options():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_trl.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--data {claims,pushback}", "--dpo-exp-arg", "--cache", "--seq-len", "--hardware"):
        assert option in proc.stdout, option


def test_make_bench_command_line_composes_into_the_run_dpo_exp_would_do(tmp_path, monkeypatch):
    """`make bench` = `bench_trl.py` with its defaults: `--cache ~/.cache/dpo_exp` reaches Hydra expanded."""
    monkeypatch.setenv("HOME", str(tmp_path / "home dir"))  # a space, to check the quoting too
    args = bench_trl.parse_args([])
    data_file = tmp_path / "it's here" / "pairs.jsonl"
    overrides = bench_trl.dpo_exp_args(args, data_file=data_file, steps=31, max_length=512, out_dir=tmp_path / "out",
                                       overrides={})
    cfg = config.to_object(compose(overrides))
    assert cfg.paths.cache == str(tmp_path / "home dir" / ".cache" / "dpo_exp")
    assert cfg.data.path == str(data_file) and cfg.data.eval_fraction == 0
    assert cfg.train.max_steps == 31 and cfg.train.batch_size == 4 and cfg.train.eval_steps == 31
    assert not cfg.train.cache_ref_log_probs and not cfg.eval.at_start
    assert cfg.hardware.device.value == "cpu" and cfg.paths.outputs == str(tmp_path / "out")


def test_gpu_command_line_with_a_random_model_and_dpo_exp_overrides(tmp_path):
    args = bench_trl.parse_args(["--model", "random", "--hardware", "gpu_bf16", "--cache", str(tmp_path),
                                 "--dpo-exp-arg", "train.eval_batch_size=32", "--dpo-exp-arg", "lora.dropout=0"])
    overrides = bench_trl.dpo_exp_args(args, data_file=tmp_path / "p.jsonl", steps=5, max_length=512,
                                       out_dir=tmp_path / "o", overrides={"num_hidden_layers": 2})
    cfg = config.to_object(compose(overrides))
    assert cfg.model.architecture == "qwen2.5-0.5b" and cfg.model.architecture_overrides == {"num_hidden_layers": 2}
    assert cfg.train.eval_batch_size == 32 and cfg.lora.dropout == 0 and cfg.hardware.load_in_4bit is False


@pytest.mark.parametrize("preset, group", sorted(bench_trl.DATA_PRESETS.items()))
def test_data_presets_read_the_data_config_groups_files(preset, group):
    """--data NAME reads what `data=<group>` names (its file, filter, shuffle), not a path of its own."""
    from dpo_exp.data import load_pairs

    cfg = config.to_object(compose([f"data={group}"]))
    rows = bench_trl.preset_rows(preset)
    everything, _, _ = load_pairs(cfg.data.path, cfg.data.format, where=cfg.data.where)
    assert len(rows) == len(everything) > 100
    key = lambda r: (str(r["prompt"]), str(r["chosen"]), str(r["rejected"]))  # noqa: E731
    assert {key(r) for r in rows} == {key(r) for r in everything}


def test_hydra_quote_keeps_plain_values_and_quotes_the_rest():
    assert bench_trl.hydra_quote("/a/b_c-1.2") == "/a/b_c-1.2"
    assert bench_trl.hydra_quote(Path("/a b")) == "'/a b'"
    assert bench_trl.hydra_quote("~/x") == "'~/x'"
    assert bench_trl.hydra_quote("it's") == "'it\\'s'"


def test_variants_are_checked_and_the_standard_forward_is_one_of_them(capsys):
    assert bench_trl.parse_args(["--variants", "dpo_exp,dpo_exp_standard,tuned"]).variants.split(",") == [
        "dpo_exp", "dpo_exp_standard", "tuned"]
    with pytest.raises(SystemExit):
        bench_trl.parse_args(["--variants", "dpo_exp,tunde"])
    assert "unknown tunde" in capsys.readouterr().err


def test_other_processes_cpu_time_is_measured_beside_a_child():
    """A timing names how much CPU the rest of the machine used meanwhile: a busy neighbour shows."""
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<3: pass"])
    try:
        wall, _, others = bench_trl.run([sys.executable, "-c", "import time; time.sleep(2)"], REPO, {},
                                        Path("/dev/null"))
    finally:
        busy.wait()
    assert wall >= 2 and others is not None and others > 1.0
