"""The labeling page (pairs mode) and its JSON API, served by uvicorn on `label.host:label.port`.

The page: an annotator gives a name (or logs in, with `label.auth`), then sees one pair at a time: the
prompt (a conversation as "Role: text" turns), replies A and B (which of the file's replies is A is fixed
per annotator and item, `store.side_swapped`), buttons A / B / Tie / Both bad, optional 1-5 scores per
dimension and side, a comment, Skip and Back, and a progress line ("37 of 200, 5 skipped"). Keyboard:
1 or a = A, 2 or b = B, 3 or t = tie, 4 or x = both bad, s = skip, p or Left = back (not while typing).
Every text from the file or a user is shown in a read-only text box, never rendered as Markdown or HTML,
so a prompt with `<script>` shows as text.

The API (for scripts and `benchmarks/bench_label.py`), under the same login as the page when `label.auth`
is set (HTTP Basic; the annotator is the user):

    GET  /api/label/next?annotator=NAME   -> {"item": 3, "prompt": "...", "a": "...", "b": "...", "labeled": 2, ...}
    POST /api/label/submit {"annotator": NAME, "item": 3, "vote": "A", "scores": {...}, "comment": "..."}
         -> {"ok": true, "labeled": 3, "skipped": 0}; the vote is committed when the answer is sent

Each vote is written by `store.Store.submit` before the handler returns, to the page or the API alike.
"""

# No `from __future__ import annotations` here: Gradio and FastAPI read these handlers' annotations at run time.
import errno
import os
import socket
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from dpo_exp.config import UserError
from dpo_exp.label import items as items_mod
from dpo_exp.label.store import SKIP, VOTES, Store

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a labeling server

KEYS = {"1": "vote-a", "a": "vote-a", "2": "vote-b", "b": "vote-b", "3": "vote-tie", "t": "vote-tie",
        "4": "vote-both-bad", "x": "vote-both-bad", "s": "skip", "p": "back", "ArrowLeft": "back"}
# Keyboard shortcuts: a key clicks its button, unless the user is typing (name, comment).
KEYS_JS = """<script>
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  const t = e.target;
  const typing = t && (t.isContentEditable || ((t.tagName === 'TEXTAREA' || t.tagName === 'INPUT')
                 && !t.disabled && !t.readOnly && t.type !== 'radio' && t.type !== 'button'));
  if (typing) return;
  const id = (%s)[e.key];
  const button = id && document.getElementById(id);
  if (button && !button.disabled) { e.preventDefault(); button.click(); }
});
</script>""" % __import__("json").dumps(KEYS)

VOTE_BUTTONS = (("A is better [1]", "A", "vote-a"), ("B is better [2]", "B", "vote-b"),
                ("Tie [3]", "tie", "vote-tie"), ("Both bad [4]", "both_bad", "vote-both-bad"))


@dataclass
class Settings:
    overlap: int
    seed: int
    dimensions: list[str]
    title: str
    reserve_minutes: float = 60.0


def read_users(path: str) -> list[tuple[str, str]]:
    """`label.auth`: one `name:password` per line (blank lines and `#` comments ignored)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"Cannot read the users file label.auth={path} ({e.strerror or e}). Fix: write one "
                        "name:password per line there, or set label.auth=null to let annotators type a name.") from None
    users = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise UserError(f"{path}, line {number}: not `name:password`. Fix: write one user per line as "
                            "name:password (the name is the annotator's).")
        users.append((name.strip(), password))
    if not users:
        raise UserError(f"The users file label.auth={path} lists no users. Fix: add name:password lines.")
    return users


def check_port(host: str, port: int) -> None:
    """A UserError now, not a traceback after the page is built, when the port is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"Port {port} on {host} is in use (another labeling page, or another server). "
                                f"Fix: choose a free one, e.g. label.port={port + 1}, or stop what runs there.") from None
            raise UserError(f"Cannot listen on {host}:{port} ({e.strerror}). Fix: set label.host to an address "
                            "of this machine (127.0.0.1, or 0.0.0.0 for every network interface).") from None


class Labeler:
    """What the page and the API do, on one store (Gradio runs these in worker threads)."""

    def __init__(self, store: Store, settings: Settings):
        self.store, self.s = store, settings

    def view(self, annotator: str, item: int | None) -> dict:
        labeled, skipped = self.store.progress(annotator)
        out = {"annotator": annotator, "item": item, "labeled": labeled, "skipped": skipped,
               "total": self.store.n_items, "prompt": "", "a": "", "b": "", "vote": None, "scores": {},
               "comment": ""}
        line = f"{annotator}: {labeled} of {self.store.n_items}, {skipped} skipped"
        if item is None:
            out["line"] = line + ". Nothing left for you to label: thank you!"
            return out
        pair = self.store.pair(item)
        mine = self.store.label(item, annotator)
        swapped = mine.swapped if mine else False
        a, b = (pair["rejected"], pair["chosen"]) if swapped else (pair["chosen"], pair["rejected"])
        scores = {}
        for dim, sides in ((mine.scores or {}) if mine else {}).items():
            scores[dim] = {("A" if (side == "chosen") != swapped else "B"): v for side, v in sides.items()}
        vote = mine.vote if mine else None
        out.update(prompt=items_mod.transcript(pair["prompt"]), a=items_mod.reply(a), b=items_mod.reply(b), vote=vote,
                   scores=scores, comment=(mine.comment if mine else "") or "",
                   line=line + f" · pair {item + 1}" + (f" · your vote: {vote}" if vote else ""))
        return out

    def next(self, annotator: str) -> dict:
        return self.view(annotator, self.store.next_item(annotator, self.s.overlap, self.s.seed, self.s.reserve_minutes))

    def submit(self, annotator: str, item: int, vote: str, scores: dict | None = None, comment: str | None = None
               ) -> dict:
        self.store.submit(annotator, item, vote, scores, comment)
        return self.next(annotator)

    def back(self, annotator: str, item: int | None) -> dict:
        previous = self.store.previous(annotator, item)
        return self.view(annotator, item if previous is None else previous)


# --- the page ---------------------------------------------------------------------------------


def page(labeler: Labeler, auth: bool):
    import gradio as gr

    dims = labeler.s.dimensions
    with gr.Blocks(title=labeler.s.title) as blocks:
        state = gr.State({"annotator": None, "item": None})
        gr.Markdown("## Which reply is better?")
        with gr.Row(visible=not auth) as login:
            name = gr.Textbox(label="Your name", placeholder="e.g. alice", elem_id="name", scale=3)
            start = gr.Button("Start labeling", variant="primary", elem_id="start", scale=1)
        with gr.Column(visible=False) as work:
            progress = gr.Textbox(show_label=False, interactive=False, elem_id="progress", container=False)
            prompt = gr.Textbox(label="Prompt", interactive=False, lines=3, max_lines=30, elem_id="prompt")
            with gr.Row():
                reply_a = gr.Textbox(label="Reply A", interactive=False, lines=6, max_lines=40, elem_id="reply-a")
                reply_b = gr.Textbox(label="Reply B", interactive=False, lines=6, max_lines=40, elem_id="reply-b")
            with gr.Row():
                vote_buttons = [(gr.Button(text, variant="primary", elem_id=eid), vote)
                                for text, vote, eid in VOTE_BUTTONS]
            radios = []
            if dims:
                with gr.Accordion("Scores, 1-5 (optional)", open=True):
                    for dim in dims:
                        with gr.Row():
                            for side in ("A", "B"):
                                radios.append(gr.Radio(["1", "2", "3", "4", "5"], label=f"{dim}: reply {side}",
                                                       elem_id=f"score-{dim}-{side}"))
            comment = gr.Textbox(label="Comment (optional)", lines=1, elem_id="comment")
            with gr.Row():
                back = gr.Button("Back [p]", elem_id="back")
                skip = gr.Button("Skip [s]", elem_id="skip")
            gr.Markdown("Keys: **1**/**a** A, **2**/**b** B, **3**/**t** tie, **4**/**x** both bad, **s** skip, "
                        "**p**/**←** back.")

        fields = [state, login, work, progress, prompt, reply_a, reply_b, comment, *radios]

        def show(v: dict):
            shown = [{"annotator": v["annotator"], "item": v["item"]}, gr.update(visible=False),
                     gr.update(visible=True), v["line"], v["prompt"], v["a"], v["b"], v["comment"]]
            for dim in dims:
                for side in ("A", "B"):
                    value = v["scores"].get(dim, {}).get(side)
                    shown.append(None if value is None else str(value))
            return shown

        def begin(typed: str, st: dict, request: gr.Request):
            who = (getattr(request, "username", None) if auth else None) or (typed or "").strip()
            if not who:
                raise gr.Error("Type your name first: your labels are recorded under it.")
            return show(labeler.next(who))

        def act(vote: str, st: dict, comment_text: str, *scores):
            if not st.get("annotator") or st.get("item") is None:
                return show(labeler.next(st["annotator"])) if st.get("annotator") else [gr.update()] * len(fields)
            given = {}
            for i, dim in enumerate(dims):
                given[dim] = {"A": scores[2 * i], "B": scores[2 * i + 1]}
            return show(labeler.submit(st["annotator"], st["item"], vote, given,
                                       comment_text if vote != SKIP else None))

        def go_back(st: dict):
            if not st.get("annotator"):
                return [gr.update()] * len(fields)
            return show(labeler.back(st["annotator"], st.get("item")))

        common = {"outputs": fields, "show_progress": "hidden", "trigger_mode": "once", "concurrency_limit": 16}
        start.click(begin, [name, state], **common)
        name.submit(begin, [name, state], **common)
        if auth:
            blocks.load(begin, [name, state], **common)
        for button, vote in vote_buttons:
            button.click(partial(act, vote), [state, comment, *radios], **common)
        skip.click(partial(act, SKIP), [state, comment, *radios], **common)
        back.click(go_back, [state], **common)
    return blocks


# --- the server ---------------------------------------------------------------------------------


def server_app(labeler: Labeler, users: list[tuple[str, str]] | None, blocks=None):
    """The FastAPI app: the JSON API, and the page (`blocks`; default: the pairs page) mounted at /."""
    import secrets

    import gradio as gr
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPBasic, HTTPBasicCredentials
    from pydantic import BaseModel

    api = FastAPI(title="dpo_exp labeling")
    basic = HTTPBasic(auto_error=bool(users))
    passwords = dict(users or [])

    def who(given: str, credentials: HTTPBasicCredentials | None) -> str:
        if not users:
            if not given or not given.strip():
                raise HTTPException(422, "annotator is required")
            return given.strip()
        ok = credentials is not None and secrets.compare_digest(
            passwords.get(credentials.username, "\0").encode(), credentials.password.encode())
        if not ok:
            raise HTTPException(401, "wrong user or password", headers={"WWW-Authenticate": "Basic"})
        if given and given != credentials.username:
            raise HTTPException(403, "annotator must be the logged-in user")
        return credentials.username

    class Submission(BaseModel):
        annotator: str = ""
        item: int
        vote: str
        scores: dict | None = None
        comment: str | None = None

    @api.get("/api/label/next")
    def next_item(annotator: str = "", credentials: HTTPBasicCredentials | None = Depends(basic)):
        return labeler.next(who(annotator, credentials))

    @api.post("/api/label/submit")
    def submit(body: Submission, credentials: HTTPBasicCredentials | None = Depends(basic)):
        annotator = who(body.annotator, credentials)
        if body.vote not in VOTES and body.vote != SKIP:
            raise HTTPException(422, f"vote must be one of {', '.join(VOTES + (SKIP,))}")
        mine = labeler.store.label(body.item, annotator)
        if mine is None:
            raise HTTPException(409, f"pair {body.item} was not given to {annotator}: ask /api/label/next first")
        labeler.store.submit(annotator, body.item, body.vote, body.scores, body.comment)
        labeled, skipped = labeler.store.progress(annotator)
        return {"ok": True, "labeled": labeled, "skipped": skipped}

    return gr.mount_gradio_app(api, blocks or page(labeler, auth=bool(users)), path="/", auth=users or None,
                               auth_message="Log in with your annotator name.", head=KEYS_JS, ssr_mode=False,
                               footer_links=[])


def serve(app, host: str, port: int) -> None:
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)).run()
