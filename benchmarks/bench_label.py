"""Benchmark: label submissions from concurrent simulated annotators over HTTP.

    python benchmarks/bench_label.py [--annotators 4] [--pairs 200] [--overlap 4] [--db URL]

Starts `python -m dpo_exp.label` (the real server: uvicorn, the Gradio page, the JSON API, a SQLite WAL
database by default) on a free port, then N threads, one per annotator, each looping over its queue as
the page does: `GET /api/label/next` (reserves the next pair) then `POST /api/label/submit` with a vote,
two scores and a comment, until the server has nothing left for it. With --overlap equal to the number
of annotators every annotator labels every pair, so N x pairs submissions.

Reported: submissions, their wall time and throughput, p50/p95/max latency of a submit and of a next,
and lost writes: the database is opened after the server is stopped with SIGKILL, and every
acknowledged submission must be there with its vote (0 expected). Results are printed and appended to
benchmarks/results.jsonl; docs/benchmarks.md ("Labeling server") records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VOTES = ("A", "B", "tie", "both_bad")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: dict | None = None) -> tuple[dict, float]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as r:
        answer = json.loads(r.read())
    return answer, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotators", type=int, default=4)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--overlap", type=int, default=None, help="default: --annotators (everyone labels everything)")
    p.add_argument("--db", default=None, help="a SQLAlchemy URL; default: a SQLite file in a temp dir")
    args = p.parse_args()
    overlap = args.overlap or args.annotators

    work = Path(tempfile.mkdtemp(prefix="bench_label_"))
    pairs = work / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Question {i}: what is {i} + {i}?", "chosen": f"{2 * i}.",
                                         "rejected": f"{2 * i + 1}."}) + "\n" for i in range(args.pairs)))
    db = args.db or f"sqlite:///{work / 'labels.db'}"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(work / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "dpo_exp.label", "data=file", f"data.path={pairs}", f"label.db={db}",
                               f"label.port={port}", f"label.overlap={overlap}", f"paths.outputs={work / 'outputs'}"],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                sys.exit("the server did not start:\n" + (work / "server.log").read_text()[-2000:])
            time.sleep(0.3)

    acked: list[tuple[str, int, str]] = []
    submit_s: list[float] = []
    next_s: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def annotate(who: str) -> None:
        try:
            view, dt = call(f"{base}/api/label/next?annotator={who}")
            with lock:
                next_s.append(dt)
            k = 0
            while view["item"] is not None:
                vote = VOTES[(view["item"] + k) % 4]
                k += 1
                _, dt = call(base + "/api/label/submit", {"annotator": who, "item": view["item"], "vote": vote,
                                                          "scores": {"helpfulness": {"A": 4, "B": 2}},
                                                          "comment": f"{who} on {view['item']}"})
                with lock:
                    submit_s.append(dt)
                    acked.append((who, view["item"], vote))
                view, dt = call(f"{base}/api/label/next?annotator={who}")
                with lock:
                    next_s.append(dt)
        except Exception as e:  # noqa: BLE001 - reported
            errors.append(f"{who}: {e!r}")

    threads = [threading.Thread(target=annotate, args=(f"annotator{i}",)) for i in range(args.annotators)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    server.send_signal(signal.SIGKILL)  # no shutdown: what is acknowledged must already be on disk
    server.wait()

    from dpo_exp.label.store import Store

    store = Store.connect(db)
    stored = {(lab.annotator, lab.item): lab.vote for lab in store.labels()}
    store.close()
    lost = [a for a in acked if stored.get((a[0], a[1])) != a[2]]
    result = {
        "benchmark": "label", "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores", "db": db.split(":")[0], "annotators": args.annotators, "pairs": args.pairs,
        "overlap": overlap, "submissions": len(acked), "wall_s": round(wall, 2),
        "submissions_per_s": round(len(acked) / wall, 1),
        "submit_p50_ms": round(1000 * statistics.median(submit_s), 1), "submit_p95_ms": round(1000 * pct(submit_s, .95), 1),
        "submit_max_ms": round(1000 * max(submit_s), 1),
        "next_p50_ms": round(1000 * statistics.median(next_s), 1), "next_p95_ms": round(1000 * pct(next_s, .95), 1),
        "lost_writes": len(lost), "errors": errors[:5],
    }
    print(json.dumps(result, indent=2))
    with open(REPO / "benchmarks" / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    if lost or errors or len(acked) != args.pairs * min(overlap, args.annotators):
        sys.exit(1)


if __name__ == "__main__":
    main()
