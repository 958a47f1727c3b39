"""Stores and other people's files, through the real CLI on real SQLite files (and a real
PostgreSQL): every problem is one line naming the file (exit 2); read commands never create,
migrate or write anything; only writing commands create a store, and they refuse a database
that holds other tables unless told ``--init``.

Permissions: tests run as root in CI, where ``chmod`` stops nothing. The read-only cases then
run the CLI without the capabilities that let root ignore file modes (``setpriv`` drops
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from the bounding set), so a 0444 file
and a 0555 directory are as read-only for it as for any user; where that is not possible
they are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from alembic import command
from conftest import CLI
from pg import postgres  # noqa: F401 (the session fixture)
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from test_report import FAST, PUSHT, add_run

from vlabench.store import NotAStoreError, StoreError, open_store
from vlabench.store.engine import alembic_config

RUN = ("run", "--policy", "noop", "--suite", "pusht_quick", "--episodes", "1")
READS = (("leaderboard",), ("show", "1"), ("compare", "a", "b"), ("leaderboard", "-f", "csv"))
NO_DAC = "--bounding-set=-dac_override,-dac_read_search,-fowner"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def side_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(path.name + "-*"))


def one_line_error(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The command failed with exit 2 and one ``error:`` line holding every part."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def make_store(path: Path, runs: int = 6) -> Path:
    """A real vlabench store with runs and episodes, closed (WAL checkpointed into the file)."""
    with open_store(f"sqlite:///{path}") as s:
        for i in range(runs):
            add_run(s, f"policy{i}", "pusht", "t1", PUSHT, "aaaaaa11", "sf" * 20)
            add_run(s, f"policy{i}", "metaworld", "reach", FAST, "bbbbbb22", "ssff" * 5)
    assert side_files(path) == []
    return path


def foreign_db(path: Path) -> Path:
    """Another application's SQLite file: its own tables, rollback journal (not WAL)."""
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE INDEX ix_contacts_name ON contacts (name);"
        "INSERT INTO contacts (name) VALUES ('ann'), ('bob');"
    )
    con.commit()
    con.close()
    return path


def schema_of(path: Path) -> tuple[list[tuple], str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = con.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
        return tables, con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="session")
def unprivileged() -> list[str]:
    """A command prefix under which file modes apply (empty when we are not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: chmod stops nothing")
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"vlabench-ro-probe-{os.getpid()}"
    probe.mkdir(mode=0o555, exist_ok=True)
    try:
        done = subprocess.run(
            [setpriv, NO_DAC, "touch", str(probe / "x")], capture_output=True, check=False
        )
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if done.returncode == 0:
        pytest.skip("running as root and dropping CAP_DAC_OVERRIDE did not stop a write")
    if b"Operation not permitted" in done.stderr and b"setpriv" in done.stderr:
        pytest.skip("running as root and setpriv may not drop capabilities here")
    return [setpriv, NO_DAC]


def run_as(cli: CLI, prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, *cli.command(*args)],
        cwd=cli.cwd,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- not a store, or a broken one ---------------------------------------------------------------


def test_a_text_file_is_one_line_for_every_command(cli: CLI) -> None:
    cli.db_path.write_text("name,score\nann,3\n")
    before = digest(cli.db_path)
    for args in (*READS, RUN, ("migrate",)):
        one_line_error(cli(*args, ok=False), f"{cli.db_path} is not a vlabench store", "SQLite")
    assert digest(cli.db_path) == before and side_files(cli.db_path) == []


def test_a_truncated_store_is_one_line(cli: CLI) -> None:
    data = make_store(cli.db_path).read_bytes()
    assert len(data) > 16384
    cli.db_path.write_bytes(data[: len(data) // 2])
    for args in (("leaderboard",), ("show", "1"), RUN):
        one_line_error(cli(*args, ok=False), f"the store at {cli.db_path} is truncated")
    cli.db_path.write_bytes(data[:60])  # not even the 100-byte header
    one_line_error(cli("leaderboard", ok=False), "truncated", "not even a header")
    cli.db_path.write_bytes(b"\x00" * 4096)  # zeroed: no SQLite header at all
    one_line_error(cli("leaderboard", ok=False), "is not a vlabench store")


def test_a_missing_store_is_not_created_by_reads(cli: CLI, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    for args in READS:
        proc = cli("--db", f"sqlite:///{missing}", *args, ok=False)
        one_line_error(proc, f"no store at {missing}")
    assert not (tmp_path / "nonexistent").exists()
    one_line_error(cli("leaderboard", ok=False), f"no store at {cli.db_path}")  # $VLABENCH_DB
    assert not cli.db_path.exists()
    cli.db_path.touch()  # an empty file: no store either, and it stays empty
    one_line_error(cli("leaderboard", ok=False), f"no store at {cli.db_path}", "empty")
    assert cli.db_path.stat().st_size == 0 and side_files(cli.db_path) == []


def test_writing_commands_create_a_store_and_its_directory(cli: CLI, tmp_path: Path) -> None:
    fresh = tmp_path / "new" / "dir" / "x.db"
    out = cli("--db", f"sqlite:///{fresh}", "migrate").stdout
    assert out.strip() == f"store at {fresh}: schema 0004"
    assert schema_of(fresh)[1] == "wal"
    assert "0 [" not in cli("--db", f"sqlite:///{fresh}", "leaderboard").stdout  # empty board
    cli.db_path.touch()  # an empty file is an empty database: a writing command fills it
    cli("migrate")
    assert {"alembic_version", "runs", "episodes"} <= {n for _, n in schema_of(cli.db_path)[0]}


def test_a_newer_store_is_one_line_for_reads_and_writes(cli: CLI) -> None:
    make_store(cli.db_path, runs=1)
    con = sqlite3.connect(cli.db_path)
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    for args in (("leaderboard",), RUN, ("migrate",)):
        one_line_error(cli(*args, ok=False), "revision 9999, unknown to this vlabench", "newer")


def test_an_older_store_is_not_migrated_by_reads(cli: CLI) -> None:
    """A read command refuses a store at an older revision (its tables lack columns this
    version reads) and says how to upgrade it; `vlabench migrate` does, then it reads."""
    with open_store(f"sqlite:///{cli.db_path}", upgrade=False) as old, old.engine.begin() as c:
        command.upgrade(alembic_config(c), "0003")
    before = digest(cli.db_path)
    for args in READS[:3]:
        one_line_error(
            cli(*args, ok=False),
            f"the store at {cli.db_path} has schema revision 0003",
            "older than this vlabench's 0004",
            "vlabench migrate",
        )
    assert digest(cli.db_path) == before
    assert cli("migrate").stdout.strip() == f"store at {cli.db_path}: schema 0004"
    cli("leaderboard")


def test_reading_a_store_never_writes_its_file(cli: CLI) -> None:
    make_store(cli.db_path)
    before = digest(cli.db_path)
    for args in (("leaderboard", "-f", "json"), ("show", "1"), ("compare", "policy0", "policy1")):
        cli(*args)
    assert digest(cli.db_path) == before
    assert schema_of(cli.db_path)[1] == "wal"


def test_a_read_only_open_cannot_write(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s.db", runs=1)
    with open_store(f"sqlite:///{path}", read_only=True) as s:
        assert len(s.runs()) == 2 and s.location == str(path)
        with pytest.raises(DBAPIError, match="readonly"):
            s.set_run_status(1, "failed", "x")
    assert open_store(f"sqlite:///{path}").get_run(1)["status"] == "finished"


# -- another application's database ---------------------------------------------------------------


def test_another_applications_database_is_left_alone(cli: CLI) -> None:
    foreign_db(cli.db_path)
    before, schema = digest(cli.db_path), schema_of(cli.db_path)
    assert schema[1] == "delete"
    for args in READS:
        one_line_error(cli(*args, ok=False), f"{cli.db_path} is not a vlabench store", "(contacts)")
    cli("matrix", "--dry-run", "--policy", "noop", "--suite", "pusht_quick")
    for args in (RUN, ("migrate",)):
        one_line_error(cli(*args, ok=False), "not a vlabench store", "--init")
    assert digest(cli.db_path) == before and schema_of(cli.db_path) == schema
    assert side_files(cli.db_path) == []

    cli("--init", "migrate")  # told to: vlabench's tables next to the application's
    tables = {name for kind, name in schema_of(cli.db_path)[0] if kind == "table"}
    assert tables == {"contacts", "alembic_version", "runs", "episodes"}
    con = sqlite3.connect(cli.db_path)
    assert con.execute("SELECT name FROM contacts ORDER BY id").fetchall() == [("ann",), ("bob",)]
    con.close()
    cli("leaderboard")  # now a vlabench store (with one more table): reads work
    cli("migrate")  # and writing commands no longer need --init


def test_another_applications_alembic_schema_is_refused_even_with_init(cli: CLI) -> None:
    con = sqlite3.connect(cli.db_path)
    con.executescript(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);"
        "INSERT INTO alembic_version VALUES ('ae1027a6acf');"
        "CREATE TABLE users (id INTEGER PRIMARY KEY);"
    )
    con.close()
    before = digest(cli.db_path)
    for args in (("leaderboard",), ("--init", "migrate"), ("--init", *RUN)):
        one_line_error(cli(*args, ok=False), "not a vlabench store", "Alembic", "ae1027a6acf")
    assert digest(cli.db_path) == before


def test_another_applications_postgres_database(postgres: object) -> None:  # noqa: F811
    import psycopg

    url = postgres.create_database("foreign")  # type: ignore[attr-defined]
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id serial PRIMARY KEY, total numeric)")
    with pytest.raises(NotAStoreError, match=r"is not a vlabench store.*\(invoices\)"):
        open_store(url, read_only=True)
    with pytest.raises(NotAStoreError, match="were not added"):
        open_store(url)
    with psycopg.connect(dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables "
                                             "WHERE schemaname = 'public'")]  # fmt: skip
    assert names == ["invoices"]
    with open_store(url, init=True) as s:
        assert {"invoices", "runs", "episodes", "alembic_version"} <= set(
            inspect(s.engine).get_table_names()
        )


def test_postgres_reads_open_read_only_and_never_create(postgres: object) -> None:  # noqa: F811
    url = postgres.create_database("reads")  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match=r"no store at .*: the database has no tables"):
        open_store(url, read_only=True)
    with open_store(url) as s:
        add_run(s, "p", "pusht", "t1", PUSHT, "aaaaaa11", "sf")
    with open_store(url, read_only=True) as s:
        assert [r["policy"] for r in s.runs()] == ["p"]
        with pytest.raises(DBAPIError, match="read-only transaction"), s.engine.begin() as conn:
            conn.execute(text("DELETE FROM episodes"))
    bad = url.rsplit("/", 1)[0] + "/no_such_db?" + url.split("?", 1)[1]
    with pytest.raises(StoreError, match=r"cannot open the store at .*no_such_db"):
        open_store(bad, read_only=True)


# -- read-only files and directories --------------------------------------------------------------


def test_a_read_only_store_reads_and_refuses_writes(cli: CLI, unprivileged: list[str]) -> None:
    make_store(cli.db_path)
    cli.db_path.chmod(0o444)
    before = digest(cli.db_path)
    board = run_as(cli, unprivileged, "leaderboard", "-f", "csv")
    assert board.returncode == 0, board.stderr
    assert board.stdout.count("\n") == 13  # header + 6 policies x 2 suites
    for args in (RUN, ("migrate",)):
        one_line_error(run_as(cli, unprivileged, *args), f"the store at {cli.db_path} is read-only")
    assert digest(cli.db_path) == before


def test_a_store_in_a_read_only_directory(cli: CLI, unprivileged: list[str]) -> None:
    folder = cli.cwd / "shared"
    folder.mkdir()
    db = make_store(folder / "results.db")
    folder.chmod(0o555)
    cli.env["VLABENCH_DB"] = f"sqlite:///{db}"
    try:
        before = digest(db)
        for args in (
            ("leaderboard", "-f", "csv"),
            ("show", "1"),
            ("compare", "policy0", "policy1"),
        ):
            proc = run_as(cli, unprivileged, *args)
            assert proc.returncode == 0, proc.stderr
        assert side_files(db) == []  # no -wal or -shm: it was read as it is on disk
        one_line_error(
            run_as(cli, unprivileged, *RUN),
            f"cannot write the store at {db}: its directory {folder} is read-only",
        )
        nested = folder / "sub" / "new.db"
        one_line_error(
            run_as(cli, unprivileged, "--db", f"sqlite:///{nested}", *RUN),
            f"cannot create the store at {nested}",
            "permission denied",
        )
        assert digest(db) == before and sorted(os.listdir(folder)) == ["results.db"]
    finally:
        folder.chmod(0o755)
