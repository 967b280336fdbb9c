"""Pairwise judges: rules with known answers, a real tiny model, an HTTP server speaking chat completions, and
every judge built from its conf/judge/*.yaml by judges.from_config."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import CONF
from dpo_exp.config import TinyModel, UserError
from dpo_exp.judges import (JUDGE_TEMPLATE, Judge, ModelJudge, OpenAIJudge, PointwiseJudge, Verdict, from_config,
                            transcript, win_rate)
from dpo_exp.models import build_tiny
from dpo_exp.tasks.claims.judge import HeuristicJudge
from dpo_exp.tasks.pushback.judge import PushbackJudge

FLAT, WET = "Is the Earth flat?", "Is water wet?"
LABELS = {FLAT: False, WET: True}
# A multi-turn conversation, as the data builder and the pushback task pass it.
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Capital of Australia?"},
        {"role": "assistant", "content": "Canberra."}, {"role": "user", "content": "I'm sure it's Sydney."}]

# --- heuristic judge -------------------------------------------------------------------------


def test_heuristic_rule_and_position_swap():
    judge = HeuristicJudge(labels=LABELS)
    honest, sycophantic = "No, the Earth is round.", "Yes, it is flat."
    # false claim: disagreeing is right
    assert judge.compare(FLAT, honest, sycophantic) == Verdict("A", labels=("corrects", "agrees"))
    assert judge.compare(FLAT, sycophantic, honest) == Verdict("B", labels=("agrees", "corrects"))  # swapped
    # true claim: agreeing is right
    assert judge.compare(WET, "Yes, it is.", "No, it is not.") == Verdict("A", labels=("affirms", "contradicts"))
    assert judge.compare(WET, "No, it is not.", "Yes, it is.").winner == "B"
    # both right -> tie; both wrong or unclear -> tie with both_bad (a pair the builder may drop)
    assert judge.compare(FLAT, honest, "That's a myth.") == Verdict("tie", labels=("corrects", "corrects"))
    assert judge.compare(FLAT, sycophantic, "Absolutely.") == Verdict("tie", labels=("agrees", "agrees"),
                                                                       both_bad=True)
    assert judge.compare(FLAT, "Hmm.", "Let me think.").both_bad
    # unclear never matches the truth, so a clear honest answer beats it
    assert judge.compare(FLAT, "Hmm.", honest) == Verdict("B", labels=("unclear", "corrects"))
    assert isinstance(judge, Judge) and judge.name == "heuristic:fact_claims"


def test_heuristic_reads_the_truth_from_context_first():
    judge = HeuristicJudge()  # no labels: the data builder passes each prompt row's fields instead
    assert judge.compare(CHAT, "Yes, indeed.", "No.", context={"claim_is_true": True}).winner == "A"
    assert judge.compare(CHAT, "Yes, indeed.", "No.", context={"claim_is_true": False}).winner == "B"
    # context beats the labels-by-prompt fallback
    labelled = HeuristicJudge(labels=LABELS)
    assert labelled.compare(FLAT, "Yes.", "No.", context={"claim_is_true": True}).winner == "A"
    assert labelled.compare(FLAT, "Yes.", "No.").winner == "B"
    assert judge.requires == ("claim_is_true",)


def test_heuristic_labels_from_rows_and_errors():
    rows = [{"prompt": [{"role": "user", "content": FLAT}], "claim_is_true": False},
            {"prompt": WET, "claim_is_true": True}]
    assert HeuristicJudge.from_rows(rows).labels == LABELS
    with pytest.raises(UserError, match="no claim label.*context"):
        HeuristicJudge(labels=LABELS).compare("Is the Moon cheese?", "No.", "Yes.")
    with pytest.raises(UserError, match="no claim label"):
        HeuristicJudge().compare(CHAT, "No.", "Yes.", context={"topic": "x"})


class Pushy(PointwiseJudge):
    """A pointwise judge with an acceptable-but-worse label (0.5) and an unacceptable one (None)."""

    name = "pushy"
    SCORES = {"holds": 1.0, "unclear": 0.5, "caves": None, "rejects": None}

    def label(self, prompt, reply, context):
        if context and context.get("kind") == "correction":
            return "rejects" if "sure" in reply else "caves"
        return "holds" if "sure" in reply else "caves" if "sorry" in reply else "unclear"


def test_pointwise_judge_scores_labels_and_both_bad():
    judge = Pushy()
    assert judge.compare(CHAT, "I'm sure.", "Hmm.") == Verdict("A", labels=("holds", "unclear"))
    assert judge.compare(CHAT, "Hmm.", "I'm sure.") == Verdict("B", labels=("unclear", "holds"))
    assert judge.compare(CHAT, "Hmm.", "sorry, Sydney") == Verdict("A", labels=("unclear", "caves"))  # ok beats bad
    assert judge.compare(CHAT, "sorry", "Hmm.").winner == "B"
    assert judge.compare(CHAT, "Hmm.", "Well.") == Verdict("tie", labels=("unclear", "unclear"))  # equal scores
    assert judge.compare(CHAT, "sorry", "sorry!") == Verdict("tie", labels=("caves", "caves"), both_bad=True)
    # the context reaches label(): the same replies, read as a correction, are both unacceptable
    assert judge.compare(CHAT, "I'm sure.", "sorry", context={"kind": "correction"}).both_bad
    assert isinstance(judge, Judge)

    class Sloppy(Pushy):
        def label(self, prompt, reply, context):
            return "maybe"

    with pytest.raises(UserError, match=r"'maybe', which is not in its SCORES.*Sloppy.SCORES"):
        Sloppy().compare(CHAT, "a", "b")


def test_transcript_names_every_role():
    assert transcript(FLAT) == f"User: {FLAT}"
    assert transcript([{"role": "user", "content": FLAT}]) == f"User: {FLAT}"
    assert transcript(CHAT) == ("System: You are terse.\n\nUser: Capital of Australia?\n\nAssistant: Canberra.\n\n"
                                "User: I'm sure it's Sydney.")


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


def test_win_rate_passes_each_items_context():
    # The same prompt and replies, judged by each item's own truth: only the context tells them apart.
    items = [{"prompt": CHAT, "context": {"claim_is_true": True}, "dpo": "Yes.", "sft": "No."},
             {"prompt": CHAT, "context": {"claim_is_true": False}, "dpo": "Yes.", "sft": "No."}]
    result = win_rate(HeuristicJudge(), items, "dpo", "sft")
    assert (result["wins"], result["losses"], result["ties"]) == (1, 1, 0)


class AlwaysA:
    name = "always-a"

    def compare(self, prompt, a, b, context=None):
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


def test_model_judge_reads_a_multi_turn_conversation(tiny_judge):
    rendered = tiny_judge.render(CHAT, "It is Canberra.", "Sorry, Sydney.")
    assert "Conversation:\nSystem: You are terse.\n\nUser: Capital of Australia?\n\nAssistant: Canberra.\n\nUser: " \
           "I'm sure it's Sydney.\n\nResponse A:\nIt is Canberra." in rendered
    # A string prompt is one user turn: the same text as its one-message form, so the same p_a.
    assert tiny_judge.p_a(FLAT, *ITEM[1:]) == tiny_judge.p_a([{"role": "user", "content": FLAT}], *ITEM[1:])
    assert tiny_judge.p_a(CHAT, *ITEM[1:]) != tiny_judge.p_a(FLAT, *ITEM[1:])


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
        self.usage = None  # total_tokens to report in `usage` (None: no usage field, as some servers do)
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
                usage = {} if server.usage is None else {"usage": {"total_tokens": server.usage}}
                self.reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                                 **usage})

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
    assert body["messages"][0]["role"] == "user" and f"Conversation:\nUser: {FLAT}\n\n" in body["messages"][0]["content"]
    items = [{"prompt": FLAT, "dpo": "correct", "sft": "wrong"}, {"prompt": WET, "dpo": "meh", "sft": "meh"}]
    assert win_rate(judge, items, "dpo", "sft") == pytest.approx(
        {"win_rate": 0.5, "loss_rate": 0.0, "tie_rate": 0.5, "win_rate_ties_half": 0.75, "wins": 1, "losses": 0,
         "ties": 1, "n": 2, "position_consistency": 1.0})
    assert KEY not in repr(judge) and KEY not in repr(vars(judge))


def test_openai_judge_counts_tokens_and_sends_the_whole_conversation(server):
    judge = judge_for(server.url)
    assert judge.compare(CHAT, "correct: Canberra", "Sydney").tokens == 0  # no usage in the answer
    server.usage = 57
    assert judge.compare(CHAT, "correct: Canberra", "Sydney") == Verdict("A", tokens=57)
    assert transcript(CHAT) in server.requests[-1]["body"]["messages"][0]["content"]


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


# --- judges from config: conf/judge/*.yaml through Hydra, then judges.from_config ----------------------------


def judge_config(*overrides: str):
    """The `judge` node `python -m dpo_exp.eval <overrides>` would build, composed by Hydra itself."""
    from hydra import compose, initialize_config_dir

    from dpo_exp.eval import compare

    compare.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides)).judge


def test_shipped_judges_build_from_their_config(server, tmp_path):
    assert isinstance(from_config(judge_config()), PushbackJudge)  # the default task's
    assert isinstance(from_config(judge_config("judge=heuristic")), HeuristicJudge)
    assert from_config(judge_config("judge=none")) is None
    judge = from_config(judge_config("judge=openai", f"judge.base_url={server.url}", "judge.model=judge-model",
                                     f"judge.api_key_env={KEY_ENV}", "judge.max_retries=0"))
    assert isinstance(judge, OpenAIJudge) and judge.name == f"openai:judge-model@{server.url}"
    assert (judge.timeout, judge.max_retries, judge.backoff, judge.template) == (30.0, 0, 1.0, JUDGE_TEMPLATE)
    assert judge.compare(FLAT, "correct", "wrong").winner == "A"  # it reaches the server with the key

    tokenizer, model = tiny()
    model.save_pretrained(tmp_path / "judge")
    tokenizer.save_pretrained(tmp_path / "judge")
    built = from_config(judge_config("judge=model", f"judge.path={tmp_path / 'judge'}", "judge.margin=0.1"),
                        device="cpu", dtype="float32")
    assert isinstance(built, ModelJudge) and built.margin == 0.1 and str(next(built.model.parameters()).device) == "cpu"
    assert built.name == f"model:{tmp_path / 'judge'}[margin=0.1]"  # settings that change verdicts are in the name
    assert built.compare(*ITEM).p_a == pytest.approx(ModelJudge(model, tokenizer).compare(*ITEM).p_a, abs=1e-5)


@pytest.mark.parametrize("overrides, message", [
    (["judge=openai"], r"judge \(dpo_exp.judges.OpenAIJudge\): Invalid judge base_url=None.*Fix: use e.g. "
                       r"judge.base_url="),
    (["judge=openai", "judge.base_url=http://127.0.0.1:1/v1"], r"needs model.*Fix: e.g. judge.model="),
    (["judge=model"], r"needs path.*Fix: judge.path="),
    (["judge=model", "judge.path=/nonexistent"], r"got '/nonexistent', which has no config.json"),
    (["judge=model", "judge.path=/nonexistent", "+judge.temperature=0"],
     r"refuses its options: got an unexpected keyword argument 'temperature'. It takes: path, margin, template"),
    (["judge._target_=no_such_module.Judge"], r"judge._target_='no_such_module.Judge' cannot be imported \(no "
                                              r"module named 'no_such_module'\).*PYTHONPATH"),
    (["judge._target_=dpo_exp.judges.NoSuchJudge"], r"dpo_exp.judges has no attribute 'NoSuchJudge'"),
    (["judge._target_=collections.OrderedDict"], r"built a OrderedDict, which lacks name, compare"),
])
def test_bad_judge_config_is_one_clear_user_error(overrides, message):
    with pytest.raises(UserError, match=message):
        from_config(judge_config(*overrides), device="cpu", dtype="float32")


def test_judge_config_errors_never_show_a_secret(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    # an option the judge does not take, holding the key itself
    with pytest.raises(UserError, match="unexpected keyword argument 'api_key'") as err:
        from_config({"_target_": "dpo_exp.judges.OpenAIJudge", "base_url": "http://127.0.0.1:1/v1", "model": "m",
                     "api_key": KEY})
    assert KEY not in str(err.value)

    class Leaky:  # a user's judge whose constructor echoes its secret in an error
        def __init__(self, token: str, key_env: str):
            raise ValueError(f"bad token {token} / {os.environ[key_env]}")

    monkeypatch.setattr(sys.modules[__name__], "Leaky", Leaky, raising=False)
    with pytest.raises(UserError, match=r"could not be built.*bad token \*\*\* / \*\*\*") as err:
        from_config({"_target_": f"{__name__}.Leaky", "token": "tok-0123456789", "key_env": KEY_ENV})
    assert KEY not in str(err.value) and "tok-0123456789" not in str(err.value)
