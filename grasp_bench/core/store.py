"""Run directories, atomic writes and stage manifests.

Every stage writes into ``runs/<run-id>/<stage>/`` and finishes by writing ``manifest.json``
last, atomically. A stage whose manifest exists with the same config hash is done; anything
else is redone, so an interrupted run resumes where it stopped and never reads half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
PENDING = "pending.json"  # written when a stage starts, removed when it finishes


TMP_SUFFIX = ".tmp"  # atomic writes go to ".<name>.<random>.tmp" beside the file first


def _naming(exc: OSError, path: Path) -> OSError:
    """The error as the reader needs it: the file that could not be written (not the temporary
    one, nor no name at all as from ``write``/``fsync``), with the system's reason and errno."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    A failed write (disk full, read-only folder) leaves the old file as it was and no temporary
    file, and raises ``OSError`` naming ``path``; a process killed mid-write leaves only a
    temporary file, which no reader opens and ``remove_leftovers`` deletes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise


def replace_dir(staged: Path, target: Path) -> None:
    """Put the complete folder ``staged`` at ``target`` with renames only: the old folder is
    set aside (a temporary name the next lock holder cleans up), the new one renamed in, then
    the old one deleted. A kill at any point leaves the old folder whole, the new one whole, or
    none at ``target``; never a half-deleted one."""
    old = target.with_name(f".{target.name}.old{TMP_SUFFIX}")
    if old.exists():
        shutil.rmtree(old)
    had_old = target.exists()
    if had_old:
        os.replace(target, old)
    os.replace(staged, target)
    if had_old:
        shutil.rmtree(old)


def remove_leftovers(root: Path) -> list[Path]:
    """Delete what atomic writes leave when their process dies mid-write, under ``root``: the
    temporary files, and the staging folders of folders written whole (named the same way).
    Only safe while holding ``root``'s lock (no live writer). Does not descend into other
    hidden folders (``.git``, ``.venv``) or into a folder with its own lock (another run or
    board, whose writers may be alive); returns what went."""
    gone: list[Path] = []
    for here, dirs, files in os.walk(root):
        at = Path(here)
        for name in sorted(dirs):
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                shutil.rmtree(at / name, ignore_errors=True)
                gone.append(at / name)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not (at / d / ".lock").exists()
        )
        for name in sorted(files):
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                (at / name).unlink(missing_ok=True)
                gone.append(at / name)
    return gone


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    atomic_write_text(path, text)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def stable_hash(obj: Any) -> str:
    """A short content hash of any JSON-serialisable object (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class Stage:
    """One stage directory of a run, done when its manifest matches the stage's config hash."""

    def __init__(self, run_dir: Path, name: str, config: Any):
        self.dir = Path(run_dir) / name
        self.name = name
        self.config_hash = stable_hash(config)
        self._keys: dict[str, str] | None = None

    def is_done(self) -> bool:
        manifest = self.dir / MANIFEST
        if not manifest.exists():
            return False
        try:
            return json.loads(manifest.read_text())["config_hash"] == self.config_hash
        except (json.JSONDecodeError, KeyError):
            return False

    def _recorded(self) -> dict[str, Any]:
        """What the stage's last writer recorded: the manifest if it finished, else the pending
        note written when it started (so partial work is kept only under the same config)."""
        for name in (MANIFEST, PENDING):
            try:
                return json.loads((self.dir / name).read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
        return {}

    def reset_if_stale(self, keys: dict[str, str] | None = None) -> None:
        """Start (or resume) the stage under this config: output made under another config is
        dropped, partial work of the same config kept. ``keys`` gives per-output identities
        (file name -> hash): an output whose identity is unchanged survives a config change, so
        adding one method or seed does not redo the others."""
        recorded = self._recorded()
        if self.dir.exists() and recorded.get("config_hash") != self.config_hash:
            old_keys = recorded.get("keys") or {}
            keep = {n for n, k in (keys or {}).items() if old_keys.get(n) == k}
            for path in list(self.dir.iterdir()):
                if path.name in keep and path.is_file():
                    continue
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._keys = keys
        atomic_write_json(
            self.dir / PENDING,
            {"config_hash": self.config_hash, **({"keys": keys} if keys else {})},
        )

    def manifest(self) -> dict[str, Any]:
        """What the finished stage recorded (config hash, versions and its own entries)."""
        return json.loads((self.dir / MANIFEST).read_text())

    def finish(self, **extra: Any) -> None:
        from grasp_bench.core.versions import versions

        atomic_write_json(
            self.dir / MANIFEST,
            {
                "stage": self.name,
                "config_hash": self.config_hash,
                "versions": versions(),
                **({"keys": self._keys} if self._keys else {}),
                **extra,
            },
        )
        (self.dir / PENDING).unlink(missing_ok=True)
