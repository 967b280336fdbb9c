"""The labeling page in a real headless browser (Debian's /usr/bin/chromium, driven by Playwright; no
browser download): two annotators at once with the keyboard and the buttons, a SIGKILLed server that
loses nothing and resumes each annotator, prompts with <script> and markup shown as text. Takes the
README's screenshots (label_pairs.png, label_agreement.png) into the test's tmp dir; `make screenshots`
(DPO_EXP_SCREENSHOTS=docs/img) rewrites docs/img's, so a plain test run leaves the checkout clean."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from dpo_exp.label import store
from label_helpers import Server, pairs_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)"),
    pytest.mark.browser,
]


def shots_dir(tmp_path: Path) -> Path:
    where = os.environ.get("DPO_EXP_SCREENSHOTS")
    return (REPO / where if where else tmp_path / "img")


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def value(page, elem_id: str) -> str:
    return page.input_value(f"#{elem_id} textarea, #{elem_id} input")


def wait_progress(page, text: str) -> str:
    page.wait_for_function(
        "t => { const e = document.querySelector('#progress textarea, #progress input'); return e && e.value.includes(t); }",
        arg=text, timeout=30_000)
    return value(page, "progress")


def log_in(browser, url: str, name: str):
    page = browser.new_context(viewport={"width": 1200, "height": 1000}).new_page()
    page.goto(url)
    page.fill("#name textarea, #name input", name)
    page.click("#start")
    wait_progress(page, f"{name}:")
    return page


def labeled(page, name: str) -> int:
    line = value(page, "progress")
    return int(line.split(": ", 1)[1].split(" of ")[0])


def vote(page, name: str, key: str | None = None, button: str | None = None) -> None:
    """One vote by keyboard (`key`) or by clicking (`button`), then wait until the page moved on."""
    before = labeled(page, name)
    if key:
        page.keyboard.press(key)
    else:
        page.click(f"#{button}")
    wait_progress(page, f"{name}: {before + 1} of ")


def test_two_annotators_kill_and_resume(tmp_path, browser):
    pairs = pairs_file(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'labels.db'}"
    args = ["data=file", f"data.path={pairs}", f"label.db={db_url}", "label.overlap=2", f"paths.outputs={tmp_path / 'out'}"]
    server = Server(tmp_path, args).start()
    try:
        alice, bob = log_in(browser, server.url, "alice"), log_in(browser, server.url, "bob")
        assert value(alice, "progress") == "alice: 0 of 6, 0 skipped · pair 1"

        # interleaved: keys 1 / 2 / 3 / 4 and the buttons, both at once on the same pairs
        vote(alice, "alice", key="1")
        vote(bob, "bob", key="2")
        # pair 2 holds <script> and markup: shown as text, not run, not rendered
        for page in (alice, bob):
            assert value(page, "prompt") == "<script>window.pwned = 1</script> **bold** <b>html</b>"
            assert "<img src=x onerror=" in value(page, "reply-a") + value(page, "reply-b")
            assert page.evaluate("window.pwned") is None
            assert page.locator("b", has_text="html").count() == 0 and page.locator("img[src=x]").count() == 0
        alice.click("#score-helpfulness-A label:has-text('4')")
        alice.click("#score-helpfulness-B label:has-text('2')")
        alice.fill("#comment textarea", "A is safer")
        vote(alice, "alice", button="vote-a")
        vote(bob, "bob", key="x")  # both bad
        vote(alice, "alice", key="t")  # tie
        # alice now looks at pair 4 (the multi-turn one): the README's screenshot
        assert value(alice, "prompt").startswith("System: Be brief.\n\nUser: Capital of France?")
        alice.click("#score-accuracy-A label:has-text('5')")
        shots = shots_dir(tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        alice.screenshot(path=str(shots / "label_pairs.png"), full_page=True)
        assert (shots / "label_pairs.png").stat().st_size > 10_000
        alice.keyboard.press("s")  # skip
        wait_progress(alice, "alice: 3 of 6, 1 skipped · pair 5")
        alice_next = 4
    finally:
        server.kill()  # SIGKILL: no chance to flush or clean up anything

    # every submitted vote survived, with the sides each annotator saw
    db = store.Store.connect(db_url)
    votes = {(r.annotator, r.item): r for r in db.labels()}
    assert {k: r.vote for k, r in votes.items() if r.vote} == {
        ("alice", 0): "A", ("bob", 0): "B", ("alice", 1): "A", ("bob", 1): "both_bad", ("alice", 2): "tie",
        ("alice", 3): "skip"}
    assert votes[("alice", 1)].comment == "A is safer" and votes[("alice", 1)].scores["helpfulness"] in (
        {"chosen": 4, "rejected": 2}, {"rejected": 4, "chosen": 2})
    db.close()

    server = Server(tmp_path, args, port=server.port).start()  # the same command again
    try:
        for page, name, expect in ((alice, "alice", f"alice: 3 of 6, 1 skipped · pair {alice_next + 1}"),
                                   (bob, "bob", "bob: 2 of 6, 0 skipped · pair 3")):
            page.reload()
            page.fill("#name textarea, #name input", name)
            page.keyboard.press("Enter")
            assert wait_progress(page, f"{name}:") == expect  # resumed at the next unlabeled pair
        # back: bob's last vote (both bad on pair 2), changed to B
        bob.keyboard.press("p")
        wait_progress(bob, "your vote: both_bad")
        bob.keyboard.press("2")
        wait_progress(bob, "bob: 2 of 6, 0 skipped · pair 3")
        for _ in range(4):
            vote(bob, "bob", key="1")
        vote(alice, "alice", key="1")
        vote(alice, "alice", key="2")
        wait_progress(alice, "Nothing left for you")
    finally:
        server.kill()
    db = store.Store.connect(db_url)
    assert len(list(db.votes())) == 11 and db.label(1, "bob").vote == "B"  # alice skipped one
    db.close()


def test_agreement_report_screenshot(tmp_path, browser):
    """The export's agreement report (Markdown), rendered as the README shows it."""
    from label_fixtures import export_with_known_agreement

    report = export_with_known_agreement(tmp_path)
    html = report["html"]
    page = browser.new_page(viewport={"width": 900, "height": 700})
    page.set_content(html)
    shots = shots_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "label_agreement.png"), full_page=True)
    assert "Cohen's kappa (2 annotators)\t0.583" in page.inner_text("body")
    json.dumps(report["json"])


def test_login_from_a_users_file(tmp_path, browser):
    """label.auth: the page asks for a login, the user is the annotator (no name box); the API wants the same."""
    import base64
    import urllib.error
    import urllib.request

    users = tmp_path / "users.txt"
    users.write_text("# the team\ncarol:open sesame\ndave:hunter2\n")
    server = Server(tmp_path, ["data=file", f"data.path={pairs_file(tmp_path)}", f"label.auth={users}",
                               f"label.db=sqlite:///{tmp_path / 'labels.db'}", f"paths.outputs={tmp_path / 'out'}"]).start()
    try:
        page = browser.new_page()
        page.goto(server.url)
        page.fill("input[type=text]", "carol")
        page.fill("input[type=password]", "open sesame")
        page.keyboard.press("Enter")
        assert wait_progress(page, "carol:") == "carol: 0 of 6, 0 skipped · pair 1"
        assert not page.locator("#name").is_visible()
        page.keyboard.press("1")
        wait_progress(page, "carol: 1 of 6")

        def call(path: str, who: str | None, password: str = "hunter2") -> int:
            request = urllib.request.Request(server.url + path)
            if who:
                request.add_header("Authorization", "Basic " + base64.b64encode(f"{who}:{password}".encode()).decode())
            try:
                with urllib.request.urlopen(request, timeout=30) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert call("/api/label/next", None) == 401
        assert call("/api/label/next", "dave", "wrong") == 401
        assert call("/api/label/next?annotator=carol", "dave") == 403  # nobody labels under another's name
        assert call("/api/label/next", "dave") == 200
    finally:
        server.kill()
    db = store.Store.connect(f"sqlite:///{tmp_path / 'labels.db'}")
    assert [(r.annotator, r.vote) for r in db.votes()] == [("carol", "A")]
    db.close()


def tiny_adapter(folder: Path) -> Path:
    """A LoRA adapter for model=tiny in arena mode (random, not zero, weights: it changes the replies)."""
    from peft import LoraConfig, get_peft_model

    from dpo_exp.config import TinyModel
    from dpo_exp.models import build_tiny

    _, model = build_tiny(TinyModel(), [], seed=0)  # arena mode loads model=tiny with no corpus, as here
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(str(folder))
    return folder


@pytest.mark.slow  # ~50 s on 2 busy cores: a model-loading server and an export
def test_arena_vote_reveals_the_models_and_exports_a_pair(tmp_path, browser):
    from conftest import run_cli

    adapter = tiny_adapter(tmp_path / "my_adapter")
    db_url = f"sqlite:///{tmp_path / 'arena.db'}"
    common = ["label.mode=arena", "model=tiny", "hardware=cpu", f"label.arena.b={adapter}", f"label.db={db_url}",
              "label.arena.max_new_tokens=12", f"paths.outputs={tmp_path / 'out'}"]
    server = Server(tmp_path, common).start()
    try:
        page = log_in(browser, server.url, "erin")
        assert value(page, "progress") == "erin: 0 votes, 0 skipped"
        for i, text in enumerate(["Tell me about <b>cats</b>.", "Why is the sky blue?"]):
            page.fill("#arena-prompt textarea", text)
            page.click("#ask")
            wait_progress(page, f"prompt {i + 1}")
            assert value(page, "reveal") == ""  # no names before the vote
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.keyboard.press("1" if i == 0 else "2")
            page.wait_for_function("() => document.querySelector('#reveal textarea').value.startsWith('A was')")
            reveal = value(page, "reveal")
            assert {"base", str(adapter)} == {reveal.split("A was ")[1].split(", B was")[0],
                                             reveal.split("B was ")[1].split(". Your vote")[0]}
        wait_progress(page, "erin: 2 votes")
    finally:
        server.kill()

    out = run_cli([*common[:-1], "label.action=export", "label.out=arena_pairs.jsonl",
                   f"paths.outputs={tmp_path / 'out'}"], tmp_path, module="dpo_exp.label")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "arena_pairs.jsonl").read_text().splitlines()]
    (run_dir,) = (tmp_path / "out").glob("dpo_exp-labels/export_*")
    prompts = [json.loads(line)["prompt"] for line in (run_dir / "prompts.jsonl").read_text().splitlines()]
    assert prompts == ["Tell me about <b>cats</b>.", "Why is the sky blue?"]  # kept for the next round
    db = store.Store.connect(db_url)
    for r in rows:  # the pair's chosen is the reply of the model voted for
        vote = db.label(r["label_item"], "erin")
        chosen_model = {"chosen": "base", "rejected": str(adapter)}[vote.preferred]
        assert r["models"]["chosen"] == chosen_model and r["annotators"] == {"erin": "chosen"}
    assert len(rows) + json.loads((run_dir / "agreement.json").read_text())["counts"]["identical_replies"] == 2
    db.close()
