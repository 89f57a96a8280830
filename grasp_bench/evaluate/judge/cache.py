"""A persistent judge cache (SQLite): a rerun makes no judge call for what was scored.

Keyed by judge identity + rubric name and version + the rendered grading prompt (which holds
the question and the completion). WAL mode and a busy timeout make it safe for several
processes; failures (unscored because a call failed) are not cached, so a rerun retries them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


def cache_key(identity: dict[str, Any], rubric: str, version: int, prompt: str) -> str:
    blob = json.dumps([identity, rubric, version, prompt], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


# SQLite's primary result codes for a full disk and a file it may not write
_SQLITE_STORAGE = {13: errno.ENOSPC, 8: errno.EROFS}  # SQLITE_FULL, SQLITE_READONLY


def _storage_error(exc: sqlite3.OperationalError, path: Path) -> OSError | None:
    """A full disk or a read-only cache as the ``OSError`` every other write raises (the CLI
    reports it in one line, naming the cache); None for any other SQLite error."""
    code = _SQLITE_STORAGE.get((getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF)
    return OSError(code, str(exc), str(path)) if code else None


class JudgeCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # Switching to WAL needs a moment alone with the file and does not wait on the busy
        # handler, so a second process opening the cache at the same time retries here.
        for attempt in range(100):
            try:
                conn = self._conn()
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, record TEXT NOT NULL)"
                )
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    if (error := _storage_error(exc, self.path)) is not None:
                        raise error from exc
                    raise
                time.sleep(0.05 + random.random() * 0.1)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT record FROM scores WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        try:
            self._conn().execute(
                "INSERT OR REPLACE INTO scores (key, record) VALUES (?, ?)",
                (key, json.dumps(record, sort_keys=True)),
            )
        except sqlite3.OperationalError as exc:
            if (error := _storage_error(exc, self.path)) is None:
                raise
            raise error from exc

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM scores").fetchone()[0]
