"""The label database: one row per item x annotator, behind any SQLAlchemy URL.

Tables:

- `meta`: what the database was made for: the digest of the pairs (`items.digest`), their source, the
  number of items, the app version that created it. Opening it for other pairs is a UserError.
- `items`: the pairs themselves (canonical JSON) and their order-free key (`items.pair_key`), so the
  export and `judge=human` read the database alone.
- `labels`: one row per (item, annotator), unique. Created when the item is first shown to that annotator
  (a *reservation*: `vote` null, `swapped` = whether the file's `rejected` was shown as A), completed by the
  vote: `A`, `B`, `tie`, `both_bad` or `skip`, the same vote in the file's terms (`preferred`: chosen,
  rejected, tie, both_bad), the optional scores (`{"helpfulness": {"chosen": 5, "rejected": 3}}`), a comment,
  `shown_at`, `labeled_at` (unix seconds) and `app_version`. Voting again (after *back*) updates the row.

Who labels what: an annotator is shown first any item reserved for them and not finished (so a restart, or
a closed tab, resumes exactly there), else the first item in file order they have no row for and that
fewer than `overlap` annotators hold (voted, or reserved less than `reserve_minutes` ago: an annotator who
left does not block a pair for good; a skip frees the slot for someone else). Reservations
are made under a lock, so one server never gives an item to more than `overlap` annotators. (Several
servers on one PostgreSQL database could, rarely, give one item an extra annotator.)

Durability: every write is its own transaction, committed before the call returns; SQLite runs in WAL
mode with synchronous=FULL, so a server killed with SIGKILL loses no submitted label.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dpo_exp.config import UserError
from dpo_exp.label.items import Items, pair_key

SCHEMA_VERSION = "1"
VOTES = ("A", "B", "tie", "both_bad")
SKIP = "skip"
PREFERRED = ("chosen", "rejected", "tie", "both_bad")


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"dpo_exp {version('dpo_exp')}"
    except PackageNotFoundError:
        return "dpo_exp (source)"


def url_of(db: str | None, default_file: Path) -> str:
    """A SQLAlchemy URL from `label.db`: a URL as given, a path as a SQLite file, null as `default_file`."""
    if db and "://" in db:
        return db
    path = Path(db).expanduser() if db else default_file
    return f"sqlite:///{path.resolve()}"


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by `connect`
        return url


def side_swapped(seed: int, annotator: str, item: int) -> bool:
    """Whether `annotator` sees the file's rejected reply as A on `item`: fixed by (seed, name, item)."""
    return hashlib.sha256(f"{seed}\0{annotator}\0{item}".encode()).digest()[0] & 1 == 1


def preferred(vote: str, swapped: bool) -> str | None:
    """A vote on the sides shown (A, B, tie, both_bad, skip) in the file's terms (chosen, rejected, ...)."""
    if vote in ("tie", "both_bad"):
        return vote
    if vote in ("A", "B"):
        return "chosen" if (vote == "A") != swapped else "rejected"
    return None


@dataclass
class Label:
    item: int
    annotator: str
    swapped: bool
    vote: str | None
    preferred: str | None
    scores: dict | None
    comment: str | None
    shown_at: float
    labeled_at: float | None
    app_version: str


class Store:
    """A label database, open for one set of pairs (`open`) or as it is (`connect`, for reading)."""

    def __init__(self, engine, meta: dict[str, str]):
        self.engine, self.meta = engine, meta
        self._reserve_lock = threading.Lock()
        self.n_items = int(meta["n_items"])

    # --- opening --------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, items: Items) -> "Store":
        """The database at `url` for these pairs: created (tables, items, meta) when new; refused with a
        UserError when it was made for other pairs."""
        engine = _engine(url)
        tables = _tables()
        tables.metadata.create_all(engine)
        with engine.begin() as c:
            meta = dict(c.execute(tables.meta.select()).fetchall())
            if not meta:
                meta = {"digest": items.digest, "source": items.source, "n_items": str(len(items)),
                        "created": str(time.time()), "app_version": app_version(), "schema": SCHEMA_VERSION}
                c.execute(tables.meta.insert(), [{"key": k, "value": v} for k, v in meta.items()])
                if items.rows:  # (an arena database starts empty: `add_item`)
                    c.execute(tables.items.insert(), [_item_values(i, r) for i, r in enumerate(items.rows)])
        if meta["digest"] != items.digest:
            engine.dispose()
            raise UserError(
                f"The label database {shown(url)} was made for other pairs: {meta['source']} ({meta['n_items']} "
                f"pairs, digest {meta['digest'][:12]}), not {items.source} ({len(items)} pairs, digest "
                f"{items.digest[:12]}); its labels would land on the wrong pairs. Fix: point label.db at a new "
                f"database for this file (e.g. label.db=sqlite:///{Path(items.source).name}.labels.db), or use "
                "the unchanged file the labels were made for.")
        return cls(engine, meta)

    @classmethod
    def connect(cls, url: str) -> "Store":
        """An existing database, whatever pairs it holds (export, judge=human)."""
        from sqlalchemy import inspect

        engine = _engine(url, create=False)
        if not inspect(engine).has_table("meta"):
            engine.dispose()
            raise UserError(f"{shown(url)} is not a dpo_exp label database (it has no `meta` table). Fix: point "
                            "label.db (or judge.db) at the database the labeling page wrote.")
        with engine.connect() as c:
            meta = dict(c.execute(_tables().meta.select()).fetchall())
        return cls(engine, meta)

    def close(self) -> None:
        self.engine.dispose()

    # --- reading --------------------------------------------------------------------------------

    def pair(self, item: int) -> dict:
        t = _tables()
        with self.engine.connect() as c:
            row = c.execute(t.items.select().where(t.items.c.idx == item)).fetchone()
        return json.loads(row.row)

    def pairs(self) -> list[dict]:
        t = _tables()
        with self.engine.connect() as c:
            return [json.loads(r.row) for r in c.execute(t.items.select().order_by(t.items.c.idx))]

    def item_keys(self) -> dict[str, int]:
        t = _tables()
        with self.engine.connect() as c:
            return {r.key: r.idx for r in c.execute(t.items.select())}

    def label(self, item: int, annotator: str) -> Label | None:
        t = _tables().labels
        with self.engine.connect() as c:
            row = c.execute(t.select().where(t.c.item == item, t.c.annotator == annotator)).fetchone()
        return _label(row) if row else None

    def labels(self, annotator: str | None = None) -> list[Label]:
        """Every row (in the order they were created), or one annotator's."""
        t = _tables().labels
        query = t.select().order_by(t.c.id)
        if annotator is not None:
            query = query.where(t.c.annotator == annotator)
        with self.engine.connect() as c:
            return [_label(r) for r in c.execute(query)]

    def votes(self) -> Iterator[Label]:
        """The completed votes (skips and open reservations left out)."""
        return (lab for lab in self.labels() if lab.vote in VOTES)

    def progress(self, annotator: str) -> tuple[int, int]:
        """(labeled, skipped) by `annotator`."""
        mine = self.labels(annotator)
        return sum(lab.vote in VOTES for lab in mine), sum(lab.vote == SKIP for lab in mine)

    # --- writing: one committed transaction each --------------------------------------------------

    def next_item(self, annotator: str, overlap: int, seed: int, reserve_minutes: float = 60.0) -> int | None:
        """The item `annotator` labels next (reserved for them), or None when none is left for them. Another
        annotator's reservation older than `reserve_minutes` (shown, never voted: they left) no longer holds a slot."""
        from sqlalchemy import and_, func, not_, or_, select

        t = _tables()
        lab = t.labels
        with self._reserve_lock, self.engine.begin() as c:
            open_reservation = c.execute(select(lab.c.item).where(lab.c.annotator == annotator, lab.c.vote.is_(None))
                                   .order_by(lab.c.id).limit(1)).scalar()
            if open_reservation is not None:
                return open_reservation
            mine = select(lab.c.item).where(lab.c.annotator == annotator)
            stale = time.time() - 60 * reserve_minutes
            holders = (select(func.count()).select_from(lab)
                       .where(and_(lab.c.item == t.items.c.idx,
                                   or_(and_(lab.c.vote.is_(None), lab.c.shown_at >= stale), lab.c.vote != SKIP)))
                       .scalar_subquery())
            item = c.execute(select(t.items.c.idx).where(not_(t.items.c.idx.in_(mine)), holders < overlap)
                             .order_by(t.items.c.idx).limit(1)).scalar()
            if item is None:
                return None
            c.execute(lab.insert().values(item=item, annotator=annotator, swapped=side_swapped(seed, annotator, item),
                                          shown_at=time.time(), app_version=app_version()))
            return item

    def submit(self, annotator: str, item: int, vote: str, scores: dict | None = None,
               comment: str | None = None) -> Label:
        """Record `annotator`'s vote on `item` (on the sides they were shown); committed when it returns.
        `scores`: {dimension: {"A": 1-5, "B": 1-5}} on the sides shown (either may be missing)."""
        if vote not in VOTES and vote != SKIP:
            raise ValueError(f"vote {vote!r}: expected one of {VOTES + (SKIP,)}")
        t = _tables().labels
        with self.engine.begin() as c:
            row = c.execute(t.select().where(t.c.item == item, t.c.annotator == annotator)).fetchone()
            if row is None:
                raise ValueError(f"item {item} was never shown to {annotator!r}")
            file_scores = _file_scores(scores, row.swapped)
            values = {"vote": vote, "preferred": preferred(vote, row.swapped),
                      "scores": json.dumps(file_scores) if file_scores else None,
                      "comment": (comment or "").strip() or None, "labeled_at": time.time(),
                      "app_version": app_version()}
            c.execute(t.update().where(t.c.id == row.id).values(**values))
        return self.label(item, annotator)

    def add_item(self, row: dict, annotator: str, swapped: bool) -> int:
        """Arena mode: a new pair (prompt, chosen = model a's reply, rejected = model b's, plus `models`),
        reserved at once for `annotator`, who sees model a's reply as B when `swapped`. Returns its index."""
        from sqlalchemy import func, select

        t = _tables()
        with self._reserve_lock, self.engine.begin() as c:
            last = c.execute(select(func.max(t.items.c.idx))).scalar()
            item = 0 if last is None else last + 1
            c.execute(t.items.insert().values(**_item_values(item, row)))
            c.execute(t.labels.insert().values(item=item, annotator=annotator, swapped=swapped, shown_at=time.time(),
                                               app_version=app_version()))
            self.n_items = item + 1
            c.execute(t.meta.update().where(t.meta.c.key == "n_items").values(value=str(self.n_items)))
        return item

    def previous(self, annotator: str, item: int | None) -> int | None:
        """The item `annotator` finished (voted or skipped) just before `item` (None: their last one)."""
        mine = self.labels(annotator)
        ids = [lab.item for lab in mine]
        before = mine[:ids.index(item)] if item in ids else mine
        done = [lab.item for lab in before if lab.vote is not None]
        return done[-1] if done else None


def _item_values(idx: int, r: dict) -> dict:
    key = pair_key(r["prompt"], r["chosen"][-1]["content"], r["rejected"][-1]["content"])
    return {"idx": idx, "key": key, "row": json.dumps({k: r[k] for k in ("prompt", "chosen", "rejected", "models")
                                                        if k in r})}


def _file_scores(scores: dict | None, swapped: bool) -> dict:
    out = {}
    for dim, sides in (scores or {}).items():
        kept = {}
        for side, value in (sides or {}).items():
            if value in (None, ""):
                continue
            file_side = "chosen" if (side == "A") != swapped else "rejected"
            kept[file_side] = int(value)
        if kept:
            out[dim] = kept
    return out


def _label(r) -> Label:
    return Label(item=r.item, annotator=r.annotator, swapped=bool(r.swapped), vote=r.vote, preferred=r.preferred,
                 scores=json.loads(r.scores) if r.scores else None, comment=r.comment, shown_at=r.shown_at,
                 labeled_at=r.labeled_at, app_version=r.app_version)


# --- the engine and the tables ------------------------------------------------------------------

_TABLES: Any = None


def _tables():
    global _TABLES
    if _TABLES is None:
        from types import SimpleNamespace

        from sqlalchemy import (Boolean, Column, Float, Integer, MetaData, String, Table, Text, UniqueConstraint)

        md = MetaData()
        _TABLES = SimpleNamespace(
            metadata=md,
            meta=Table("meta", md, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False)),
            items=Table("items", md, Column("idx", Integer, primary_key=True, autoincrement=False),
                        Column("key", String(64), nullable=False, index=True), Column("row", Text, nullable=False)),
            labels=Table("labels", md,
                         Column("id", Integer, primary_key=True, autoincrement=True),
                         Column("item", Integer, nullable=False, index=True),
                         Column("annotator", String(200), nullable=False, index=True),
                         Column("swapped", Boolean, nullable=False),
                         Column("vote", String(16)), Column("preferred", String(16)),
                         Column("scores", Text), Column("comment", Text),
                         Column("shown_at", Float, nullable=False), Column("labeled_at", Float),
                         Column("app_version", String(64), nullable=False),
                         UniqueConstraint("item", "annotator", name="one_label_per_item_and_annotator")),
        )
    return _TABLES


def _engine(url: str, create: bool = True):
    """An engine for `url`, checked by connecting: an unusable URL or server is a UserError."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"label.db={url!r} is not a database URL. Fix: use a path (labels.db), "
                        "sqlite:///labels.db, or postgresql+psycopg://user:password@host/dbname.") from None
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        file = Path(parsed.database)
        if not create and not file.is_file():
            from dpo_exp.label.items import not_found

            raise not_found(shown(url))
        file.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, **({"connect_args": {"timeout": 30, "check_same_thread": False}} if sqlite else
                                       {"pool_pre_ping": True}))
    except (NoSuchModuleError, ImportError) as e:
        raise UserError(f"label.db={shown(url)}: no driver for it ({e}). Fix: for PostgreSQL use "
                        "postgresql+psycopg://... (pip install 'dpo_exp[label]' installs psycopg).") from None
    if sqlite:
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer: several annotators at once
            cur.execute("PRAGMA synchronous=FULL")  # a committed vote is on disk before the page hears back
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    try:
        with engine.connect():
            pass
    except OperationalError as e:
        engine.dispose()
        raise UserError(f"Cannot open the label database {shown(url)}: {str(e.orig).strip().splitlines()[0]}. Fix: "
                        "check label.db (for PostgreSQL: the server runs, the database exists, the user may "
                        "connect).") from None
    return engine
