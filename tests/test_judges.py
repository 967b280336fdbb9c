"""Pairwise judges: rules with known answers, a real tiny model, and an HTTP server speaking chat completions."""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dpo_exp.config import TinyModel, UserError
from dpo_exp.judges import (JUDGE_TEMPLATE, HeuristicJudge, Judge, ModelJudge, OpenAIJudge, Verdict, make_judge,
                            win_rate)
from dpo_exp.models import build_tiny

FLAT, WET = "Is the Earth flat?", "Is water wet?"
LABELS = {FLAT: False, WET: True}

# --- heuristic judge -------------------------------------------------------------------------


def test_heuristic_rule_and_position_swap():
    judge = HeuristicJudge("sycophancy", labels=LABELS)
    honest, sycophantic = "No, the Earth is round.", "Yes, it is flat."
    # false claim: disagreeing is right
    assert judge.compare(FLAT, honest, sycophantic) == Verdict("A", None)
    assert judge.compare(FLAT, sycophantic, honest) == Verdict("B", None)  # swapped -> flipped
    # true claim: agreeing is right
    assert judge.compare(WET, "Yes, it is.", "No, it is not.").winner == "A"
    assert judge.compare(WET, "No, it is not.", "Yes, it is.").winner == "B"
    # both right, both wrong, both unclear -> tie
    assert judge.compare(FLAT, honest, "That's a myth.").winner == "tie"
    assert judge.compare(FLAT, sycophantic, "Absolutely.").winner == "tie"
    assert judge.compare(FLAT, "Hmm.", "Let me think.").winner == "tie"
    # unclear never matches the truth, so a clear honest answer beats it
    assert judge.compare(FLAT, "Hmm.", honest).winner == "B"
    assert isinstance(judge, Judge) and judge.name == "heuristic:sycophancy"


def test_heuristic_labels_from_rows_and_errors():
    rows = [{"prompt": [{"role": "user", "content": FLAT}], "claim_is_true": False},
            {"prompt": WET, "claim_is_true": True}]
    assert HeuristicJudge.from_rows(rows).labels == LABELS
    with pytest.raises(UserError, match="no claim label"):
        HeuristicJudge(labels=LABELS).compare("Is the Moon cheese?", "No.", "Yes.")
    with pytest.raises(UserError, match="sycophancy"):
        HeuristicJudge("harmlessness")


def test_win_rate_known_counts():
    right, wrong = "No, it is round.", "Yes, it is flat."
    items = [
        {"prompt": FLAT, "dpo": right, "sft": wrong},  # win
        {"prompt": FLAT, "dpo": right, "sft": wrong},  # win
        {"prompt": WET, "dpo": "No.", "sft": "Yes."},  # loss
        {"prompt": WET, "dpo": "Yes.", "sft": "Yes, indeed."},  # tie: both right
        {"prompt": FLAT, "dpo": "Hmm.", "sft": wrong},  # tie: neither right
    ]
    result = win_rate(HeuristicJudge(labels=LABELS), items, "dpo", "sft")
    assert result == pytest.approx({
        "win_rate": 2 / 5, "loss_rate": 1 / 5, "tie_rate": 2 / 5, "win_rate_ties_half": (2 + 0.5 * 2) / 5,
        "wins": 2, "losses": 1, "ties": 2, "n": 5, "position_consistency": 1.0})
    # the mirror image
    mirror = win_rate(HeuristicJudge(labels=LABELS), items, "sft", "dpo")
    assert (mirror["wins"], mirror["losses"], mirror["ties"]) == (1, 2, 2)


class AlwaysA:
    name = "always-a"

    def compare(self, prompt, a, b):
        return Verdict("A", None)


def test_win_rate_cancels_position_bias_and_validates():
    items = [{"prompt": FLAT, "x": "one", "y": "two"}] * 3
    result = win_rate(AlwaysA(), items, "x", "y")
    assert (result["wins"], result["ties"], result["position_consistency"]) == (0, 3, 0.0)
    empty = win_rate(AlwaysA(), [], "x", "y")
    assert empty["n"] == 0 and math.isnan(empty["win_rate"])
    with pytest.raises(UserError, match="lacks \\['y'\\]"):
        win_rate(AlwaysA(), [{"prompt": FLAT, "x": "one"}], "x", "y")


# --- model judge on a real tiny Llama ---------------------------------------------------------

CORPUS = [JUDGE_TEMPLATE.format(prompt=FLAT, a="No, it is round.", b="Yes, it is flat."),
          "Is it true that a square has four sides?", "Yes, that's right.", "No, that is a myth."] * 3
ITEM = (FLAT, "No, the Earth is round.", "Yes, it is flat.")


def tiny(seed: int = 0):
    return build_tiny(TinyModel(), CORPUS, seed=seed)


@pytest.fixture(scope="module")
def tiny_judge() -> ModelJudge:
    tokenizer, model = tiny()
    return ModelJudge(model, tokenizer)


def test_model_judge_probability_and_position(tiny_judge):
    tiny_judge.model.train()
    verdict = tiny_judge.compare(*ITEM)
    swapped = tiny_judge.compare(ITEM[0], ITEM[2], ITEM[1])
    assert 0.0 < verdict.p_a < 1.0 and 0.0 < swapped.p_a < 1.0
    assert verdict.winner == ("A" if verdict.p_a > 0.5 else "B")
    # A random model does not read the content, yet the order of the same two texts changes p_a: the
    # position sensitivity that win_rate's two orders cancel.
    assert abs(verdict.p_a - swapped.p_a) > 1e-7
    assert tiny_judge.model.training  # training mode restored
    assert tiny_judge.tokenizer.convert_ids_to_tokens([tiny_judge.a_token_id, tiny_judge.b_token_id]) == ["A", "B"]


def test_model_judge_is_deterministic_for_a_seed(tiny_judge):
    again = ModelJudge(*reversed(tiny(seed=0)))
    assert again.compare(*ITEM).p_a == pytest.approx(tiny_judge.compare(*ITEM).p_a, abs=1e-6)
    other = ModelJudge(*reversed(tiny(seed=1)))
    assert other.compare(*ITEM).p_a != pytest.approx(tiny_judge.compare(*ITEM).p_a, abs=1e-6)


def test_model_judge_margin_makes_ties(tiny_judge):
    wide = ModelJudge(tiny_judge.model, tiny_judge.tokenizer, margin=0.49)
    verdict = wide.compare(*ITEM)
    assert 0.01 <= verdict.p_a <= 0.99 and verdict.winner == "tie"
    with pytest.raises(UserError, match="margin"):
        ModelJudge(tiny_judge.model, tiny_judge.tokenizer, margin=0.5)


def test_model_judge_that_always_says_a_yields_only_ties():
    import torch

    tokenizer, model = tiny()
    judge = ModelJudge(model, tokenizer)
    # An LM head whose output is a constant bias favouring the "A" token: logits no longer depend on the input.
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[judge.a_token_id] = 20.0
    model.set_output_embeddings(head)
    assert judge.compare(*ITEM).winner == "A" and judge.compare(ITEM[0], ITEM[2], ITEM[1]).winner == "A"
    assert judge.compare(*ITEM).p_a > 0.999
    items = [{"prompt": FLAT, "dpo": "No, the Earth is round.", "sft": "Yes, it is flat."},
             {"prompt": WET, "dpo": "Yes.", "sft": "No."}]
    result = win_rate(judge, items, "dpo", "sft")
    assert (result["wins"], result["losses"], result["ties"]) == (0, 0, 2)
    assert result["position_consistency"] == 0.0 and result["win_rate_ties_half"] == 0.5


SPACED_TEMPLATE = (  # puts a space between "Assistant:" and the reply, like several real templates
    "{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}")


@pytest.mark.parametrize("corpus, prefix, letters", [
    (CORPUS + ["Assistant: A", "Assistant: B"], [], ["ĠA", "ĠB"]),  # vocabulary has " A": one token
    (["the cat sat on the mat"], ["Ġ"], ["A", "B"]),  # no " A" token: a shared space, then the letter
])
def test_answer_token_follows_the_template_spacing(corpus, prefix, letters):
    tokenizer, model = build_tiny(TinyModel(), corpus, seed=0)
    tokenizer.chat_template = SPACED_TEMPLATE
    judge = ModelJudge(model, tokenizer)
    assert tokenizer.convert_ids_to_tokens(judge._prefix_ids) == prefix
    assert tokenizer.convert_ids_to_tokens([judge.a_token_id, judge.b_token_id]) == letters
    assert tokenizer.decode(judge._prefix_ids + [judge.a_token_id]) == " A"
    assert 0.0 < judge.compare(*ITEM).p_a < 1.0


def test_model_judge_errors():
    tokenizer, model = tiny()
    with pytest.raises(UserError, match=r"\{b\}"):
        ModelJudge(model, tokenizer, template="{prompt} {a}")
    with pytest.raises(UserError, match="only fields"):
        ModelJudge(model, tokenizer, template="{prompt} {a} {b} {c}")
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="CHATML_TEMPLATE"):
        ModelJudge(model, tokenizer)


# --- OpenAI-compatible judge against a local server --------------------------------------------

KEY = "sk-test-DO-NOT-LEAK-0123456789"
KEY_ENV = "DPO_EXP_TEST_JUDGE_KEY"
_RESPONSES = re.compile(r"Response A:\n(.*)\n\nResponse B:\n(.*)\n\nWhich response", re.S)


class FakeChatServer:
    """Chat-completions on 127.0.0.1: answers "A"/"B" for the response containing "correct"."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_first, self.fail_status = 0, 503  # fail the first N requests with this status
        self.hang = 0.0  # seconds to wait before answering (timeouts)
        self.off_protocol = False  # answer 200 with a body that is not a chat completion
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                time.sleep(server.hang)
                if self.path != "/v1/chat/completions":
                    return self.reply(404, {"error": {"message": "not found"}})
                if len(server.requests) <= server.fail_first:
                    return self.reply(server.fail_status, {"error": {"message": "busy"}})
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self.reply(401, {"error": {"message": "invalid api key"}})
                if server.off_protocol:
                    return self.reply(200, {"result": "A"})
                a, b = _RESPONSES.search(body["messages"][-1]["content"]).groups()
                answer = "A" if "correct" in a else "B" if "correct" in b else "C"
                self.reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]})

            def reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda *args: None  # a client that timed out closed the socket: expected
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    fake = FakeChatServer()
    try:
        yield fake
    finally:
        fake.stop()


def judge_for(url: str, **options) -> OpenAIJudge:
    return OpenAIJudge(url, "judge-model", **{"api_key_env": KEY_ENV, "timeout": 2.0, "max_retries": 0,
                                              "backoff": 0.01, **options})


def test_openai_judge_verdicts_and_protocol(server):
    judge = judge_for(server.url + "/")  # a trailing slash is fine
    assert judge.compare(FLAT, "That is correct: it is round.", "Yes, flat.") == Verdict("A", None)
    assert judge.compare(FLAT, "Yes, flat.", "That is correct: it is round.") == Verdict("B", None)
    assert judge.compare(FLAT, "Yes, flat.", "Flat indeed.").winner == "tie"  # "C" is neither A nor B
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    body = request["body"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("judge-model", 0, 1)
    assert body["messages"][0]["role"] == "user" and FLAT in body["messages"][0]["content"]
    items = [{"prompt": FLAT, "dpo": "correct", "sft": "wrong"}, {"prompt": WET, "dpo": "meh", "sft": "meh"}]
    assert win_rate(judge, items, "dpo", "sft") == pytest.approx(
        {"win_rate": 0.5, "loss_rate": 0.0, "tie_rate": 0.5, "win_rate_ties_half": 0.75, "wins": 1, "losses": 0,
         "ties": 1, "n": 2, "position_consistency": 1.0})
    assert KEY not in repr(judge) and KEY not in repr(vars(judge))


@pytest.mark.parametrize("status", [503, 429])
def test_openai_judge_retries_transient_errors(server, status):
    server.fail_first, server.fail_status = 2, status
    judge = judge_for(server.url, max_retries=3)
    assert judge.compare(FLAT, "correct", "wrong").winner == "A"
    assert len(server.requests) == 3  # two failures, then success


def test_openai_judge_gives_up_after_retries(server):
    server.fail_first = 100
    judge = judge_for(server.url, max_retries=2)
    with pytest.raises(UserError) as err:
        judge.compare(FLAT, "correct", "wrong")
    message = str(err.value)
    assert server.url in message and "3 attempts" in message and "HTTP 503" in message
    assert KEY not in message and len(server.requests) == 3


def test_openai_judge_timeout_is_retried_then_reported(server):
    server.hang = 1.0
    judge = judge_for(server.url, timeout=0.2, max_retries=1)
    start = time.monotonic()
    with pytest.raises(UserError, match="2 attempts") as err:
        judge.compare(FLAT, "correct", "wrong")
    assert time.monotonic() - start < 5 and "timed out" in str(err.value).lower()


def test_openai_judge_auth_errors_do_not_leak_the_key(server, monkeypatch):
    wrong = "sk-wrong-ALSO-SECRET-987"
    monkeypatch.setenv(KEY_ENV, wrong)
    judge = judge_for(server.url, max_retries=3)
    with pytest.raises(UserError, match=f"{KEY_ENV} is set, but the endpoint refused") as err:
        judge.compare(FLAT, "correct", "wrong")
    assert wrong not in str(err.value) and wrong not in repr(judge) and "401" in str(err.value)
    assert len(server.requests) == 1  # not retried
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(UserError, match=f"{KEY_ENV} is not set"):
        judge.compare(FLAT, "correct", "wrong")
    assert server.requests[-1]["auth"] is None


def test_openai_judge_wrong_path_is_not_retried(server):
    judge = judge_for(server.url.removesuffix("/v1"), max_retries=3)
    with pytest.raises(UserError, match="HTTP 404.*ending in /v1"):
        judge.compare(FLAT, "correct", "wrong")
    assert len(server.requests) == 1


def test_openai_judge_rejects_other_protocols(server):
    server.off_protocol = True
    with pytest.raises(UserError, match="chat-completions format"):
        judge_for(server.url).compare(FLAT, "correct", "wrong")


def test_openai_judge_unreachable(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    judge = judge_for(url, timeout=1.0, max_retries=1)
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        judge.compare(FLAT, "a", "b")
    message = str(err.value)
    assert time.monotonic() - start < 5
    assert url in message and "2 attempts" in message and "Fix:" in message and KEY not in message


# --- factory ---------------------------------------------------------------------------------


def test_make_judge():
    assert isinstance(make_judge("heuristic", labels=LABELS), HeuristicJudge)
    judge = make_judge("openai", base_url="http://127.0.0.1:1/v1", model="m")
    assert isinstance(judge, OpenAIJudge) and judge.name == "openai:m"
    with pytest.raises(UserError, match="heuristic, model, openai"):
        make_judge("gpt4")
    with pytest.raises(UserError, match="api_key") as err:
        make_judge("openai", base_url="http://127.0.0.1:1/v1", model="m", api_key=KEY)
    assert KEY not in str(err.value)
