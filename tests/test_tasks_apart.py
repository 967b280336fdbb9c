"""Tasks stay apart from the framework: the framework names no task and never imports one, and a task
kept outside dpo_exp (tests/toytask) builds its pairs and trains through config alone."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest

from conftest import REPO, all_runs, run_cli

PACKAGE = REPO / "dpo_exp"
# The shipped tasks' words. A letter before them does not count ("disclaimer", "reclaim"); anything else
# does, so `claim_is_true`, `true_claim` and `PushbackJudge` are caught.
TASK_WORDS = re.compile(r"(?<![a-z])(sycophan|pushback|push-back|claim)", re.IGNORECASE)


def framework_files():
    """Every file of the package outside dpo_exp/tasks/ and the dpo_exp/conf link (presets name tasks)."""
    for path in sorted(PACKAGE.rglob("*")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] in ("tasks", "conf") or "__pycache__" in parts or not path.is_file():
            continue
        yield path


def test_framework_names_no_task():
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
             for path in framework_files()
             for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if TASK_WORDS.search(line)]
    assert not found, ("The framework names a task (code, docstring or comment); a task's code and data belong in "
                       "dpo_exp/tasks/<task>/, reached through conf/ `_target_`s and ${pkg_file:...}:\n"
                       + "\n".join(found))


def test_the_word_check_catches_task_words_but_not_others():
    assert all(TASK_WORDS.search(s) for s in ("Sycophancy", "claim_is_true", "true_claim", "PushbackJudge", "claims"))
    assert not any(TASK_WORDS.search(s) for s in ("disclaimer", "reclaimed", "exclaim", "push back"))


def test_the_framework_never_imports_a_task():
    """Import direction: tasks import the framework, never the reverse (the framework reaches them by `_target_`)."""
    offenders = []
    for path in framework_files():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(REPO)}:{node.lineno}: {name}" for name in names
                          if name == "dpo_exp.tasks" or name.startswith("dpo_exp.tasks.")]
    assert not offenders, offenders


def test_pkg_file_finds_a_file_shipped_in_any_package_and_names_what_is_wrong():
    from dpo_exp.config import UserError, package_file

    assert Path(package_file("dpo_exp.tasks.pushback", "pushback_train.jsonl")).is_file()
    with pytest.raises(UserError, match=r"\$\{pkg_file:no_such_pkg,x\.jsonl\} names the package 'no_such_pkg', "
                                        r"which cannot be imported\. Fix:"):
        package_file("no_such_pkg", "x.jsonl")
    with pytest.raises(UserError, match=r"the package dpo_exp\.tasks\.claims has no file nope\.jsonl .*package-data"):
        package_file("dpo_exp.tasks.claims", "nope.jsonl")


# --- a third task, outside the package ----------------------------------------------------------

TOY = REPO / "tests" / "toytask"
TOY_ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(TOY)])}  # the task's package is importable
TOY_CONF = ["--config-dir", str(TOY / "conf")]


def test_an_out_of_tree_task_builds_pairs_and_trains_with_no_framework_edit(tmp_path):
    paths = [f"paths.cache={tmp_path / 'cache'}", f"paths.outputs={tmp_path / 'outputs'}"]
    pairs = tmp_path / "pairs.jsonl"
    # prompts (shipped in the task's package) -> the tiny model's candidates -> the task's judge -> pairs
    built = run_cli([*TOY_CONF, "build=terse", "model=tiny", "hardware=cpu", "hardware.num_threads=1",
                     f"build.out={pairs}", *paths], cwd=tmp_path, env=TOY_ENV, module="dpo_exp.build")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert len(rows) >= 4 and {r["judge"] for r in rows} == {"terse[words=3]"}
    for row in rows:  # chosen is the terse reply, rejected the wordy one, as the task's judge says
        assert len(row["chosen"][-1]["content"].split()) <= 3 < len(row["rejected"][-1]["content"].split())

    trained = run_cli([*TOY_CONF, "+experiment=terse", "+debug=smoke", "hardware.num_threads=1",
                       f"data.path={pairs}", *paths], cwd=tmp_path, env=TOY_ENV)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    (build_run, train_run) = sorted(all_runs(tmp_path), key=lambda r: r.info.start_time)
    assert build_run.info.status == train_run.info.status == "FINISHED"
    metrics = train_run.data.metrics
    for when in ("before", "after"):
        assert 0.0 <= metrics[f"heldout/{when}/terse_rate"] <= 1.0
        assert metrics[f"heldout/{when}/mean_words"] >= 0.0
    assert "held-out terse answers (before -> after)" in trained.stdout, trained.stdout[-2000:]
