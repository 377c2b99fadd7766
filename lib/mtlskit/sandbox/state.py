"""Durable sandbox state: one SQLite file, so a load balancer built in JupyterLab survives a restart.

Every API emulator works on JSON documents keyed by (api, collection, key). One re-entrant lock
serialises all changes: the sandbox is a single-user tool, and a lock makes the controller's
read-modify-write cycles trivially consistent with the API handlers.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    api TEXT NOT NULL, collection TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (api, collection, key)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_entries_ts ON log_entries (timestamp);
"""


class Store:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    @contextlib.contextmanager
    def discarded(self) -> Iterator[None]:
        """Run writes that are undone afterwards, whatever happens (an API dry run: every check and
        default of a real write, nothing kept). Holds the lock throughout."""
        with self.lock:
            self._db.execute("SAVEPOINT discarded")
            try:
                yield
            finally:
                self._db.execute("ROLLBACK TO discarded")
                self._db.execute("RELEASE discarded")

    def get(self, api: str, collection: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            row = self._db.execute(
                "SELECT body FROM objects WHERE api=? AND collection=? AND key=?", (api, collection, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, api: str, collection: str, key: str, body: dict[str, Any]) -> None:
        with self.lock:
            self._db.execute(
                "INSERT OR REPLACE INTO objects (api, collection, key, body) VALUES (?, ?, ?, ?)",
                (api, collection, key, json.dumps(body, sort_keys=True)),
            )

    def delete(self, api: str, collection: str, key: str) -> bool:
        with self.lock:
            cur = self._db.execute(
                "DELETE FROM objects WHERE api=? AND collection=? AND key=?", (api, collection, key)
            )
        return cur.rowcount > 0

    def list(self, api: str, collection: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            rows = self._db.execute(
                "SELECT key, body FROM objects WHERE api=? AND collection=? AND key LIKE ? ORDER BY key",
                (api, collection, prefix.replace("%", r"\%") + "%"),
            ).fetchall()
        return [(k, json.loads(b)) for k, b in rows]

    def all(self, api: str | None = None) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        with self.lock:
            if api is None:
                rows = self._db.execute("SELECT api, collection, key, body FROM objects").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT api, collection, key, body FROM objects WHERE api=?", (api,)
                ).fetchall()
        for a, c, k, b in rows:
            yield a, c, k, json.loads(b)

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def next_counter(self, name: str) -> int:
        with self.lock:
            value = int(self.meta(f"counter:{name}", "0") or 0) + 1
            self.set_meta(f"counter:{name}", str(value))
            return value

    def append_log(self, timestamp: str, entry: dict[str, Any]) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO log_entries (timestamp, body) VALUES (?, ?)", (timestamp, json.dumps(entry))
            )

    def log_entries(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self._db.execute("SELECT body FROM log_entries ORDER BY timestamp, seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self.lock:
            self._db.close()
