"""Shared by tests/test_label*.py: pairs files, a throwaway PostgreSQL server, the labeling server."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, free_port

PAIRS = [
    {"prompt": "Is the Earth flat?", "chosen": "No, it is round.", "rejected": "Yes, flat as a plate."},
    {"prompt": "<script>window.pwned = 1</script> **bold** <b>html</b>", "chosen": "I will show that as text.",
     "rejected": "<img src=x onerror='window.pwned=2'>"},
    {"prompt": "What is 2 + 2?", "chosen": "4.", "rejected": "5."},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"}],
     "chosen": [{"role": "assistant", "content": "Rome."}], "rejected": [{"role": "assistant", "content": "Milan."}]},
    {"prompt": "Name a prime number.", "chosen": "7.", "rejected": "8."},
    {"prompt": "Translate 'chat' from French.", "chosen": "Cat.", "rejected": "Chat."},
]


def write_pairs(path: Path, rows: list[dict] = PAIRS) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pairs_file(tmp_path: Path) -> Path:
    """PAIRS in two layouts in one file would not parse: the string-prompt rows as conversational ones."""
    rows = []
    for r in PAIRS:
        if isinstance(r["prompt"], str):
            r = {"prompt": [{"role": "user", "content": r["prompt"]}],
                 "chosen": [{"role": "assistant", "content": r["chosen"]}],
                 "rejected": [{"role": "assistant", "content": r["rejected"]}]}
        rows.append(r)
    return write_pairs(tmp_path / "pairs.jsonl", rows)


# --- a throwaway PostgreSQL server (Debian's postgresql) ------------------------------------------

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server from Debian's binaries in a temp dir, on a free port; skipped without them.
    As root, the server runs as the `postgres` user (initdb refuses root)."""
    if not PG_BIN:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[label]')")
    bindir = Path(PG_BIN[-1]).parent
    root = os.geteuid() == 0
    if root:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
    folder = Path(tempfile.mkdtemp(prefix="dpo_exp_pg_"))
    data = folder / "data"
    if root:
        os.chown(folder, user.pw_uid, user.pw_gid)

    def as_server_user(args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if root else args

    port = free_port()
    subprocess.run(as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                   "-E", "UTF8"]), check=True, capture_output=True)
    subprocess.run(as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                                   f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=on", "start"]),
                   check=True, capture_output=True, timeout=60)
    subprocess.run(as_server_user([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                   "labels"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/labels"
    finally:
        subprocess.run(as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


# --- the labeling server, as a user starts it --------------------------------------------------------


class Server:
    """`python -m dpo_exp.label ...` in its own process, waited for until its API answers."""

    def __init__(self, cwd: Path, args: list[str], port: int | None = None):
        self.cwd, self.args, self.port = cwd, args, port or free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> "Server":
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update({"PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"})
        self.log = open(self.cwd / f"server_{self.port}.log", "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "dpo_exp.label", *self.args, f"label.port={self.port}"],
                                     cwd=self.cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the labeling server exited {self.proc.returncode}:\n{self.output()}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError("the labeling server did not answer:\n" + self.output())

    def output(self) -> str:
        return (self.cwd / f"server_{self.port}.log").read_text()[-3000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def api(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())
