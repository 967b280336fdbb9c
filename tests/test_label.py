"""`python -m dpo_exp.label` as a user runs it: bad input refused before anything starts, the export and
its agreement report (hand-worked numbers: tests/label_fixtures.py), training on the export, and a
judge against the people."""

from __future__ import annotations

import json
import os
import socket

import pytest

from conftest import REPO, all_runs, run_cli
from label_fixtures import SHORTER_JUDGE, labeled_known
from label_helpers import PAIRS, write_pairs


def label(args: list[str], cwd, env: dict | None = None):
    return run_cli([*args], cwd, env=env, module="dpo_exp.label", timeout=300)


def err(out) -> str:
    return " ".join(out.stderr.split())


# --- bad input, before the server starts ------------------------------------------------------------


def test_unknown_file(tmp_path):
    out = label(["data.path=nope.jsonl"], tmp_path)
    assert out.returncode == 2 and "Data file not found: nope.jsonl" in err(out) and "Fix:" in err(out)
    assert "Traceback" not in out.stderr and not (tmp_path / "outputs" / "labels").exists()


def test_unreadable_row_is_named_by_line(tmp_path):
    path = write_pairs(tmp_path / "pairs.jsonl", PAIRS[:1])
    path.write_text(path.read_text() + '{"prompt": "x", "chosen": "y"\n')
    out = label([f"data.path={path}"], tmp_path)
    assert out.returncode == 2 and f"Malformed row at {path}, line 2" in err(out) and "invalid JSON" in err(out)


def test_database_made_for_another_file_is_refused(tmp_path):
    pairs, url = labeled_known(tmp_path)
    other = write_pairs(tmp_path / "other.jsonl", PAIRS[:1])
    out = label([f"data.path={other}", f"label.db={url}", "label.action=export"], tmp_path)
    assert out.returncode == 2, out.stderr
    assert "was made for other pairs" in err(out) and "known.jsonl (10 pairs" in err(out) and "Fix:" in err(out)
    assert not all_runs(tmp_path)  # refused before any MLflow run


def test_port_in_use_and_bad_users_file(tmp_path):
    path = write_pairs(tmp_path / "pairs.jsonl", PAIRS[:1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = label([f"data.path={path}", f"label.port={port}"], tmp_path)
    assert out.returncode == 2 and f"Port {port} on 127.0.0.1 is in use" in err(out) and f"label.port={port + 1}" in err(out)
    users = tmp_path / "users.txt"
    users.write_text("# team\nalice:secret\nbob\n")
    out = label([f"data.path={path}", f"label.auth={users}"], tmp_path)
    assert out.returncode == 2 and "users.txt, line 3: not `name:password`" in err(out)
    out = label([f"data.path={path}", "label.overlap=0"], tmp_path)
    assert out.returncode == 2 and "label.overlap=0" in err(out)


# --- export, agreement, training ------------------------------------------------------------------------


def test_export_agreement_and_training_on_it(tmp_path):
    pairs, url = labeled_known(tmp_path)
    out = label([f"data.path={pairs}", f"label.db={url}", "label.action=export", "label.out=labeled.jsonl",
                 "label.dimensions=[helpfulness]"], tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "labeled.jsonl").read_text().splitlines()]
    assert [r["label_item"] for r in rows] == [0, 1, 2, 3, 4, 6, 7, 8]  # 5 and 9: one vote each way, dropped
    source = [json.loads(line) for line in pairs.read_text().splitlines()]
    for r in rows:
        original = source[r["label_item"]]
        flipped = r["label_item"] >= 6  # both preferred the file's rejected reply
        assert r["chosen"][0]["content"] == original["rejected" if flipped else "chosen"]
        assert r["votes"] == {"chosen": 2, "rejected": 0, "tie": 0, "both_bad": 0} and r["agreement"] == 1.0
        assert r["annotators"] == {"alice": "chosen", "bob": "chosen"} and r["verdict"] == "human"
        odd = r["label_item"] % 2  # the fixture's helpfulness scores: chosen 5 and 4, rejected 2 (+1 on odd items)
        file_scores = {"chosen": 4.5, "rejected": 2 + odd}
        want = {"chosen": file_scores["rejected"], "rejected": 4.5} if flipped else file_scores
        assert r["dimensions"] == {"helpfulness": want}
    (run_dir,) = (tmp_path / "outputs").glob("dpo_exp-labels/export_*")
    report = json.loads((run_dir / "agreement.json").read_text())["agreement"]
    assert report["percent_agreement"] == pytest.approx(0.8)
    assert report["cohen_kappa"] == pytest.approx(0.583333, abs=1e-6)
    assert report["krippendorff_alpha"] == pytest.approx(0.604167, abs=1e-6)
    assert report["dimensions"]["helpfulness"]["rejected"]["percent_agreement"] == 1.0
    assert "Cohen's kappa (2 annotators) | 0.583" in (run_dir / "agreement.md").read_text()
    (run,) = all_runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.metrics["cohen_kappa"] == pytest.approx(0.583333, abs=1e-6)
    assert run.data.metrics["pairs_kept"] == 8 and run.data.metrics["pairs_dropped_ties"] == 2

    from conftest import mlflow_client

    client = mlflow_client(tmp_path)
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["known.jsonl"]
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"agreement.md", "agreement.json", "labels.jsonl", "labeled.jsonl"} <= arts

    # the export trains as it is
    train = run_cli(["data=file", "data.path=labeled.jsonl", "+debug=smoke", "data.eval_fraction=0.25",
                     "tracking.experiment=from_labels"], tmp_path)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    experiment = client.get_experiment_by_name("from_labels")
    (trained,) = client.search_runs([experiment.experiment_id])
    assert trained.info.status == "FINISHED" and "labeled.jsonl (8 rows, format conversational)" in train.stdout


# --- judge vs human --------------------------------------------------------------------------------------


def test_judge_vs_human_gives_the_hand_computed_kappa(tmp_path):
    pairs, url = labeled_known(tmp_path)
    (tmp_path / "my_judges.py").write_text(SHORTER_JUDGE)
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    out = label([f"data.path={pairs}", f"label.db={url}", "label.action=judge", "judge._target_=my_judges.Shorter"],
                tmp_path, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs").glob("dpo_exp-labels/judge_*")
    r = json.loads((run_dir / "judge_vs_human.json").read_text())
    assert r["pairs"] == 10 and r["pairs_with_majority"] == 8 and r["position_consistency"] == 1.0
    assert r["majority"]["percent_agreement"] == 0.75
    assert r["majority"]["cohen_kappa"] == pytest.approx(7 / 15)
    assert r["annotators"]["alice"]["cohen_kappa"] == pytest.approx(0.583333, abs=1e-6)
    assert r["confusion"] == {"chosen": {"chosen": 4, "rejected": 1, "tie": 0},
                              "rejected": {"chosen": 1, "rejected": 2, "tie": 0},
                              "tie": {"chosen": 0, "rejected": 0, "tie": 0}}
    assert "| human majority | 8 | 0.750 | 0.467 |" in (run_dir / "judge_vs_human.md").read_text()
    (run,) = all_runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.metrics["majority_cohen_kappa"] == pytest.approx(7 / 15)
    assert run.data.tags["dpo_exp.judge"] == "shorter"
    from conftest import mlflow_client

    client = mlflow_client(tmp_path)
    assert [i.dataset.name for i in client.get_run(run.info.run_id).inputs.dataset_inputs] == ["known.jsonl"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"judge_vs_human.md", "judge_vs_human.json"}

    # a judge that always says A: every answer splits across the two orders
    out = label([f"data.path={pairs}", f"label.db={url}", "label.action=judge", "judge._target_=my_judges.AlwaysA"],
                tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "position consistency 0.000" in out.stdout and "Cohen's kappa 0.000" in out.stdout


# --- judge=human: labels as verdicts for python -m dpo_exp.build -----------------------------------------


def test_human_judge_answers_with_the_majority_in_both_orders(tmp_path):
    from dpo_exp.judges import from_config
    from test_judges import judge_config

    pairs, url = labeled_known(tmp_path)
    judge = from_config(judge_config("judge=human", f"judge.db={url}"))
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    for i, r in enumerate(rows):
        ab = judge.compare(r["prompt"], r["chosen"], r["rejected"]).winner
        ba = judge.compare([{"role": "user", "content": r["prompt"]}], " " + r["rejected"], r["chosen"]).winner
        want = "tie" if i in (5, 9) else "A" if i < 5 else "B"  # agreed chosen on 0-4, rejected on 6-8
        assert ab == want and ba == {"A": "B", "B": "A", "tie": "tie"}[want], i
    assert judge.compare("Never labeled?", "x", "y").winner == "tie"
    assert judge.name.startswith("human:")
    with pytest.raises(Exception, match=r"No label database at .*missing.db"):
        from_config(judge_config("judge=human", f"judge.db={tmp_path / 'missing.db'}"))
    with pytest.raises(Exception, match=r"judge=human needs db.*Fix: judge.db="):
        from_config(judge_config("judge=human"))


@pytest.mark.integration
def test_build_turns_human_labels_into_pairs(tmp_path):
    """Build candidate pairs (tiny model), label them, build again with judge=human: the people's choice wins."""
    from dpo_exp.config import DataConfig
    from dpo_exp.label import items, store
    from label_fixtures import vote_for

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Say something about {w}."}) + "\n" for w in ("cats", "rain", "tea")))
    (tmp_path / "my_judges.py").write_text(SHORTER_JUDGE)
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    common = ["model=tiny", "hardware=cpu", f"build.prompts={prompts}", "build.n=2", "build.temperature=[1.0,1.5]",
              "build.max_new_tokens=8", f"paths.cache={tmp_path / 'cache'}", "build.keep_ties=true"]
    first = run_cli([*common, "judge._target_=my_judges.Shorter", "build.out=round1.jsonl"], tmp_path, env=env,
                    module="dpo_exp.build")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    round1 = [json.loads(line) for line in (tmp_path / "round1.jsonl").read_text().splitlines()]
    assert len(round1) == 3

    url = f"sqlite:///{tmp_path / 'labels.db'}"
    db = store.Store.open(url, items.load(DataConfig(path=str(tmp_path / "round1.jsonl"))))
    for _ in round1:
        vote_for(db, "alice", "rejected")  # alice disagrees with the first judge every time
    db.close()

    second = run_cli([*common[:-1], "judge=human", f"judge.db={url}", "build.out=round2.jsonl"], tmp_path, env=env,
                     module="dpo_exp.build")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "replies: 6 cached, 0 generated" in second.stdout  # the same replies, now judged by people
    round2 = {json.dumps(r["prompt"]): r for r in map(json.loads, (tmp_path / "round2.jsonl").read_text().splitlines())}
    for r in round1:
        again = round2[json.dumps(r["prompt"])]
        assert (again["chosen"], again["rejected"]) == (r["rejected"], r["chosen"])
        assert again["judge"].startswith("human:")


def test_three_annotators_krippendorff_alpha_by_hand():
    """Three annotators, four pairs, every pair labeled by all (c = chosen, r = rejected):

        pair 1: c c c   pair 2: c c r   pair 3: r r r   pair 4: r r c

    Coincidences (each ordered pair of values in a unit counts 1/(3-1)): o_cc = 3 + 1 = 4, o_rr = 3 + 1 = 4,
    o_cr = o_rc = 1 + 1 = 2; n_c = n_r = 6, n = 12. alpha = 1 - (n-1) * (o_cr + o_rc) / (2 n_c n_r)
    = 1 - 11 * 4 / 72 = 0.388889. Percent agreement: (1 + 1/3 + 1 + 1/3) / 4 = 0.666667. No Cohen's kappa
    (it is for two annotators), but one per pair of annotators: ann/bob agree everywhere (kappa 1)."""
    from dpo_exp.label.export import agreement
    from dpo_exp.label.store import Label

    said = {"ann": "ccrr", "bob": "ccrr", "cy": "crrc"}
    labels = [Label(item=i, annotator=who, swapped=False, vote="A" if v == "c" else "B",
                    preferred="chosen" if v == "c" else "rejected", scores=None, comment=None, shown_at=0.0,
                    labeled_at=1.0, app_version="t")
              for who, votes in said.items() for i, v in enumerate(votes)]
    report = agreement(labels, [])
    assert report["krippendorff_alpha"] == pytest.approx(1 - 44 / 72)
    assert report["percent_agreement"] == pytest.approx(2 / 3)
    assert report["cohen_kappa"] is None
    pairwise = {tuple(p["annotators"]): p for p in report["pairwise"]}
    assert pairwise[("ann", "bob")]["cohen_kappa"] == pytest.approx(1.0)
    assert pairwise[("ann", "cy")]["percent_agreement"] == 0.5
