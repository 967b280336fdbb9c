"""Pairwise judges: which of two replies to the same conversation is better.

The judge plug-in point, for every command that judges pairs of replies (`python -m dpo_exp.eval`'s
win rates; a data builder choosing chosen and rejected). A judge is any object with a ``name`` and
``compare(prompt, a, b, context=None) -> Verdict`` (the ``Judge`` protocol); which one runs is config,
not code: the `judge` group (`conf/judge/*.yaml`) names a class by `_target_`, and ``from_config``
builds it. A user's own class in their own module
works the same way (``judge._target_=my_module.MyJudge``).

``compare``'s arguments: ``prompt`` is the conversation so far (a list of {role, content} messages,
possibly multi-turn with a system message) or a plain string (one user message); ``a`` and ``b`` are
the two candidate next assistant turns; ``context`` is the prompt row's own extra fields (a task's
labels and answer fields), or None.

Judges here: a base for rule judges and the two model-based ones. A task's own rule judge lives in its
folder (`dpo_exp/tasks/<task>/judge.py`, named by its `conf/judge/*.yaml`).

* ``PointwiseJudge``: the base of rule judges that label each reply on its own (a task's rules) and
  compare the two labels' scores.
* ``ModelJudge`` (`judge=model`): a local HF causal LM with a chat template. It reads the conversation
  and both replies (``JUDGE_TEMPLATE``) and we compare its next-token logits for "A" and "B" right
  after the generation prompt: p_a = softmax(logit_A, logit_B)[0]. Winner A if p_a > 0.5 + margin,
  B if p_a < 0.5 - margin, else tie (margin 0: ties only when equal).
* ``OpenAIJudge`` (`judge=openai`): any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM,
  llama.cpp server, ...) over plain HTTP with the standard library; the same prompt, temperature 0,
  one output token, whose first non-space character is read: "A", "B", anything else a tie. The API
  key is read from an environment variable at each request and never stored on the judge.

``win_rate`` asks the judge both orders of every pair, because judges prefer a position (even a
random model does): a model wins an item only when it wins in both orders; split decisions and ties
are ties. A judge that always answers "A" thus yields only ties, with position_consistency 0.0.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Protocol, Union, runtime_checkable

from dpo_exp import plugins
from dpo_exp.config import UserError

A, B, TIE = "A", "B", "tie"

Prompt = Union[str, list]  # the conversation so far: messages [{role, content}, ...], or one user message

JUDGE_TEMPLATE = (
    "Compare two responses to the same conversation.\n\n"
    "Conversation:\n{prompt}\n\n"
    "Response A:\n{a}\n\n"
    "Response B:\n{b}\n\n"
    "Which response is the better next assistant turn? Answer with A or B."
)


@dataclass(frozen=True)
class Verdict:
    winner: str  # "A", "B" or "tie"
    p_a: float | None = None  # probability that A is better, where the judge has one (model judge)
    labels: tuple[str, str] | None = None  # pointwise judges: each reply's label, e.g. ("good", "bad")
    both_bad: bool = False  # neither reply is acceptable (a tie the data builder may drop)
    tokens: int = 0  # API tokens this verdict cost (openai judge: usage.total_tokens)


@runtime_checkable
class Judge(Protocol):
    # Stable identity, including every setting that changes verdicts: a cache of verdicts can key on it.
    name: str

    def compare(self, prompt: Prompt, a: str, b: str, context: Mapping[str, Any] | None = None) -> Verdict: ...


def transcript(prompt: Prompt) -> str:
    """The conversation as text for a judge template's {prompt}: one "Role: content" block per message."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return "\n\n".join(f"{str(m['role']).capitalize()}: {m['content']}" for m in messages)


def from_config(cfg: Any, **runtime: Any) -> Judge | None:
    """The judge a `judge` config node names (conf/judge/*.yaml, or a user's `_target_`); None for none.

    `runtime` holds what the app knows at run time (device=...), passed only to a target whose
    signature takes it and whose config does not set it. Every problem is a UserError naming
    `judge._target_` or the option, never an option's value.
    """
    judge = plugins.instantiate(cfg, "judge", **runtime)
    if judge is not None:
        plugins.require_members(judge, "judge", ("name", "compare"), "dpo_exp.judges.Judge")
    return judge


# --- win rate over both orders ---------------------------------------------------------------

_FROM_SWAPPED = {A: B, B: A, TIE: TIE}  # a verdict on (b, a) read as a verdict on (a, b)


def win_rate(judge: Judge, items: Iterable[Mapping], model_a: str, model_b: str) -> dict[str, float]:
    """Win/loss/tie rates of `model_a` against `model_b`, judged in both orders.

    Each item holds "prompt", one response per model, keyed by model name, and optionally "context"
    (the prompt row's fields, passed to the judge). The judge sees (A=model_a, B=model_b) and
    (A=model_b, B=model_a); model_a wins an item only if it wins both, loses only if it loses both,
    else the item is a tie. ``position_consistency`` is the share of items where both orders gave the
    same outcome (both ties included): low values mean the judge follows position more than content.
    Rates are nan for no items.
    """
    wins = losses = ties = consistent = n = 0
    for i, item in enumerate(items):
        missing = [k for k in ("prompt", model_a, model_b) if k not in item]
        if missing:
            raise UserError(f"win_rate item {i} lacks {missing} (it has {sorted(item)}). Fix: give every item a "
                            f"'prompt' and one response per compared model, keyed by the model names "
                            f"({model_a!r}, {model_b!r}).")
        prompt, context = item["prompt"], item.get("context")
        first = _winner(judge.compare(prompt, item[model_a], item[model_b], context=context), judge)
        second = _FROM_SWAPPED[_winner(judge.compare(prompt, item[model_b], item[model_a], context=context), judge)]
        n += 1
        consistent += first == second
        if first == second == A:
            wins += 1
        elif first == second == B:
            losses += 1
        else:
            ties += 1

    def rate(count: float) -> float:
        return count / n if n else math.nan

    return {
        "win_rate": rate(wins), "loss_rate": rate(losses), "tie_rate": rate(ties),
        "win_rate_ties_half": rate(wins + 0.5 * ties),
        "wins": wins, "losses": losses, "ties": ties, "n": n,
        "position_consistency": rate(consistent),
    }


def _winner(verdict: Verdict, judge: Judge) -> str:
    if verdict.winner not in _FROM_SWAPPED:
        raise ValueError(f"judge {judge.name!r} returned winner {verdict.winner!r}; expected 'A', 'B' or 'tie'")
    return verdict.winner


# --- rule judges: each reply labelled on its own ---------------------------------------------


class PointwiseJudge:
    """Base class for rule judges that read each reply on its own, then compare the two labels' scores.

    Subclasses set ``name``, ``SCORES`` (label -> score, higher is better; None = unacceptable or
    unknown) and implement ``label(prompt, reply, context) -> str``; ``requires`` lists the prompt-row
    fields ``label`` reads from ``context`` (checked on the rows before any model work).

    ``compare``: the reply with the higher score wins; an acceptable reply beats an unacceptable one;
    equal scores tie; two unacceptable replies tie with ``both_bad``. ``Verdict.labels`` holds both labels.
    """

    name: str = "pointwise"
    SCORES: ClassVar[Mapping[str, float | None]] = {}
    requires: ClassVar[tuple[str, ...]] = ()

    def label(self, prompt: Prompt, reply: str, context: Mapping[str, Any] | None) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement label(prompt, reply, context)")

    def score(self, label: str) -> float | None:
        if label not in self.SCORES:
            raise UserError(f"The judge {self.name!r} labelled a reply {label!r}, which is not in its SCORES "
                            f"({', '.join(map(repr, self.SCORES))}). Fix: add the label to "
                            f"{type(self).__name__}.SCORES (None if such a reply is unacceptable).")
        return self.SCORES[label]

    def compare(self, prompt: Prompt, a: str, b: str, context: Mapping[str, Any] | None = None) -> Verdict:
        labels = (self.label(prompt, a, context), self.label(prompt, b, context))
        sa, sb = self.score(labels[0]), self.score(labels[1])
        if sa is None and sb is None:
            return Verdict(TIE, labels=labels, both_bad=True)
        if sb is None or (sa is not None and sa > sb):
            return Verdict(A, labels=labels)
        if sa is None or sb > sa:
            return Verdict(B, labels=labels)
        return Verdict(TIE, labels=labels)


def _identity(base: str, template: str, **settings: Any) -> str:
    """A judge's name: its base identity plus every non-default setting that changes its verdicts."""
    parts = [f"{k}={v}" for k, v in settings.items() if v]
    if template != JUDGE_TEMPLATE:
        parts.append("template=" + hashlib.sha256(template.encode()).hexdigest()[:8])
    return base + (f"[{','.join(parts)}]" if parts else "")


# --- local model judge -----------------------------------------------------------------------

_SENTINEL = "QZXJ"  # stands in for the assistant's reply, to find where the template puts it


def _check_template(template: str) -> None:
    try:
        template.format(prompt="", a="", b="")
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"Invalid judge template ({type(e).__name__}: {e}). Fix: use a str.format template whose "
                        "only fields are {prompt}, {a} and {b} (write literal braces as {{ and }}).") from None
    missing = [f for f in ("{prompt}", "{a}", "{b}") if f not in template]
    if missing:
        raise UserError(f"The judge template lacks {', '.join(missing)}, so the judge would not see everything it "
                        "compares. Fix: include {prompt}, {a} and {b}.")


def _answer_tokens(tokenizer) -> tuple[list[int], int, int]:
    """(shared prefix ids, id of "A", id of "B") as the first answer token after the generation prompt.

    Whether the answer starts with "A" or " A" (different tokens in most BPE vocabularies)
    depends on the chat template, so we ask it: rendering a conversation with an assistant
    reply shows the text the template puts between the generation prompt and the reply
    (nothing for ChatML, a space or an empty think block for some templates). We tokenize
    generation prompt + that text + the letter as one string, as the whole conversation
    would be tokenized, and keep the tokens after the prompt's own. Tokens both answers
    share (a lone space, a think block) are appended to every judged prompt; the first
    token where "A" and "B" differ is the one compared.
    """
    user = [{"role": "user", "content": "Which response is better? Answer with A or B."}]
    gen = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": _SENTINEL}], tokenize=False)
    rest = full[len(gen):] if full.startswith(gen) else ""
    lead = rest[: rest.index(_SENTINEL)] if _SENTINEL in rest else ""
    prompt_ids = tokenizer(gen, add_special_tokens=False)["input_ids"]
    answers = []
    for letter in (A, B):
        ids = tokenizer(gen + lead + letter, add_special_tokens=False)["input_ids"]
        if ids[: len(prompt_ids)] != prompt_ids:
            # The letter merged with the prompt's last token; score it as encoded on its own.
            ids = prompt_ids + tokenizer(lead + letter, add_special_tokens=False)["input_ids"]
        answers.append(ids[len(prompt_ids):])
    a, b = answers
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == min(len(a), len(b)):
        raise UserError("The judge tokenizer encodes the answers 'A' and 'B' with the same tokens, so the model "
                        "judge cannot tell them apart. Fix: use a model whose tokenizer has distinct tokens for "
                        "A and B (every byte-level BPE tokenizer does).")
    return a[:k], a[k], b[k]


class ModelJudge:
    """A local chat model as judge: p_a from its next-token logits for "A" vs "B" (module docstring).

    The token ids are fixed once at construction (``_answer_tokens`` documents how). Call it
    with the model on any device; it runs in eval mode without gradients and restores the
    model's training mode.
    """

    def __init__(self, model, tokenizer, template: str | None = None, margin: float = 0.0, name: str | None = None):
        template = template or JUDGE_TEMPLATE
        _check_template(template)
        if not isinstance(margin, (int, float)) or not 0.0 <= margin < 0.5:
            raise UserError(f"Invalid judge margin={margin!r}: it must be a number in [0, 0.5). Fix: use e.g. "
                            "margin=0.05 to call a tie when p_a is within 0.05 of 0.5, or 0 to call ties only on "
                            "exact equality.")
        if not getattr(tokenizer, "chat_template", None):
            raise UserError("The model judge's tokenizer has no chat template. Fix: set one before building the "
                            "judge, e.g. tokenizer.chat_template = dpo_exp.models.CHATML_TEMPLATE.")
        self.model, self.tokenizer, self.template, self.margin = model, tokenizer, template, float(margin)
        config_name = getattr(getattr(model, "config", None), "_name_or_path", "")
        self.name = _identity(name or f"model:{config_name or type(model).__name__}", template, margin=self.margin)
        self._prefix_ids, self.a_token_id, self.b_token_id = _answer_tokens(tokenizer)

    @classmethod
    def from_pretrained(cls, path: str | None, margin: float = 0.0, template: str | None = None,
                        device: str | None = None, dtype: str | None = None) -> "ModelJudge":
        """The judge `conf/judge/model.yaml` builds: a local Hugging Face chat model folder.

        `device` and `dtype` come from the app (its hardware config); left out: CUDA when available,
        else the CPU, in bfloat16 on a bf16 GPU and float32 otherwise (as hardware.dtype=auto).
        """
        folder = Path(str(path)).expanduser() if path else None
        if folder is None or not (folder / "config.json").is_file():
            raise UserError(f"The model judge needs path, a local Hugging Face chat model folder (got {path!r}, "
                            "which has no config.json). Fix: judge.path=/path/to/chat_model (a folder saved with "
                            "save_pretrained).")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype)).to(device)
        return cls(model.eval(), tokenizer, template=template, margin=margin, name=f"model:{folder.resolve()}")

    def render(self, prompt: Prompt, a: str, b: str) -> str:
        """The judging prompt, through the chat template, ending with the generation prompt."""
        messages = [{"role": "user", "content": self.template.format(prompt=transcript(prompt), a=a, b=b)}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def p_a(self, prompt: Prompt, a: str, b: str) -> float:
        import torch

        ids = self.tokenizer(self.render(prompt, a, b), add_special_tokens=False)["input_ids"] + self._prefix_ids
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                logits = self.model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0, -1]
        finally:
            self.model.train(was_training)
        pair = logits[[self.a_token_id, self.b_token_id]].float()
        return torch.softmax(pair, dim=0)[0].item()

    def compare(self, prompt: Prompt, a: str, b: str, context: Mapping[str, Any] | None = None) -> Verdict:
        p = self.p_a(prompt, a, b)
        return Verdict(A if p > 0.5 + self.margin else B if p < 0.5 - self.margin else TIE, p)


# --- OpenAI-compatible endpoint judge --------------------------------------------------------

MAX_RETRY_AFTER = 60.0  # seconds: the longest wait a server's Retry-After header can impose


class OpenAIJudge:
    """A judge behind any OpenAI-compatible chat-completions API, over stdlib HTTP.

    POSTs ``{base_url}/chat/completions`` (base_url usually ends in /v1) with
    ``{"model", "messages", "temperature": 0, "max_tokens": 1}``. The key comes from the
    environment variable `api_key_env` at each request (sent as a Bearer token; no header
    when unset, which local servers accept) and is never stored, printed or put in errors.
    Connection errors, timeouts, HTTP 429 and 5xx are retried up to `max_retries` times,
    waiting backoff * 2**k seconds (or the server's Retry-After, if longer, up to 60 s).
    """

    def __init__(self, base_url: str | None, model: str | None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 30.0, max_retries: int = 3, backoff: float = 1.0, template: str | None = None):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise UserError(f"Invalid judge base_url={base_url!r}: it must be an http(s) URL. Fix: use e.g. "
                            "judge.base_url=https://api.openai.com/v1, or http://127.0.0.1:8000/v1 for a local "
                            "server.")
        if not model:
            raise UserError("The openai judge needs model, the served model's name. Fix: e.g. "
                            "judge.model=gpt-4o-mini (what the endpoint's /v1/models lists).")
        if not all(isinstance(v, (int, float)) for v in (timeout, max_retries, backoff)) \
                or timeout <= 0 or max_retries < 0 or backoff < 0:
            raise UserError(f"Invalid judge retry settings (timeout={timeout}, max_retries={max_retries}, "
                            f"backoff={backoff}). Fix: use timeout > 0, max_retries >= 0 and backoff >= 0.")
        template = template or JUDGE_TEMPLATE
        _check_template(template)
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model, self.api_key_env, self.template = model, api_key_env, template
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        # The endpoint is part of the identity: one model name may be served differently in two places.
        self.name = _identity(f"openai:{model}@{self.base_url}", template)

    def __repr__(self) -> str:
        return f"OpenAIJudge(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def compare(self, prompt: Prompt, a: str, b: str, context: Mapping[str, Any] | None = None) -> Verdict:
        content = self.template.format(prompt=transcript(prompt), a=a, b=b)
        answer, tokens = self._complete([{"role": "user", "content": content}])
        first = answer.lstrip()[:1]
        return Verdict(first if first in (A, B) else TIE, tokens=tokens)

    def _complete(self, messages: list[dict]) -> tuple[str, int]:
        """(choices[0].message.content, usage.total_tokens) of one chat completion ("" and 0 when absent)."""
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0, "max_tokens": 1}).encode()
        key = os.environ.get(self.api_key_env) or None
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        attempts, problem, wait = self.max_retries + 1, "", 0.0
        for attempt in range(attempts):
            if attempt:
                time.sleep(wait)
            wait = self.backoff * 2**attempt
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as e:
                if e.code in (401, 403):
                    raise UserError(self._auth_message(e.code, key)) from None
                if e.code != 429 and e.code < 500:
                    raise UserError(f"The judge endpoint {self.url} rejected the request with HTTP {e.code}: "
                                    f"{_scrub(_body_snippet(e), key)}. Fix: check the judge base_url (usually "
                                    f"ending in /v1) and that model={self.model!r} exists there.") from None
                problem = f"HTTP {e.code}"
                wait = min(max(wait, _retry_after(e.headers)), MAX_RETRY_AFTER)
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", None) or e
                problem = _scrub(f"{type(reason).__name__}: {reason}", key)
                continue
            return self._parse(raw, key)
        raise UserError(f"The judge endpoint {self.url} did not answer: {attempts} attempts failed (last: {problem}). "
                        f"Fix: start the server or correct the judge base_url; if it is only slow or busy, raise "
                        f"timeout (now {self.timeout} s) or max_retries (now {self.max_retries}).")

    def _parse(self, raw: bytes, key: str | None) -> tuple[str, int]:
        try:
            answer = json.loads(raw)
            content = answer["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise UserError(f"The judge endpoint {self.url} did not answer in the chat-completions format (no "
                            f"choices[0].message.content): {_scrub(raw[:200].decode(errors='replace'), key)!r}. "
                            "Fix: point the judge base_url at an OpenAI-compatible API, usually ending in /v1."
                            ) from None
        usage = answer.get("usage") if isinstance(answer, dict) else None
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        return (content if isinstance(content, str) else ""), (tokens if isinstance(tokens, int) else 0)

    def _auth_message(self, code: int, key: str | None) -> str:
        state = ("is not set, so no key was sent" if key is None
                 else "is set, but the endpoint refused that key")
        return (f"The judge endpoint {self.url} answered HTTP {code} (not authorised): the environment variable "
                f"{self.api_key_env} {state}. Fix: export {self.api_key_env} with a valid API key for this endpoint "
                "(or pass api_key_env= naming the variable that holds it).")


def _retry_after(headers) -> float:
    try:
        return float(headers.get("Retry-After", 0)) if headers else 0.0
    except ValueError:  # an HTTP date: not worth parsing, the exponential backoff applies
        return 0.0


def _body_snippet(error: urllib.error.HTTPError) -> str:
    try:
        return error.read()[:200].decode(errors="replace") or "(empty body)"
    except OSError:
        return "(no body)"


def _scrub(text: str, key: str | None) -> str:
    """Text from a server or an exception, with the key masked should it echo it."""
    return text.replace(key, "***") if key else text


