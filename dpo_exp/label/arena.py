"""Arena mode (`label.mode=arena`): annotators type prompts, two contenders answer, the vote becomes a pair.

The Chatbot Arena pattern on your own models: the contenders (`label.arena.a`, `label.arena.b`) are the
base `model` (`base`) or LoRA adapters on it (a folder, a run dir, `runs:/<id>`, an MLflow run id,
resolved as `dpo_exp.adapters` does for eval and build). Both replies come from dpo_exp's own generator
(`dpo_exp.data.build.generate_replies`: the chat template, seeded sampling). Which contender is shown as A
is drawn at random per prompt and recorded; the contenders' names are shown only after the vote.

Each prompt becomes a new item in the label database (`store.Store.add_item`: prompt, model a's reply as
`chosen`, model b's as `rejected`, and which model wrote which), reserved for the annotator who typed it, and
the vote a label row like any other, so `label.action=export` turns arena votes into pairs (the majority's
preferred reply as chosen, with the models named) and also writes every prompt typed (`prompts.jsonl`),
kept for the next round of data (`python -m dpo_exp.build build.prompts=prompts.jsonl`).
"""

# No `from __future__ import annotations`: Gradio reads the handlers' annotations (gr.Request) at run time.
import random
import secrets
import threading
from pathlib import Path

from dpo_exp.cli import log
from dpo_exp.config import Config, UserError
from dpo_exp.label import items as items_mod
from dpo_exp.label.app import VOTE_BUTTONS
from dpo_exp.label.schema import LabelAppConfig
from dpo_exp.label.store import SKIP, Store

BASE = "base"


def digest(conf: LabelAppConfig) -> str:
    """What an arena database is tied to: the base model (contenders may change between sessions)."""
    return f"arena:{conf.model.name}"


class Contenders:
    """The base model with the contenders' adapters loaded side by side; `replies(prompt)` -> (a's, b's)."""

    def __init__(self, conf: LabelAppConfig, uri: str, download_dir: Path):
        import dataclasses

        from dpo_exp import adapters, models

        lc = conf.label.arena
        self.specs = {"a": str(lc.a), "b": str(lc.b)}
        self.settings = lc
        sources = {side: None if spec == BASE else adapters.resolve(side, spec, uri, download_dir / side,
                                                                     key=f"label.arena.{side}")
                   for side, spec in self.specs.items()}  # every spec checked before the model loads
        models.check_available(conf.model)
        load_conf = Config(model=conf.model, paths=conf.paths,
                           hardware=dataclasses.replace(conf.hardware, gradient_checkpointing=False))
        tokenizer, model, _ = models.load(load_conf, [])
        loaded = [s for s in sources.values() if s is not None]
        if loaded:
            from peft import PeftModel

            adapters.check_tokenizer(tokenizer, loaded)
            try:
                for side, source in sources.items():
                    if source is None:
                        continue
                    if not isinstance(model, PeftModel):
                        model = PeftModel.from_pretrained(model, str(source.path), adapter_name=side, is_trainable=False)
                    else:
                        model.load_adapter(str(source.path), adapter_name=side, is_trainable=False)
            except (RuntimeError, ValueError, KeyError) as e:
                raise UserError(f"label.arena.{side}: the adapter in {source.path} does not fit model "
                                f"'{conf.model.name}' ({type(e).__name__}: {str(e)[:300]}). Fix: pass the model "
                                "overrides the adapter was trained with (e.g. model=tiny for a +debug=smoke run)."
                                ) from None
        self.model, self.tokenizer, self.sources = model.eval(), tokenizer, sources
        self._lock = threading.Lock()
        log(f"arena: a = {self.specs['a']}, b = {self.specs['b']} on '{conf.model.name}', loaded on {model.device}")

    def reply(self, side: str, prompt: list[dict], seed: int) -> str:
        import contextlib

        from dpo_exp.data.build import generate_replies

        s = self.settings
        if self.sources[side] is None:
            context = self.model.disable_adapter() if hasattr(self.model, "disable_adapter") else contextlib.nullcontext()
        else:
            self.model.set_adapter(side)
            context = contextlib.nullcontext()
        with context:
            (text, _, _), = generate_replies(self.model, self.tokenizer, [prompt], [float(s.temperature)],
                                             [float(s.top_p)], [seed], int(s.max_new_tokens))
        return text

    def replies(self, prompt: list[dict]) -> tuple[str, str]:
        seed = secrets.randbelow(2**31)
        with self._lock:  # one generation at a time: the model is shared
            return self.reply("a", prompt, seed), self.reply("b", prompt, seed)


class Arena:
    """What the arena page does (Gradio runs it in worker threads)."""

    def __init__(self, store: Store, contenders: Contenders):
        self.store, self.contenders = store, contenders
        self._random = random.Random(secrets.randbits(64))

    def line(self, annotator: str) -> str:
        labeled, skipped = self.store.progress(annotator)
        return f"{annotator}: {labeled} votes, {skipped} skipped"

    def ask(self, annotator: str, text: str) -> dict:
        prompt = [{"role": "user", "content": text.strip()}]
        a, b = self.contenders.replies(prompt)
        swapped = self._random.random() < 0.5  # model b's reply shown as A
        row = {"prompt": prompt, "chosen": [{"role": "assistant", "content": a}],
               "rejected": [{"role": "assistant", "content": b}],
               "models": {"chosen": self.contenders.specs["a"], "rejected": self.contenders.specs["b"]}}
        item = self.store.add_item(row, annotator, swapped)
        shown_a, shown_b = (b, a) if swapped else (a, b)
        return {"item": item, "a": shown_a, "b": shown_b, "line": self.line(annotator) + f" · prompt {item + 1}"}

    def vote(self, annotator: str, item: int, vote: str) -> dict:
        label = self.store.submit(annotator, item, vote)
        names = self.contenders.specs
        shown = (names["b"], names["a"]) if label.swapped else (names["a"], names["b"])
        reveal = "" if vote == SKIP else f"A was {shown[0]}, B was {shown[1]}. Your vote: {vote}."
        return {"line": self.line(annotator), "reveal": reveal}


def arena_page(arena: Arena, auth: bool, title: str):
    import gradio as gr

    with gr.Blocks(title=title) as blocks:
        state = gr.State({"annotator": None, "item": None})
        gr.Markdown("## Arena: which reply is better?")
        with gr.Row(visible=not auth) as login:
            name = gr.Textbox(label="Your name", placeholder="e.g. alice", elem_id="name", scale=3)
            start = gr.Button("Start", variant="primary", elem_id="start", scale=1)
        with gr.Column(visible=False) as work:
            progress = gr.Textbox(show_label=False, interactive=False, elem_id="progress", container=False)
            prompt = gr.Textbox(label="Your prompt", lines=3, elem_id="arena-prompt")
            ask = gr.Button("Get two replies", variant="primary", elem_id="ask")
            with gr.Row():
                reply_a = gr.Textbox(label="Reply A", interactive=False, lines=6, max_lines=40, elem_id="reply-a")
                reply_b = gr.Textbox(label="Reply B", interactive=False, lines=6, max_lines=40, elem_id="reply-b")
            with gr.Row():
                buttons = [(gr.Button(text, elem_id=eid), vote) for text, vote, eid in VOTE_BUTTONS]
                skip = gr.Button("Skip [s]", elem_id="skip")
            reveal = gr.Textbox(label="The contenders", interactive=False, elem_id="reveal")
            gr.Markdown("The models' names are shown after your vote. Keys (outside the prompt box): **1**/**a** A, "
                        "**2**/**b** B, **3**/**t** tie, **4**/**x** both bad, **s** skip.")

        def begin(typed: str, request: gr.Request):
            who = (getattr(request, "username", None) if auth else None) or (typed or "").strip()
            if not who:
                raise gr.Error("Type your name first: your votes are recorded under it.")
            return {"annotator": who, "item": None}, gr.update(visible=False), gr.update(visible=True), arena.line(who)

        def on_ask(st: dict, text: str):
            if not st.get("annotator"):
                raise gr.Error("Start with your name first.")
            if not (text or "").strip():
                raise gr.Error("Type a prompt first.")
            v = arena.ask(st["annotator"], text)
            return {**st, "item": v["item"]}, v["line"], v["a"], v["b"], ""

        def on_vote(vote: str, st: dict):
            if st.get("item") is None:
                raise gr.Error("Get two replies first.")
            v = arena.vote(st["annotator"], st["item"], vote)
            return {**st, "item": None}, v["line"], v["reveal"]

        common = {"show_progress": "hidden", "trigger_mode": "once", "concurrency_limit": 16}
        start_outputs = [state, login, work, progress]
        start.click(begin, [name], start_outputs, **common)
        name.submit(begin, [name], start_outputs, **common)
        if auth:
            blocks.load(begin, [name], start_outputs, **common)
        ask.click(on_ask, [state, prompt], [state, progress, reply_a, reply_b, reveal], show_progress="minimal",
                  trigger_mode="once", concurrency_limit=16)
        from functools import partial

        for button, vote in buttons:
            button.click(partial(on_vote, vote), [state], [state, progress, reveal], **common)
        skip.click(partial(on_vote, SKIP), [state], [state, progress, reveal], **common)
    return blocks


def prompts_of(db: Store) -> list[dict]:
    """Every prompt typed in the arena, once each, in order: the collected prompts for the next round."""
    seen, out = set(), []
    for pair in db.pairs():
        text = items_mod.transcript(pair["prompt"])
        if text not in seen:
            seen.add(text)
            out.append({"prompt": pair["prompt"][-1]["content"] if len(pair["prompt"]) == 1 else pair["prompt"]})
    return out
