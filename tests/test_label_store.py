"""The label database (dpo_exp.label.store) on SQLite and on a real PostgreSQL server: one row per item x
annotator, overlap, resume, the digest tie, and what the page's handlers show."""

from __future__ import annotations

import threading

import pytest

from dpo_exp.config import DataConfig, UserError
from dpo_exp.label import items, store
from dpo_exp.label.app import Labeler, Settings
from label_helpers import PAIRS, pairs_file, postgres_url, write_pairs  # noqa: F401 - a fixture


def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'labels.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    base = request.getfixturevalue("postgres_url")
    # A fresh database per test on the module's server.
    from sqlalchemy import create_engine, text

    name = f"t{abs(hash(str(tmp_path))) % 10**8}"
    engine = create_engine(base.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


def load(tmp_path):
    return items.load(DataConfig(path=str(pairs_file(tmp_path))))


def test_overlap_gives_each_item_to_k_annotators_and_records_the_sides(tmp_path, url):
    pairs = load(tmp_path)
    db = store.Store.open(url, pairs)
    n = len(pairs)
    seen: dict[str, list[int]] = {"ann": [], "bob": [], "cy": []}
    for _ in range(n):
        for who in seen:
            item = db.next_item(who, overlap=2, seed=0)
            if item is not None:
                seen[who].append(item)
                db.submit(who, item, "A", {"helpfulness": {"A": 5, "B": "2"}}, comment=f"{who} was here")
    holders = {i: sum(i in got for got in seen.values()) for i in range(n)}
    assert holders == {i: 2 for i in range(n)}  # every pair exactly twice, never three times
    rows = db.labels()
    assert len(rows) == 2 * n and all(r.vote == "A" and r.labeled_at >= r.shown_at for r in rows)
    for r in rows:  # the vote in the file's terms follows the sides that annotator was shown
        assert r.swapped == store.side_swapped(0, r.annotator, r.item)
        assert r.preferred == ("rejected" if r.swapped else "chosen")
        assert r.scores == {"helpfulness": {r.preferred: 5, ("chosen" if r.swapped else "rejected"): 2}}
        assert r.app_version.startswith("dpo_exp")
    assert {r.swapped for r in rows} == {True, False}  # sides really are shuffled
    db.close()


def test_reopening_resumes_each_annotator_and_another_file_is_refused(tmp_path, url):
    pairs = load(tmp_path)
    db = store.Store.open(url, pairs)
    first = db.next_item("ann", 1, 0)
    db.submit("ann", first, "B")
    reserved = db.next_item("ann", 1, 0)  # shown, not yet voted: the page was closed, or the server killed
    db.close()

    db = store.Store.open(url, pairs)  # a restart
    assert db.next_item("ann", 1, 0) == reserved  # back where they stopped
    assert db.label(first, "ann").vote == "B"
    db.close()

    other = items.load(DataConfig(path=str(write_pairs(tmp_path / "other.jsonl", PAIRS[:2]))))
    with pytest.raises(UserError, match=r"was made for other pairs: .*pairs.jsonl \(6 pairs.*not .*other.jsonl "
                                        r"\(2 pairs.*Fix: point label.db at a new database"):
        store.Store.open(url, other)


def test_a_reservation_left_too_long_goes_to_someone_else(tmp_path):
    db = store.Store.open(sqlite_url(tmp_path), load(tmp_path))
    assert db.next_item("ann", overlap=1, seed=0) == 0  # shown to ann, who walks away
    assert db.next_item("bob", overlap=1, seed=0) == 1  # held by ann's fresh reservation
    db.submit("bob", 1, "A")
    assert db.next_item("bob", overlap=1, seed=0, reserve_minutes=1e-9) == 0  # ann's reservation has gone stale
    assert db.next_item("ann", overlap=1, seed=0) == 0  # ann, back, still finishes what she was shown
    db.close()


def test_concurrent_submissions_are_all_kept(tmp_path, url):
    """Four annotators at once, each in its own thread, through the same handlers the page uses."""
    pairs = load(tmp_path)
    db = store.Store.open(url, pairs)
    labeler = Labeler(db, Settings(overlap=4, seed=0, dimensions=[], title="t"))
    errors = []

    def annotate(who: str) -> None:
        try:
            view = labeler.next(who)
            while view["item"] is not None:
                view = labeler.submit(who, view["item"], "tie" if view["item"] % 2 else "A")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=annotate, args=(f"a{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list(db.votes())) == 4 * len(pairs)
    db.close()


def test_page_view_back_and_skip(tmp_path):
    db = store.Store.open(sqlite_url(tmp_path), load(tmp_path))
    lab = Labeler(db, Settings(overlap=1, seed=3, dimensions=["helpfulness"], title="t"))
    v = lab.next("ann")
    assert v["line"] == "ann: 0 of 6, 0 skipped · pair 1"
    v = lab.submit("ann", v["item"], "B", {"helpfulness": {"A": "4", "B": None}}, "meh")
    v = lab.submit("ann", v["item"], "skip")
    assert v["line"].startswith("ann: 1 of 6, 1 skipped · pair 3")
    back = lab.back("ann", v["item"])  # the skipped one
    assert back["item"] == 1 and back["vote"] == "skip"
    back = lab.back("ann", back["item"])  # the first, with its vote, score and comment as given
    assert back["item"] == 0 and back["vote"] == "B" and back["scores"] == {"helpfulness": {"A": 4}}
    assert back["comment"] == "meh" and "your vote: B" in back["line"]
    v = lab.submit("ann", 0, "A")  # a changed mind: the same row, updated, then on to where they were
    assert db.label(0, "ann").vote == "A" and v["item"] == 2 and len(db.labels("ann")) == 3
    # multi-turn prompts read as a conversation
    assert lab.view("ann", 3)["prompt"] == ("System: Be brief.\n\nUser: Capital of France?\n\nAssistant: Paris.\n\n"
                                            "User: And of Italy?")
    db.close()
