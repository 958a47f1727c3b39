"""Engines and schema: an engine for a store's URL, the store's schema at the Alembic head.

SQLite connections get synchronous NORMAL, a 30 s busy timeout and foreign keys on every
connect; :func:`enable_wal` switches a store's file to WAL journaling once, when it is opened
for writes (a persistent change to the file, so never on a read-only open:
:mod:`vlabench.store.opening` decides who may change a file). SQLAlchemy (not the sqlite3
module) emits BEGIN, so that writes and migrations can take the write lock up front with
``BEGIN IMMEDIATE`` and never fail half-way on a lock upgrade when several processes write
to one file. Should a lock still time out (or PostgreSQL report a serialisation failure or
deadlock), :func:`retrying` repeats the whole transaction.
Any other SQLAlchemy URL works too; PostgreSQL is tested (``postgresql+psycopg://...``).
"""

from __future__ import annotations

import functools
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config


DEFAULT_URL = "sqlite:///benchmarks.db"
ENV_VAR = "VLABENCH_DB"
BUSY_TIMEOUT_MS = 30_000
IMMEDIATE = "vlabench_begin_immediate"
"""Execution option: on SQLite, start the transaction with ``BEGIN IMMEDIATE``."""
MIGRATIONS = Path(__file__).parent / "migrations"
RETRY_S = 120.0
"""How long a write keeps retrying a transient conflict before giving up."""
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock

def is_transient(exc: BaseException) -> bool:
    """A lock timeout or a conflict that retrying the whole transaction resolves."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        message = str(orig).lower()
        return "locked" in message or "busy" in message
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def retrying[**P, T](fn: Callable[P, T]) -> Callable[P, T]:
    """Run ``fn`` (one whole transaction) again, with jittered back-off, on a transient error."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        deadline = time.monotonic() + RETRY_S
        delay = 0.01
        while True:
            try:
                return fn(*args, **kwargs)
            except DBAPIError as exc:
                if not is_transient(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)

    return wrapper


def default_url() -> str:
    """``$VLABENCH_DB`` if set, else ``sqlite:///benchmarks.db`` (relative to the cwd)."""
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def make_store_engine(url: str | URL, *, read_only: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets its pragmas and SQLAlchemy-driven transactions.

    Connecting changes nothing in the database: no file or directory is created here beyond
    what the driver does (SQLite creates a missing file unless the URL says ``mode=ro``).
    ``read_only``: PostgreSQL sessions are read-only; for SQLite the URL itself says so.
    """
    sa_url = make_url(url)
    if sa_url.get_backend_name() != "sqlite":
        engine = create_engine(sa_url, pool_pre_ping=True)
        if read_only and sa_url.get_backend_name() == "postgresql":

            @event.listens_for(engine, "connect")
            def _read_only(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                cursor.close()
                dbapi_connection.commit()

        return engine
    engine = create_engine(sa_url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL + NORMAL: a commit survives any crash of the process (kill -9 included); only
        # an OS crash or power loss may drop the last commits. FULL fsyncs every episode.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def enable_wal(engine: Engine) -> None:
    """Switch a SQLite store to WAL journaling (persistent: done once per writing open)."""
    if engine.dialect.name != "sqlite":
        return
    connection = engine.raw_connection()  # autocommit (isolation_level None): no BEGIN
    try:
        cursor = connection.cursor()
        _enable_wal(cursor)
        cursor.close()
    finally:
        connection.close()


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL, retrying: processes converting one fresh file at once can deadlock,
    and SQLite then answers "database is locked" at once instead of waiting."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for the package's migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _current_heads(engine: Engine) -> set[str]:
    """The store's ``alembic_version`` rows (empty without the table); plain SQL, so that
    opening a store at head never imports alembic (~0.5 s)."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}


_REVISION_LINE = re.compile(r"^(down_)?revision\b[^=\n]*=(.*)$", re.MULTILINE)


@functools.cache
def _script_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """Every migration's revision, and those some ``down_revision`` names: read from the
    scripts' text once per process, so that opening a store never imports alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            (parents if down else revisions).update(re.findall(r"[\"']([^\"']+)[\"']", value))
    return frozenset(revisions), frozenset(parents)


def head_revisions() -> frozenset[str]:
    """The migrations' head revision(s): those no script's ``down_revision`` names."""
    revisions, parents = _script_revisions()
    return revisions - parents


def known_revisions() -> frozenset[str]:
    """Every revision of the migrations (a store at any of them is a vlabench store)."""
    return _script_revisions()[0]


def current_revisions(engine: Engine) -> frozenset[str]:
    """The store's revision(s) in ``alembic_version``; empty when there is none (read only)."""
    return frozenset(_current_heads(engine))


def migrate(engine: Engine) -> bool:
    """Upgrade the schema to head unless it is there already; True when it upgraded.

    Concurrent first opens are safe: on SQLite the upgrade holds the write lock
    (``BEGIN IMMEDIATE``) and re-reads the version inside it; elsewhere a loser of the
    race waits for the winner's version to reach head.
    """
    heads = set(head_revisions())
    current = _current_heads(engine)
    if current == heads:
        return False
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    unknown = current - {rev.revision for rev in script.walk_revisions()}
    if unknown:
        raise RuntimeError(
            f"the store {engine.url.render_as_string(hide_password=True)} has schema revision "
            f"{', '.join(sorted(unknown))}, unknown to this vlabench (expected "
            f"{', '.join(sorted(heads))}); it was written by a newer vlabench: upgrade it"
        )
    try:
        with engine.execution_options(**{IMMEDIATE: True}).connect() as conn, conn.begin():
            command.upgrade(alembic_config(conn), "head")
        return True
    except DBAPIError:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            if _current_heads(engine) == heads:
                return False  # another process upgraded it meanwhile
            time.sleep(0.2)
        raise
