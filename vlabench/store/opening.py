"""Opening a store, for reads or for writes, with checks that keep other people's files safe.

*For reads* (``open_store(url, read_only=True)``: leaderboard, compare, show, sim-real)
nothing is created, migrated or written. A SQLite file is opened with ``mode=ro``: no
directory or file is created for a missing store, the journal mode is left as it is, and no
pragma writes the file. (A WAL-mode store in a writable directory gets SQLite's usual
``-wal``/``-shm`` side files while it is read, as any WAL reader does; in a read-only
directory, where they cannot be created, the file is read as immutable.) PostgreSQL sessions
are read-only. The store must be a vlabench store at this vlabench's schema: a store at an
older revision is refused with what to run to upgrade it (``vlabench migrate``, or any
writing command), since its tables lack columns this version reads.

*For writes* (``open_store(url)``: run, matrix, interleave, migrate) a missing store is
created (with its directory), an older one is upgraded; a database that holds other tables
and no vlabench schema (another application's) is refused with :class:`NotAStoreError`
unless ``init=True``, which adds vlabench's tables next to them. A read-only file or
directory is refused up front.

Every refusal is a :class:`StoreError` whose message is one line naming the file (or URL)
and what is wrong with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from sqlalchemy import URL, Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from vlabench.store.engine import (
    current_revisions,
    enable_wal,
    head_revisions,
    known_revisions,
    make_store_engine,
    migrate,
)

SQLITE_MAGIC = b"SQLite format 3\x00"
VERSION_TABLE = "alembic_version"


class StoreError(RuntimeError):
    """A store that cannot be opened as asked; the message is one line naming it."""


class NotAStoreError(StoreError):
    """A database that holds other tables and no vlabench schema (another application's)."""


@dataclass(frozen=True)
class Schema:
    """What a database holds: its tables and the revision(s) in ``alembic_version``."""

    tables: frozenset[str]
    """Tables and views (of the default schema), SQLite's own left out."""
    revisions: frozenset[str]

    @property
    def kind(self) -> str:
        """``empty``, ``vlabench`` (a known revision), ``newer`` (a vlabench store at an
        unknown revision), ``alembic`` (another application's Alembic schema) or ``foreign``
        (tables and no revision)."""
        if self.revisions:
            if self.revisions <= known_revisions():
                return "vlabench"
            return "newer" if {"runs", "episodes"} <= self.tables else "alembic"
        return "foreign" if self.tables - {VERSION_TABLE} else "empty"

    def listed(self, limit: int = 5) -> str:
        names = sorted(self.tables)
        more = f", ... ({len(names)} tables)" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more


def open_engine(url: str, *, read_only: bool, init: bool = False) -> tuple[Engine, str]:
    """An engine on the store at ``url`` and the store's name for messages (its path, or the
    URL without password); see the module docstring for what each mode checks and does."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        path = sqlite_path(sa_url)
        if path is not None:
            if read_only:
                return _sqlite_for_reads(sa_url, path), str(path)
            return _sqlite_for_writes(sa_url, path, init), str(path)
        where = ":memory:"
    else:
        where = sa_url.render_as_string(hide_password=True)
    if read_only:
        if sa_url.get_backend_name() == "sqlite":
            raise StoreError("no store in an in-memory SQLite database: it starts empty")
        engine = make_store_engine(sa_url, read_only=True)
        _checked(engine, where, lambda schema: _check_for_reads(schema, where), "open")
        return engine, where
    engine = make_store_engine(sa_url)
    _checked(engine, where, lambda schema: _check_for_writes(schema, where, init), "open")
    _prepared(engine, where)
    return engine, where


def sqlite_path(sa_url: URL) -> Path | None:
    """The file of a SQLite URL (plain path or ``file:`` URI); None for an in-memory one."""
    database = sa_url.database or ""
    if database in ("", ":memory:"):
        return None
    if database.startswith("file:") and _truthy(sa_url.query.get("uri")):
        if sa_url.query.get("mode") == "memory":
            return None
        rest = database.removeprefix("file:").split("?", 1)[0].split("#", 1)[0]
        if rest.startswith("//"):  # file://host/path: SQLite accepts only an empty host
            rest = "/" + rest[2:].split("/", 1)[-1]
        return Path(unquote(rest))
    return Path(database).expanduser()


def _truthy(value: object) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


# -- SQLite files -------------------------------------------------------------------------------


def _sqlite_for_reads(sa_url: URL, path: Path) -> Engine:
    where = str(path)
    if not path.exists():
        raise StoreError(f"no store at {where}")
    if not _check_file(path, where):
        raise StoreError(f"no store at {where}: the file is empty")
    engine = make_store_engine(_read_only_url(sa_url, path))
    try:
        _checked(engine, where, lambda schema: _check_for_reads(schema, where), "read")
        return engine
    except StoreError as exc:
        if not isinstance(exc.__cause__, DBAPIError) or not _wal_cannot_be_shared(path):
            raise
    # A WAL store in a directory we cannot write: SQLite cannot create the shared-memory
    # file a WAL reader needs, but nothing can be written there either (no -wal exists and
    # none can be created), so the file is read as it is on disk.
    engine = make_store_engine(_read_only_url(sa_url, path, immutable=True))
    _checked(engine, where, lambda schema: _check_for_reads(schema, where), "read")
    return engine


def _sqlite_for_writes(sa_url: URL, path: Path, init: bool) -> Engine:
    where, folder = str(path), path.parent
    if path.exists():
        holds_data = _check_file(path, where)
        if not os.access(path, os.W_OK):
            raise StoreError(f"the store at {where} is read-only: no permission to write it")
        if not _writable_dir(folder):
            raise StoreError(
                f"cannot write the store at {where}: its directory {folder} is read-only "
                f"(SQLite writes {path.name}-wal and {path.name}-shm next to it)"
            )
        if holds_data:  # look (read-only) before writing anything
            probe = make_store_engine(_read_only_url(sa_url, path))
            try:
                _checked(probe, where, lambda s: _check_for_writes(s, where, init), "read")
            finally:
                probe.dispose()
    else:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the store at {where}: {_os_reason(exc)}: {exc.filename}"
            ) from None
        if not _writable_dir(folder):
            raise StoreError(f"cannot create the store at {where}: {folder} is read-only")
    plain = not (sa_url.database or "").startswith("file:")
    engine = make_store_engine(sa_url.set(database=str(path)) if plain else sa_url)
    _prepared(engine, where)
    return engine


def _check_file(path: Path, where: str) -> bool:
    """False for an empty file; raises for a directory, a file that is not SQLite or one
    shorter than its header says (a truncated copy), before SQLite sees it."""
    if path.is_dir():
        raise StoreError(f"{where} is a directory, not a store")
    try:
        with path.open("rb") as f:
            header = f.read(100)
        size = path.stat().st_size
    except OSError as exc:
        raise StoreError(f"cannot read the store at {where}: {_os_reason(exc)}") from None
    if not header:
        return False
    if not header.startswith(SQLITE_MAGIC[: len(header)]):
        raise StoreError(f"{where} is not a vlabench store: it is not an SQLite database")
    if len(header) < 100:
        raise StoreError(f"the store at {where} is truncated: {size} bytes, not even a header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size_is_valid = pages > 0 and header[24:28] == header[92:96]  # SQLite's own rule
    wal = path.with_name(path.name + "-wal")
    pending = wal.is_file() and wal.stat().st_size > 0  # may hold what the file lacks
    if size_is_valid and size < pages * page_size and not pending:
        raise StoreError(
            f"the store at {where} is truncated: {size} bytes, its header says {pages * page_size}"
        )
    return True


def _read_only_url(sa_url: URL, path: Path, immutable: bool = False) -> URL:
    """``sqlite:///file:PATH?mode=ro&uri=true``: SQLite opens the file read-only and never
    creates it (``immutable=1``: nor looks for a WAL or takes locks)."""
    query = {**sa_url.query, "uri": "true", "mode": "ro"}
    if immutable:
        query["immutable"] = "1"
    if sa_url.database and sa_url.database.startswith("file:") and _truthy(sa_url.query.get("uri")):
        return sa_url.update_query_dict(query)
    database = "file:" + quote(str(path.absolute()))
    return URL.create("sqlite", database=database, query=query)


def _wal_cannot_be_shared(path: Path) -> bool:
    """A WAL store that only an immutable open can read: its directory is not writable
    (no ``-shm`` can be created) and no ``-wal`` holds changes the file lacks."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.is_file() and wal.stat().st_size > 0
    return not _writable_dir(path.parent) and not pending


def _writable_dir(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


# -- schema checks ------------------------------------------------------------------------------


def _checked(engine: Engine, where: str, check: Callable[[Schema], None], doing: str) -> None:
    """Read the schema (a DBAPI error becomes one line) and apply ``check`` to it; the
    engine is disposed of when anything fails."""
    try:
        try:
            schema = _read_schema(engine)
        except DBAPIError as exc:
            raise StoreError(f"cannot {doing} the store at {where}: {db_reason(exc)}") from exc
        check(schema)
    except BaseException:
        engine.dispose()
        raise


def _read_schema(engine: Engine) -> Schema:
    inspector = inspect(engine)
    tables = frozenset(inspector.get_table_names()) | frozenset(inspector.get_view_names())
    revisions = current_revisions(engine) if VERSION_TABLE in tables else frozenset()
    return Schema(tables, revisions)


def _heads() -> str:
    return ", ".join(sorted(head_revisions()))


def _check_common(schema: Schema, where: str) -> None:
    revisions = ", ".join(sorted(schema.revisions))
    if schema.kind == "newer":
        raise StoreError(
            f"the store at {where} has schema revision {revisions}, unknown to this vlabench "
            f"(expected {_heads()}); it was written by a newer vlabench: upgrade vlabench"
        )
    if schema.kind == "alembic":
        raise NotAStoreError(
            f"{where} is not a vlabench store: it holds another schema managed by Alembic "
            f"(revision {revisions}; tables {schema.listed()})"
        )


def _check_for_reads(schema: Schema, where: str) -> None:
    _check_common(schema, where)
    if schema.kind == "empty":
        raise StoreError(f"no store at {where}: the database has no tables")
    if schema.kind == "foreign":
        raise NotAStoreError(
            f"{where} is not a vlabench store: it holds other tables ({schema.listed()})"
        )
    if schema.revisions != head_revisions():
        raise StoreError(
            f"the store at {where} has schema revision {', '.join(sorted(schema.revisions))}, "
            f"older than this vlabench's {_heads()}: upgrade it with `vlabench migrate` "
            "(or any run); reading commands never change a store"
        )


def _check_for_writes(schema: Schema, where: str, init: bool) -> None:
    _check_common(schema, where)
    if schema.kind == "foreign" and not init:
        raise NotAStoreError(
            f"{where} is not a vlabench store: it holds other tables ({schema.listed()}); "
            "vlabench's tables were not added to it"
        )


def _prepared(engine: Engine, where: str) -> None:
    """WAL journaling and the schema at head; a failure is one line (engine disposed)."""
    try:
        enable_wal(engine)
        migrate(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise StoreError(f"cannot write the store at {where}: {db_reason(exc)}") from exc
    except BaseException:
        engine.dispose()
        raise


def db_reason(exc: DBAPIError) -> str:
    """The driver's message, first line (``file is not a database``)."""
    text = str(exc.orig if exc.orig is not None else exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc.orig).__name__
