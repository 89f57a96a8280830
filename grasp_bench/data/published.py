"""Published data sets, fetched once and pinned: the field's own training sets and question
files, so a paper-scale run trains and asks what the papers did (not this project's smoke
generators).

The registry (``published.yaml`` beside this module; data, never code) names each set's
commit-pinned URL, licence, kind (training set or question file), expected rows and sha256.
``fetch`` downloads it (or registers a local copy, for sets distributed encrypted or behind a
form) into the cache with a manifest; a second fetch is a no-op, a wrong digest is an error
naming both digests, and the file is checked in the format its consumers read (file:line on
the first bad row). Experiments name a set as ``published:NAME``; ``check_ref`` needs no
network, ``resolve_ref`` finds the cached copy.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from grasp_bench.core.store import atomic_write_bytes, atomic_write_json
from grasp_bench.model.models import cache_dir

PREFIX = "published:"
MANIFEST = "manifest.json"
Kind = Literal["train", "questions"]
# the experiment's data fields that may name a published set, and the kind each must be
DATA_KINDS: dict[str, Kind] = {"train_file": "train", "drift_questions": "questions"}


class PublishedDataError(ValueError):
    """A registry, fetch or reference problem, with what to do about it."""


@dataclass(frozen=True)
class PublishedSet:
    name: str
    kind: Kind
    format: Literal["chat-jsonl", "em-questions-yaml"]
    paper: str
    licence: str
    url: str | None = None
    obtain: str | None = None
    rows: int | None = None
    sha256: str | None = None
    checked: bool = False

    @property
    def filename(self) -> str:
        if self.url:
            return self.url.rsplit("/", 1)[-1]
        return f"{self.name}.{'jsonl' if self.format == 'chat-jsonl' else 'yaml'}"


def registry(path: Path | None = None) -> dict[str, PublishedSet]:
    """The registry's sets by name (the packaged file unless ``path`` names another)."""
    if path is None:
        text = resources.files("grasp_bench.data").joinpath("published.yaml").read_text()
        where = "grasp_bench/data/published.yaml"
    else:
        text, where = Path(path).read_text(), str(path)
    data = yaml.safe_load(text) or {}
    sets = {}
    for name, entry in (data.get("sets") or {}).items():
        try:
            sets[name] = PublishedSet(name=name, **entry)
        except TypeError as exc:
            raise PublishedDataError(f"{where} sets.{name}: {exc}") from None
        if sets[name].url and "/refs/heads/" in sets[name].url:
            raise PublishedDataError(f"{where} sets.{name}.url: pin a commit, not a branch")
    return sets


def lookup(name: str, sets: dict[str, PublishedSet] | None = None) -> PublishedSet:
    sets = registry() if sets is None else sets
    if name not in sets:
        raise PublishedDataError(f"no published set {name!r}; known: {', '.join(sorted(sets))}")
    return sets[name]


def folder(name: str) -> Path:
    return cache_dir() / "published" / name


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def count_rows(entry: PublishedSet, path: Path) -> int:
    """Rows as the consumer reads them (a bad row raises naming file:line): chat examples of a
    training set, questions of a question file."""
    if entry.format == "chat-jsonl":
        from grasp_bench.data.chat import load_chat_jsonl

        return len(load_chat_jsonl(path))
    from grasp_bench.data.em_questions import import_em_questions

    # every entry valid, or file:line; one row per paraphrase, its question's id as category
    return len({row["category"] for row in import_em_questions(path)})


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PublishedDataError(
            f"cannot download {url}: {reason}. Without network, fetch the file elsewhere and "
            "register it with `grasp-bench data fetch NAME --from FILE`."
        ) from None


def fetch(
    entry: PublishedSet,
    from_file: Path | None = None,
    expect_sha256: str | None = None,
    timeout: float = 60.0,
) -> tuple[Path, dict[str, Any], bool]:
    """The cached file, its manifest, and whether this call fetched it (False: already there).

    ``expect_sha256`` overrides the registry's digest (a user correcting an unchecked claim)."""
    expected = expect_sha256 or entry.sha256
    target = folder(entry.name) / entry.filename
    manifest_path = folder(entry.name) / MANIFEST
    if target.exists() and manifest_path.exists() and from_file is None:
        manifest = json.loads(manifest_path.read_text())
        found = _digest(target.read_bytes())
        # checked when it was registered (against the registry's digest or the one the user
        # accepted then): unchanged since, it is the same file
        if found == manifest["sha256"] and expect_sha256 in (None, found):
            return target, manifest, False
    if from_file is not None:
        try:
            data = Path(from_file).read_bytes()
        except OSError as exc:
            raise PublishedDataError(f"{from_file}: cannot read: {exc.strerror or exc}") from None
        source = f"file:{Path(from_file).resolve()}"
    elif entry.url:
        data = _download(entry.url, timeout)
        source = entry.url
    else:
        raise PublishedDataError(
            f"{entry.name} cannot be downloaded directly. {entry.obtain or ''}".strip()
        )
    found = _digest(data)
    if expected and found != expected:
        claim = "" if entry.checked else (
            " (the registry's digest is an unconfirmed claim: if this file is the published one,"
            f" pass --expect-sha256 {found} and report it so the registry is corrected)"
        )  # fmt: skip
        raise PublishedDataError(
            f"{entry.name}: sha256 {found} found, {expected} expected ({source}){claim}"
        )
    staged = target.with_suffix(target.suffix + ".partial")
    atomic_write_bytes(staged, data)
    try:
        rows = count_rows(entry, staged)
    except ValueError as exc:
        staged.unlink(missing_ok=True)
        raise PublishedDataError(
            f"{entry.name}: not a valid {entry.format} file: {exc}".replace(str(staged), source)
        ) from None
    if entry.rows is not None and rows != entry.rows:
        staged.unlink(missing_ok=True)
        raise PublishedDataError(
            f"{entry.name}: {rows} rows found, {entry.rows} expected ({source})"
        )
    staged.replace(target)
    manifest = {"name": entry.name, "file": entry.filename, "kind": entry.kind,
                "sha256": found, "rows": rows, "source": source, "url": entry.url,
                "licence": entry.licence, "registry_checked": entry.checked,
                "accepted_sha256": expect_sha256,
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    atomic_write_json(manifest_path, manifest)
    return target, manifest, True


SMOKE_DATA = "generated smoke-test data (not a published set)"


def training_data_label(train_file: str | None, sha256: str | None = None) -> str:
    """What a run trained on, as the manifest, report and board say it: a published set by
    name, a user's file by content, or the task's generated data, labelled as smoke-test data
    (its templates are far less diverse than the published sets; ``grasp-bench tasks --stats``)."""
    if is_ref(train_file):
        return str(train_file)
    if train_file:
        return f"user file (sha256 {sha256[:12]})" if sha256 else "user file"
    return SMOKE_DATA


def is_ref(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PREFIX)


def check_ref(value: str, kind: Kind) -> PublishedSet:
    """The set a ``published:NAME`` reference names, of the right kind (no network, no cache)."""
    entry = lookup(value.removeprefix(PREFIX))
    if entry.kind != kind:
        raise PublishedDataError(f"{value} is a {entry.kind} set, not a {kind} set")
    return entry


def resolve_ref(value: str, kind: Kind) -> Path:
    """The cached file of a ``published:NAME`` reference, checked against its manifest."""
    entry = check_ref(value, kind)
    target = folder(entry.name) / entry.filename
    manifest_path = folder(entry.name) / MANIFEST
    if not (target.exists() and manifest_path.exists()):
        raise PublishedDataError(
            f"{value} is not fetched yet: run `grasp-bench data fetch {entry.name}`"
        )
    recorded = json.loads(manifest_path.read_text())["sha256"]
    if _digest(target.read_bytes()) != recorded:
        raise PublishedDataError(
            f"{target} changed since it was fetched: run `grasp-bench data fetch {entry.name}`"
        )
    return target
