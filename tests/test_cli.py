"""Command-line plumbing: argument rewriting shared by every dpo_exp command."""

from __future__ import annotations

from dpo_exp.cli import hydra_argv


def test_hydra_flags_move_before_the_overrides():
    # argparse reads overrides as one list: `a --cfg job b` would leave `b` unrecognised
    assert hydra_argv(["x", "+experiment=sycophancy", "--cfg", "job", "beta=-1"]) == [
        "x", "--cfg", "job", "+experiment=sycophancy", "beta.value=-1"]
    assert hydra_argv(["x", "a=1", "-m", "b=1,2", "--config-dir", "/d", "c=3", "--info"]) == [
        "x", "-m", "--config-dir", "/d", "--info", "a=1", "b=1,2", "c=3"]
    assert hydra_argv(["x", "--info", "searchpath", "a=1", "--cfg=job"]) == ["x", "--info", "searchpath", "--cfg=job",
                                                                           "a=1"]
    assert hydra_argv(["x", "beta=low", "train.max_steps=-1"]) == ["x", "beta=low", "train.max_steps=-1"]
