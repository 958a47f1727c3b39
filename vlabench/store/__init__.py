"""The results store: runs and episodes in SQLite (default) or any SQLAlchemy database.

``open_store()`` opens ``$VLABENCH_DB`` or ``sqlite:///benchmarks.db``, creating or upgrading
the schema through Alembic; the returned :class:`Store` holds every query.
"""

from vlabench.store.engine import default_url, migrate
from vlabench.store.models import RUN_STATUSES, Episode, Run
from vlabench.store.store import Store, open_store

__all__ = ["RUN_STATUSES", "Episode", "Run", "Store", "default_url", "migrate", "open_store"]
