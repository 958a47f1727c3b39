"""A throw-away PostgreSQL cluster for tests and benchmarks (Debian's server binaries).

``PostgresCluster`` runs ``initdb`` in a fresh temp dir and starts the server on a Unix socket
there (no TCP), as the ``postgres`` user when we are root (the server refuses to run as root).
The ``postgres`` fixture (session scope) skips only when the server binaries are absent.
Use it from a test module with ``from pg import postgres  # noqa: F401``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PORT = 5432  # only names the socket file: the server listens on no TCP address
USER = "vlabench"


def find_bin_dir() -> Path | None:
    """``$VLABENCH_PG_BIN``, else the newest /usr/lib/postgresql/*/bin, else ``initdb`` on PATH."""
    candidates = [os.environ.get("VLABENCH_PG_BIN", "")]
    candidates += sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    return None


class PostgresCluster:
    """Start with :meth:`start` (or ``with``); :meth:`create_database` gives fresh URLs.

    ``durable=False`` (tests) turns fsync and synchronous commit off; benchmarks keep them on.
    """

    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        self.dir = Path(tempfile.mkdtemp(prefix="vlabench-pg-"))
        self.data = self.dir / "data"
        self._names = itertools.count()
        self.run_as: str | None = None
        if os.geteuid() == 0:
            self.run_as = _service_user()
            shutil.chown(self.dir, user=self.run_as)

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}{tail}"
            )

    def start(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip
        options = f"-k {self.dir} -p {PORT} -c listen_addresses='' -c max_connections=100"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3) of ``database`` over the cluster's socket."""
        return f"postgresql+psycopg://{USER}@/{database}?host={self.dir}&port={PORT}"

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"{prefix}_{next(self._names)}"
        with psycopg.connect(host=str(self.dir), port=PORT, user=USER, dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _service_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A running cluster for the whole session; skipped only without the server binaries."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    with PostgresCluster(bin_dir) as cluster:
        yield cluster
