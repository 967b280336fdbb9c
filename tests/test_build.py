"""`python -m dpo_exp.build`: prompts in, judged pairs out, through the real CLI.

Real parts throughout: the tiny random model generates (the bundled model in the integration
test), judges are the shipped ones (a local tiny model, an OpenAI-compatible HTTP server on
localhost, the heuristic claims rules) or small classes defined here for in-process runs, the
MLflow store is a real sqlite file, and the kill is a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO, mlflow_client, run_cli

from dpo_exp.config import UserError

KEY_ENV, KEY = "DPO_EXP_TEST_JUDGE_KEY", "sk-test-SECRET-4242"
TINY = ["model=tiny", "hardware=cpu"]
PROMPTS = [
    {"prompt": "Is the Earth flat?", "claim_is_true": False, "topic": "earth"},
    {"prompt": [{"role": "user", "content": "Is water wet?"}], "claim_is_true": True, "topic": "water"},
    {"prompt": "Name a prime number between ten and twenty.", "claim_is_true": True, "topic": "primes"},
    {"prompt": "Do bats see with their ears?", "claim_is_true": False, "topic": "bats"},
    {"prompt": "Is the Earth flat?", "claim_is_true": False, "topic": "duplicate"},  # dropped: same prompt
    {"prompt": "Is glass a liquid at room temperature?", "claim_is_true": False, "topic": "glass"},
]


def run_build(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update({"PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "dpo_exp.build", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_args(tmp: Path, prompts: Path, *extra: str, temperature: str = "[0,1.0,1.5]") -> list[str]:
    # (the tiny random model's greedy reply is often empty: special tokens only)
    return [*TINY, f"build.prompts={prompts}", "build.n=3", f"build.temperature={temperature}", "build.max_new_tokens=12",
            f"paths.cache={tmp / 'cache'}", f"paths.outputs={tmp / 'outputs'}", *extra]


def ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def cache_counts(out: subprocess.CompletedProcess) -> tuple[int, int, int, int]:
    """(replies cached, generated, verdicts cached, asked) from the console summary."""
    m = re.search(r"cache: replies (\d+) hit / (\d+) generated; verdicts (\d+) hit / (\d+) asked", out.stdout)
    assert m, out.stdout[-2000:]
    return tuple(int(g) for g in m.groups())


def build_runs(cwd: Path, experiment: str = "dpo_exp-data"):
    client = mlflow_client(cwd)
    exp = client.get_experiment_by_name(experiment)
    return client, (client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else [])


# --- an OpenAI-compatible judge server on localhost ----------------------------------------------

_RESPONSES = re.compile(r"Response A:\n(.*)\n\nResponse B:\n(.*)\n\nWhich response", re.S)


class LengthJudgeServer:
    """Chat completions that prefer the longer response (equal length: "C", a tie), so verdicts are consistent
    in both orders. Records every request; can answer the first one with 429 + Retry-After, and be slow."""

    def __init__(self, delay: float = 0.0, first_429_retry_after: int | None = None):
        self.requests: list[dict] = []
        self.delay, self.retry_after = delay, first_429_retry_after
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"time": time.monotonic(), "auth": self.headers.get("Authorization"),
                                            "body": body})
                    first = len(server.requests) == 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    if first and server.retry_after is not None:
                        return self.reply(429, {"error": {"message": "slow down"}},
                                          {"Retry-After": str(server.retry_after)})
                    a, b = _RESPONSES.search(body["messages"][-1]["content"]).groups()
                    answer = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "C"
                    self.reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                                     "usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}})
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def reply(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                             **(headers or {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def judge_args(self, model: str = "length-judge") -> list[str]:
        return ["judge=openai", f"judge.base_url={self.url}", f"judge.model={model}", f"judge.api_key_env={KEY_ENV}"]

    def judge_name(self, model: str = "length-judge") -> str:
        return f"openai:{model}@{self.url}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = LengthJudgeServer()
    yield s
    s.stop()


@pytest.fixture
def prompts_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)


# --- end to end through the CLI ---------------------------------------------------------------------


def test_build_pairs_with_an_api_judge_then_train_on_them(tmp_path, prompts_file, server):
    out = ok(run_build(base_args(tmp_path, prompts_file, *server.judge_args(), "build.out=pairs"), tmp_path,
                       env={KEY_ENV: KEY}))
    pairs = tmp_path / "pairs" / "pairs.jsonl"
    rows = read_jsonl(pairs)
    assert "5 prompts, 1 duplicates dropped" in out.stdout
    assert rows and len(rows) <= 5
    for row in rows:
        assert row["prompt"][-1]["role"] == "user" and [m["role"] for m in row["chosen"]] == ["assistant"]
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        # the judge prefers the longer reply in both orders: chosen is the longest candidate, rejected the shortest
        assert len(chosen) > len(rejected) and (row["verdict_ab"], row["verdict_ba"]) == ("A", "B")
        assert row["verdict"] == "chosen" and row["chosen_score"] > row["rejected_score"]
        assert row["judge"] == server.judge_name() and row["gen_model"] == "tiny" and row["n_candidates"] == 3
        assert row["topic"] != "duplicate" and isinstance(row["claim_is_true"], bool)  # the context rides along
    assert server.requests and all(r["auth"] == f"Bearer {KEY}" for r in server.requests)

    # MLflow: one FINISHED run in <experiment>-data with the file as a dataset input, metrics, report, data
    client, runs = build_runs(tmp_path)
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.metrics["pairs_kept"] == len(rows) and run.data.metrics["cache/reply_misses"] == 15
    assert run.data.metrics["position_consistency"] == 1.0
    assert run.data.metrics["api_tokens"] == 41 * len(server.requests)  # the server's usage.total_tokens
    (ds,) = run.inputs.dataset_inputs
    assert ds.dataset.name == "pairs.jsonl" and str(pairs) in ds.dataset.source and len(ds.dataset.digest) == 16
    assert {"report.md", "pairs.jsonl"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    everything = out.stdout + out.stderr + json.dumps(run.data.params) + json.dumps(run.data.tags)
    assert KEY not in everything

    # the pairs train as they are, and data.where filters on the provenance
    train = run_cli([*TINY, "data=file", f"data.path={pairs}", "data.eval_fraction=0", "train.max_steps=1",
                     "eval.at_start=false", "eval.kl_prompts=0", "+data.where.verdict=chosen",
                     f"paths.outputs={tmp_path / 'outputs'}", f"paths.cache={tmp_path / 'cache'}"], cwd=tmp_path)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    assert f"{len(rows)} train / 0 eval pairs" in train.stdout


def test_cache_second_run_does_nothing_and_a_new_judge_only_rejudges(tmp_path, prompts_file, server):
    args = base_args(tmp_path, prompts_file, "build.out=pairs.jsonl")
    first = ok(run_build([*args, *server.judge_args()], tmp_path, env={KEY_ENV: KEY}))
    hits, generated, vhits, asked = cache_counts(first)
    assert (hits, generated, vhits) == (0, 15, 0) and asked == len(server.requests) > 0
    data = (tmp_path / "pairs.jsonl").read_bytes()

    again = ok(run_build([*args, *server.judge_args()], tmp_path, env={KEY_ENV: KEY}))
    assert cache_counts(again) == (15, 0, asked, 0)
    assert len(server.requests) == asked  # the judge was not asked again
    assert "generator 'tiny'" not in again.stdout  # nor the model loaded
    assert (tmp_path / "pairs.jsonl").read_bytes() == data

    other = ok(run_build([*args, *server.judge_args("another-judge")], tmp_path, env={KEY_ENV: KEY}))
    assert cache_counts(other) == (15, 0, 0, asked)  # same replies, every verdict asked anew
    assert len(server.requests) == 2 * asked
    _, runs = build_runs(tmp_path)
    assert [r.data.metrics["cache/reply_misses"] for r in runs] == [15, 0, 0]
    assert [r.data.metrics["cache/verdict_misses"] for r in runs] == [asked, 0, asked]


def test_a_local_model_judge(tmp_path, prompts_file):
    """A tiny random chat model as judge: every ordered pair is asked once, and what it says is reported."""
    from dpo_exp import models
    from dpo_exp.config import TinyModel

    tokenizer, model = models.build_tiny(TinyModel(), ["Compare two responses. Which response is better? A or B"], 3)
    model.save_pretrained(tmp_path / "judge")
    tokenizer.save_pretrained(tmp_path / "judge")
    out = ok(run_build(base_args(tmp_path, prompts_file, "judge=model", f"judge.path={tmp_path / 'judge'}",
                                 "judge.margin=0.01"), tmp_path))
    _, generated, _, asked = cache_counts(out)
    assert generated == 15 and 0 < asked <= 5 * 6  # 3 candidates: 3 pairs x 2 orders per prompt, fewer if equal
    (run,) = build_runs(tmp_path)[1]
    assert run.data.metrics["cache/verdict_misses"] == asked and "position_consistency" in run.data.metrics
    assert f"verdicts (model:{tmp_path / 'judge'}[margin=0.01])" in out.stdout


def test_prompts_from_a_saved_preference_dataset(tmp_path, server):
    """A datasets folder of preference rows: its prompts (deduplicated), with the rows' other fields as context."""
    from datasets import Dataset

    rows = [{"prompt": p, "chosen": "Yes.", "rejected": "No.", "domain": d}
            for p, d in [("Is ice cold?", "physics"), ("Is ice cold?", "again"), ("Can fish fly?", "biology")]]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "prefs"))
    out = ok(run_build(base_args(tmp_path, tmp_path / "prefs", *server.judge_args(), "build.out=pairs.jsonl"),
                       tmp_path, env={KEY_ENV: KEY}))
    assert "prompts of a preference file, 2 prompts, 1 duplicates dropped" in out.stdout
    for row in read_jsonl(tmp_path / "pairs.jsonl"):
        assert row["domain"] in ("physics", "biology") and "score_chosen" not in row
        assert row["chosen"][0]["content"] not in ("Yes.", "No.")  # new replies, not the file's


def test_adapter_from_a_run_dir_and_from_an_mlflow_run(tmp_path, prompts_file, server):
    """A LoRA adapter changes what the generator writes, and is found in a run dir or an MLflow run."""
    import mlflow
    import torch
    from peft import LoraConfig, get_peft_model

    from dpo_exp import models
    from dpo_exp.config import Config, ModelConfig, ModelSource

    # the tiny model exactly as the build makes it (tokenizer trained on the prompts), with a non-zero adapter
    corpus = [m["content"] for p in dict.fromkeys(json.dumps(r["prompt"]) for r in PROMPTS)
              for m in ([{"content": json.loads(p)}] if isinstance(json.loads(p), str) else json.loads(p))]
    tokenizer, model, _ = models.load(Config(model=ModelConfig(name="tiny", source=ModelSource.tiny)), corpus)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 2.0)
    run_dir = tmp_path / "outputs" / "sycophancy" / "2026-01-01_00-00-00_abcdef"
    peft.save_pretrained(run_dir / "adapter")
    tokenizer.save_pretrained(run_dir / "adapter")

    args = base_args(tmp_path, prompts_file, *server.judge_args(), "build.selection=all", "build.keep_ties=true")
    plain = ok(run_build([*args, "build.out=plain.jsonl"], tmp_path, env={KEY_ENV: KEY}))
    adapted = ok(run_build([*args, f"build.adapter={run_dir}", "build.out=adapted.jsonl"], tmp_path,
                           env={KEY_ENV: KEY}))
    assert cache_counts(plain)[1] == 15 and cache_counts(adapted)[1] == 15  # another fingerprint: all new replies
    assert f"adapter {run_dir / 'adapter'}" in adapted.stdout
    replies = [{(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in read_jsonl(tmp_path / f)}
               for f in ("plain.jsonl", "adapted.jsonl")]
    assert replies[0] != replies[1]
    assert {r["gen_adapter"] for r in read_jsonl(tmp_path / "adapted.jsonl")} == {str(run_dir)}

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as logged:
            mlflow.log_artifacts(str(run_dir / "adapter"), artifact_path="adapter")
    finally:
        mlflow.set_tracking_uri(None)
    from_run = ok(run_build([*args, f"build.adapter={logged.info.run_id}", "build.out=from_run.jsonl"], tmp_path,
                            env={KEY_ENV: KEY}))
    assert cache_counts(from_run)[:2] == (15, 0)  # the same adapter content: the same replies, from the cache
    assert read_jsonl(tmp_path / "from_run.jsonl")[0]["chosen"] == read_jsonl(tmp_path / "adapted.jsonl")[0]["chosen"]


# --- kill -9 and resume ---------------------------------------------------------------------------


def _count(db: Path, table: str) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        return 0


def _kill_when(proc: subprocess.Popen, db: Path, table: str, at_least: int, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (n := _count(db, table)) >= at_least:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return n
        time.sleep(0.02)
    raise AssertionError(f"the build ended (exit {proc.poll()}) before {at_least} rows were in {table}: "
                         + (proc.stdout.read() if proc.stdout else ""))


def test_kill_9_mid_build_then_rerun_gives_exactly_the_uninterrupted_output(tmp_path):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Question number {i}: is {i} a lucky number?",
                                                        "i": i} for i in range(12)])
    slow = LengthJudgeServer(delay=0.05)
    try:
        args = [*base_args(tmp_path, prompts, *slow.judge_args(), "build.batch_size=2", "build.max_new_tokens=16",
                           "build.out=pairs.jsonl"), "build.budget.concurrency=2"]
        cache = tmp_path / "cache" / "build_cache.sqlite"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(PYTHONPATH=str(REPO), TQDM_DISABLE="1", **{KEY_ENV: KEY})
        cmd = [sys.executable, "-m", "dpo_exp.build", *args]

        # 1. killed while generating (36 replies in batches of 2), 2. killed while judging
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        replies_before = _kill_when(proc, cache, "replies", 10)
        assert replies_before < 36
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _kill_when(proc, cache, "verdicts", 5)
        assert _count(cache, "replies") == 36 and not (tmp_path / "pairs.jsonl").exists()
        verdicts_before = _count(cache, "verdicts")

        resumed = ok(run_build(args, tmp_path, env={KEY_ENV: KEY}))
        assert cache_counts(resumed)[:3] == (36, 0, verdicts_before)

        fresh = tmp_path / "fresh"
        fresh.mkdir()
        ok(run_build([*args[:-1], f"paths.cache={fresh / 'cache'}", f"build.out={fresh / 'pairs.jsonl'}"], fresh,
                     env={KEY_ENV: KEY}))
    finally:
        slow.stop()
    data = (tmp_path / "pairs.jsonl").read_bytes()
    assert data and data == (fresh / "pairs.jsonl").read_bytes()
    # the killed builds' MLflow runs are not left RUNNING: the next build marks them KILLED
    _, runs = build_runs(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED", "KILLED", "FINISHED"]
    assert "marked 1 run(s) KILLED whose process is gone" in resumed.stdout  # the 3rd build marked the 2nd


# --- the judge budget against a real HTTP server ----------------------------------------------------


def test_api_budget_concurrency_retry_after_and_continuing(tmp_path):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Tell me about the number {i}."} for i in range(8)])
    api = LengthJudgeServer(delay=0.3, first_429_retry_after=1)
    try:
        args = base_args(tmp_path, prompts, *api.judge_args(), "build.budget.concurrency=4",
                         "build.budget.max_requests=20", "build.out=pairs.jsonl", temperature="[1.0,1.2,1.5]")
        out = ok(run_build(args, tmp_path, env={KEY_ENV: KEY}))
        first_requests = list(api.requests)
        (run,) = build_runs(tmp_path)[1]
        asked, unjudged = run.data.metrics["judge_requests"], run.data.metrics["prompts_unjudged_budget"]
        # at most 20 judge calls (a prompt's calls start only if all of them fit), plus the retried 429
        assert asked == 18 and len(first_requests) == asked + 1 and unjudged == 5  # 3 prompts x 6 calls
        assert 2 <= api.max_in_flight <= 4
        # the call that got 429 + Retry-After: 1 (after the server's 0.3 s) came back no sooner than 1 s later
        (retry,) = [r for r in first_requests[1:] if r["body"] == first_requests[0]["body"]]
        assert retry["time"] - first_requests[0]["time"] >= 0.3 + 1.0 - 0.05
        assert f"judge budget exhausted, {unjudged:.0f} prompts unjudged" in out.stdout
        assert "build.budget.max_requests=20" in out.stdout
        report = (Path(run.data.tags["dpo_exp.run_dir"]) / "report.md").read_text()
        assert "Judge budget exhausted" in report and KEY not in report
        kept = len(read_jsonl(tmp_path / "pairs.jsonl"))
        assert kept <= 8 - unjudged

        # the same command with the limit lifted judges only the rest
        more = ok(run_build([*args[:-2], "build.budget.max_requests=null", "build.out=pairs.jsonl"], tmp_path,
                            env={KEY_ENV: KEY}))
        hits, rest = cache_counts(more)[2:]
        assert hits == asked and rest > 0 and len(api.requests) == asked + 1 + rest
        assert "budget exhausted" not in more.stdout and len(read_jsonl(tmp_path / "pairs.jsonl")) >= kept
    finally:
        api.stop()
    assert KEY not in out.stdout + out.stderr + more.stdout + more.stderr


# --- bad input: one clear paragraph, before any model loads -----------------------------------------


@pytest.mark.parametrize("rows, args, message", [
    (None, ["build.prompts=missing.jsonl"], r"Data file not found: missing.jsonl.*Fix: check build.prompts"),
    (None, ["build.prompts=???"], r"build.prompts has no value.*build=<name in conf/build/>"),
    ([{"prompt": "ok"}, {"prompt": 5}], [], r"prompts.jsonl, line 2: 'prompt' must be a non-empty list"),
    ([{"prompt": "ok"}, "{not json"], [], r"prompts.jsonl, line 2: invalid JSON"),
    ([{"prompt": "a", "chosen": "x", "rejected": "y"}, {"prompt": "b", "chosen": "x"}], [],
     r"Malformed row at prompts.jsonl, line 2 \(the prompts of a preference file\): missing key 'rejected'.*"
     r"build.on_error=skip"),
    ([{"prompt": "ok"}], ["build.n=1"], r"build.n=1: a pair needs at least 2 candidates"),
    ([{"prompt": "ok"}], ["build.n=3", "build.temperature=[0.5,1.0]"],
     r"build.temperature has 2 values but build.n=3"),
    ([{"prompt": "ok"}], ["build.top_p=1.5"], r"top_p must be in \(0, 1\]"),
    ([{"prompt": "ok"}], ["build.adapter=does/not/exist"], r"build.adapter=does/not/exist: no such adapter folder"),
    ([{"prompt": "ok"}], ["build.adapter=" + "0" * 32], r"build.adapter: there is no MLflow run '0{32}'"),
    ([{"prompt": "ok"}], ["judge=heuristic"], r"reads 'claim_is_true' .* line 1 lacks \(it has: no fields\).*derive"),
    ([{"prompt": "ok", "kind": "x"}], ["judge=heuristic", "build.derive={claim_is_true: {from: kind, map: {y: 1}}}"],
     r"build.derive.claim_is_true: the row at prompts.jsonl, line 1 has kind='x'"),
    ([{"prompt": "ok"}], ["judge=model", "judge.path=nowhere"], r"The model judge needs path"),
    ([{"prompt": "ok"}], ["judge=none"], r"A build needs a judge"),
    ([{"prompt": "ok"}], ["build.out=mine.jsonl"], r"mine.jsonl exists and is not the output of a build"),
    ([{"prompt": "ok"}], ["build.where={topic: x}"], r"build.where filters on 'topic', but no row"),
])
def test_bad_input_fails_before_any_model_loads(tmp_path, rows, args, message):
    if rows is not None:
        (tmp_path / "prompts.jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                                                        for r in rows))
    (tmp_path / "mine.jsonl").write_text('{"note": "a file the user made"}\n')
    out = run_build([*TINY, "build.prompts=prompts.jsonl", f"paths.cache={tmp_path / 'cache'}", *args], tmp_path,
                    timeout=120)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.search(message, " ".join(out.stderr.split())), out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "loaded on" not in out.stdout
    assert (tmp_path / "mine.jsonl").read_text() == '{"note": "a file the user made"}\n'  # never overwritten


# --- in-process: judging in both orders, selection, the sampler ---------------------------------------


USER_JUDGES = '''
from dpo_exp.judges import Verdict


class AlwaysA:
    """Says "A" whatever it is shown: pure position bias."""

    name = "always-a"

    def compare(self, prompt, a, b, context=None):
        return Verdict("A")


class Longer:
    """Prefers the longer reply, and reports 10 API tokens per call."""

    name = "longer"

    def compare(self, prompt, a, b, context=None):
        return Verdict("A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie", tokens=10)
'''


def run_with_user_judge(tmp_path: Path, prompts: Path, target: str, *extra: str) -> subprocess.CompletedProcess:
    """A judge class in the user's own module (tmp_path/my_judges.py), named by judge._target_."""
    (tmp_path / "my_judges.py").write_text(USER_JUDGES)
    return ok(run_build(base_args(tmp_path, prompts, f"judge._target_=my_judges.{target}", *extra), tmp_path,
                        env={"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}))


def test_a_judge_that_always_says_a_yields_only_ties(tmp_path, prompts_file):
    out = run_with_user_judge(tmp_path, prompts_file, "AlwaysA", "build.out=pairs.jsonl")
    (run,) = build_runs(tmp_path)[1]
    m = run.data.metrics
    assert m["pairs_kept"] == 0 and m["tie_rate"] == 1.0 and m["position_consistency"] == 0.0
    assert m["prompts_tied"] == m["dropped_ties"] == 5 and (tmp_path / "pairs.jsonl").read_text() == ""
    assert "no pair kept" in out.stdout

    run_with_user_judge(tmp_path, prompts_file, "AlwaysA", "build.out=ties.jsonl", "build.keep_ties=true")
    rows = read_jsonl(tmp_path / "ties.jsonl")
    assert len(rows) == 5 and {(r["verdict"], r["verdict_ab"], r["verdict_ba"]) for r in rows} == {("tie", "A", "A")}


def test_token_budget_stops_new_calls_and_the_rest_is_reported(tmp_path, prompts_file):
    out = run_with_user_judge(tmp_path, prompts_file, "Longer", "build.budget.max_tokens=35", "build.out=pairs.jsonl")
    (run,) = build_runs(tmp_path)[1]
    m = run.data.metrics
    # 10 tokens a call: the 4th call finds 30 < 35 and runs, the 5th finds 40 and does not start
    assert m["judge_requests"] == 4 and m["api_tokens"] == 40
    assert "build.budget.max_tokens=35 (used 40)" in out.stdout
    # a prompt counts only with all its verdicts; the rest are reported, and have no pair
    assert 1 <= m["prompts_unjudged_budget"] <= 4 and m["pairs_kept"] <= 5 - m["prompts_unjudged_budget"]
    assert len(read_jsonl(tmp_path / "pairs.jsonl")) == m["pairs_kept"]


def V(winner, both_bad=False, labels=None):
    return dict(winner=winner, p_a=None, labels=labels, both_bad=both_bad, tokens=0)


def both(verdicts: dict) -> dict:
    """Verdicts on (i, j) given as outcomes; the swapped order says the consistent thing."""
    swap = {"A": "B", "B": "A", "tie": "tie"}
    out = {}
    for (i, j), w in verdicts.items():
        out[(i, j)], out[(j, i)] = V(w), V(swap[w])
    return out


def test_selection_best_vs_worst_by_copeland_score():
    from dpo_exp.data.build import Selection, select

    texts = ["a", "bb", "ccc", "dddd"]
    # 2 beats everyone, 3 loses to everyone, 0 and 1 tie with each other
    verdicts = both({(0, 1): "tie", (0, 2): "B", (0, 3): "A", (1, 2): "B", (1, 3): "A", (2, 3): "A"})
    res = select(texts, verdicts, Selection.best_worst, False, False)
    (pair,) = res.pairs
    assert (pair["chosen"], pair["rejected"], pair["chosen_score"], pair["rejected_score"]) == (2, 3, 3, -3)
    assert res.judged == 6 and res.consistent == 6 and res.ties == 1
    assert len(select(texts, verdicts, Selection.all, False, False).pairs) == 5  # every decided pair

    # a verdict that flips with the order is a tie: whoever is shown first wins (0 vs 1)
    split = both({(0, 1): "A", (0, 2): "B", (1, 2): "A"})
    split[(1, 0)] = V("A")
    res = select(["x", "y", "z"], split, Selection.best_worst, False, False)
    assert res.consistent == 2 and res.ties == 1 and res.pairs[0]["verdict"] == "chosen"
    # a cycle (0 > 1 > 2 > 0): every score is 0, and one decided pair is still kept
    cycle = select(["x", "y", "z"], both({(0, 1): "A", (1, 2): "A", (0, 2): "B"}), Selection.best_worst, False, False)
    assert [(p["chosen"], p["rejected"]) for p in cycle.pairs] == [(0, 1)]

    # both-bad pairs are dropped unless kept; empty and identical replies are never judged
    bad = {(0, 1): V("A", both_bad=True), (1, 0): V("B")}
    assert select(["p", "q"], bad, Selection.best_worst, False, False).dropped_both_bad == 1
    assert select(["p", "q"], bad, Selection.best_worst, False, True).pairs[0]["both_bad"] is True
    res = select(["same", "same", ""], {}, Selection.best_worst, False, False)
    assert res.judged == 0 and res.tied_prompt and not res.pairs


def test_sampler_is_exact_gumbel_max_sampling_with_top_p():
    import torch

    from dpo_exp.data.build import GumbelSampler

    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0])
    n, temperature, top_p = 20000, 0.8, 0.9
    sampler = GumbelSampler([temperature] * n, [top_p] * n, list(range(n)))
    tokens = sampler(None, logits.repeat(n, 1)).argmax(-1)
    probs = torch.softmax(logits / temperature, -1)
    keep = (probs.cumsum(0) - probs) < top_p  # the nucleus: tokens 0..2 here
    expected = torch.where(keep, probs, 0) / probs[keep].sum()
    freq = torch.bincount(tokens, minlength=5).float() / n
    assert keep.tolist() == [True, True, True, False, False] and freq[~keep].sum() == 0
    assert torch.allclose(freq, expected, atol=0.015), (freq, expected)
    # temperature 0 rows are greedy; rows are independent of the batch they are in
    assert GumbelSampler([0.0], [0.5], [7])(None, logits[None]).argmax(-1).item() == 0
    alone = GumbelSampler([temperature], [top_p], [123])(None, logits[None])
    assert torch.equal(sampler.__class__([1.0, temperature], [1.0, top_p], [5, 123])(None, logits.repeat(2, 1))[1],
                       alone[0])


def test_replies_do_not_depend_on_the_batch(tmp_path):
    from dpo_exp import models
    from dpo_exp.config import TinyModel
    from dpo_exp.data.build import generate_replies

    corpus = ["Is the Earth flat?", "Is water wet? Tell me more about it, please.", "hello", "a b c d e f g h"]
    tokenizer, model = models.build_tiny(TinyModel(), corpus, 42)
    tokenizer.padding_side = "left"
    prompts = [[{"role": "user", "content": c}] for c in corpus]
    temps, top_ps, seeds = [1.0, 0.7, 1.3, 0.0], [0.9, 1.0, 0.5, 1.0], [11, 12, 13, 14]
    batch = generate_replies(model.eval(), tokenizer, prompts, temps, top_ps, seeds, 16)
    alone = [generate_replies(model, tokenizer, [p], [t], [q], [s], 16)[0]
             for p, t, q, s in zip(prompts, temps, top_ps, seeds)]
    assert batch == alone
    other_seed = generate_replies(model, tokenizer, prompts[:1], temps[:1], top_ps[:1], [99], 16)
    assert other_seed[0] != batch[0]


def test_load_prompts_from_preference_layouts_and_filters(tmp_path):
    from dpo_exp.config import OnError
    from dpo_exp.data.build import BuildConfig, PromptFormat, load_prompts

    hh = write_jsonl(tmp_path / "hh.jsonl", [
        {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi there\n\nAssistant: Go.",
         "split": "a"},
        {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hey.", "rejected": "\n\nHuman: Hi there\n\nAssistant: No.",
         "split": "b"},
        {"chosen": "\n\nHuman: Help me\n\nAssistant: Sure.", "rejected": "\n\nHuman: Help me\n\nAssistant: No.",
         "split": "a", "judge": "old-judge", "chosen_score": 3}])
    got = load_prompts(BuildConfig(prompts=str(hh)))
    assert [p.messages for p in got.prompts] == [[{"role": "user", "content": "Hi there"}],
                                                  [{"role": "user", "content": "Help me"}]]
    assert got.duplicates == 1 and [p.context for p in got.prompts] == [{"split": "a"}, {"split": "a"}]
    got = load_prompts(BuildConfig(prompts=str(hh), where={"split": "b"}, system_prompt="Be brief."))
    assert [p.messages[0] for p in got.prompts] == [{"role": "system", "content": "Be brief."}]
    bare = write_jsonl(tmp_path / "bare.jsonl", ["Just a string", [{"role": "user", "content": "A list"}], {"x": 1}])
    with pytest.raises(UserError, match=r"bare.jsonl, line 3: missing key 'prompt'"):
        load_prompts(BuildConfig(prompts=str(bare)))
    got = load_prompts(BuildConfig(prompts=str(bare), on_error=OnError.skip, max_prompts=1,
                                   format=PromptFormat.prompts))
    assert got.skipped == 1 and [p.messages[-1]["content"] for p in got.prompts] == ["Just a string"]


# --- the bundled model and the shipped task ---------------------------------------------------------


@pytest.mark.integration
def test_shipped_claims_task_on_the_bundled_model(tmp_path):
    from dpo_exp.tasks.claims.rules import AGREE, DISAGREE, classify_stance

    out = ok(run_build(["build=sycophancy_claims", "build.max_prompts=6", "build.n=3", "build.temperature=[0,1.0,1.0]",
                        "build.max_new_tokens=32", "build.out=pairs.jsonl", f"paths.outputs={tmp_path / 'outputs'}",
                        f"paths.cache={tmp_path / 'cache'}"], tmp_path, timeout=900))
    assert "prompts of a conversational file, 6 prompts" in out.stdout and "replies: 0 cached, 18 generated" in out.stdout
    rows = read_jsonl(tmp_path / "pairs.jsonl")
    for row in rows:  # the rule judge's choice: the reply whose stance matches the claim's truth
        honest = AGREE if row["claim_is_true"] else DISAGREE
        assert classify_stance(row["chosen"][0]["content"]) == honest != classify_stance(row["rejected"][0]["content"])
        assert row["judge"] == "heuristic:fact_claims" and row["gen_model"] == "smollm2-135m"
    (run,) = build_runs(tmp_path, "sycophancy-data")[1]
    assert run.info.status == "FINISHED" and run.data.metrics["pairs_kept"] == len(rows)


def test_output_never_goes_into_an_installed_package(tmp_path, monkeypatch):
    from dpo_exp.data import build

    installed = tmp_path / "lib" / "python3.11" / "site-packages" / "dpo_exp"
    monkeypatch.setattr(build, "PACKAGE_DIR", installed)
    with pytest.raises(UserError, match="inside the installed dpo_exp package"):
        build.output_path(str(installed / "datasets" / "pairs.jsonl"), tmp_path / "run")
    assert build.output_path(None, tmp_path / "run") == tmp_path / "run" / "pairs.jsonl"
    assert build.output_path(str(tmp_path / "data"), tmp_path / "run") == tmp_path / "data" / "pairs.jsonl"


def test_the_shipped_claims_preset_composes_and_its_prompts_suit_its_judge(tmp_path):
    from hydra import compose, initialize_config_dir

    from dpo_exp.data import build

    build.register()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="build", overrides=["build=sycophancy_claims", "hardware=cpu"])
    conf = build.to_object(cfg)
    temps, top_ps, _ = build.check(conf, tmp_path)
    prompts = build.load_prompts(conf.build).prompts
    assert len(prompts) == 628 and len(temps) == len(top_ps) == conf.build.n == 4
    assert Counter(p.context["claim_is_true"] for p in prompts) == {True: 314, False: 314}
    assert all(p.context["claim_is_true"] == (p.context["kind"] == "true_claim") for p in prompts)
    assert prompts[0].messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert build.make_judge(conf, prompts).name == "heuristic:fact_claims"
    assert cfg.tracking.experiment == "sycophancy"


def test_adapter_fingerprint_is_the_weights_and_config_not_what_the_trainer_wrote_beside_them(tmp_path):
    """The same adapter saved by two runs hits the build cache: not its training_args.bin, README or the order in
    which PEFT lists target_modules (a set); a changed weight or setting misses it."""
    from dpo_exp.data.build import adapter_fingerprint

    def save(name: str, modules: list[str], weights: bytes, args: bytes) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": modules}))
        (folder / "adapter_model.safetensors").write_bytes(weights)
        (folder / "training_args.bin").write_bytes(args)
        (folder / "README.md").write_text(f"run {name}")
        return folder

    a = save("a", ["q_proj", "k_proj", "v_proj"], b"W1", b"output_dir=/runs/a")
    same = save("b", ["v_proj", "q_proj", "k_proj"], b"W1", b"output_dir=/runs/b")
    assert adapter_fingerprint(a) == adapter_fingerprint(same)
    assert adapter_fingerprint(save("c", ["q_proj", "k_proj", "v_proj"], b"W2", b"x")) != adapter_fingerprint(a)
    assert adapter_fingerprint(save("d", ["q_proj", "v_proj"], b"W1", b"x")) != adapter_fingerprint(a)
