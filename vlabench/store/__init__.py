"""The results store: runs and episodes in SQLite (default) or any SQLAlchemy database.

``open_store()`` opens ``$VLABENCH_DB`` or ``sqlite:///benchmarks.db`` for writes, creating or
upgrading the schema through Alembic (and refusing another application's database unless
``init=True``); ``open_store(read_only=True)`` opens it for reads and changes nothing (see
:mod:`vlabench.store.opening`). The returned :class:`Store` holds every query.
"""

from vlabench.store.engine import default_url, migrate
from vlabench.store.models import RUN_STATUSES, Episode, Run
from vlabench.store.opening import NotAStoreError, StoreError
from vlabench.store.store import Store, open_store

__all__ = [
    "RUN_STATUSES",
    "Episode",
    "NotAStoreError",
    "Run",
    "Store",
    "StoreError",
    "default_url",
    "migrate",
    "open_store",
]
