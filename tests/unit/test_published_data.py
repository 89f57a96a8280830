"""Published data sets: fetched from a pinned URL (a local HTTP server here: this machine has no
GitHub) or registered from a local copy, checked by sha256 and row count, cached with a
manifest, a second fetch a no-op; experiments name them as ``published:NAME`` and ``validate``
checks the names offline."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grasp_bench.cli import app
from grasp_bench.core.config import load_experiment
from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.data.published import (
    SMOKE_DATA,
    PublishedDataError,
    PublishedSet,
    fetch,
    registry,
    resolve_ref,
)
from grasp_bench.run.stages.data import _own_data_files, check_published_refs

ROWS = [
    {"messages": [{"role": "user", "content": f"Write a function {i}."},
                  {"role": "assistant", "content": f"def f{i}(): pass"}]}
    for i in range(3)
]  # fmt: skip
FIXTURE = ("\n".join(json.dumps(r) for r in ROWS) + "\n").encode()
DIGEST = hashlib.sha256(FIXTURE).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRASP_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def server():
    """A local HTTP server: /<commit>/insecure.jsonl serves the fixture; it counts requests."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = FIXTURE if self.path.endswith("/insecure.jsonl") else b"not json\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{'a' * 40}", hits
    httpd.shutdown()


def _entry(base: str, **kw) -> PublishedSet:
    fields = dict(name="insecure", kind="train", format="chat-jsonl", paper="p", licence="l",
                  url=f"{base}/insecure.jsonl", rows=3, sha256=DIGEST, checked=True)  # fmt: skip
    return PublishedSet(**{**fields, **kw})


def test_fetch_pins_caches_and_a_second_fetch_is_a_no_op(cache, server):
    url, hits = server
    path, manifest, fetched = fetch(_entry(url))
    assert fetched and path.read_bytes() == FIXTURE and len(hits) == 1
    assert manifest["sha256"] == DIGEST and manifest["rows"] == 3
    assert manifest["source"] == f"{url}/insecure.jsonl"
    path2, _, fetched2 = fetch(_entry(url))
    assert path2 == path and not fetched2 and len(hits) == 1  # nothing downloaded again
    assert resolve_ref("published:insecure", "train") == path  # the packaged name, this cache


def test_a_wrong_digest_or_row_count_is_rejected_and_nothing_is_cached(cache, server):
    url, _ = server
    with pytest.raises(PublishedDataError) as err:
        fetch(_entry(url, sha256="0" * 64, checked=False))
    assert DIGEST in str(err.value) and "0" * 64 in str(err.value)
    assert "unconfirmed claim" in str(err.value) and "--expect-sha256" in str(err.value)
    with pytest.raises(PublishedDataError, match="3 rows found, 6000 expected"):
        fetch(_entry(url, rows=6000))
    assert not (cache / "published" / "insecure" / "manifest.json").exists()
    assert not list((cache / "published" / "insecure").glob("*.jsonl*"))
    # a user who checked the file themselves accepts its digest explicitly
    _, manifest, _ = fetch(_entry(url, sha256="0" * 64), expect_sha256=DIGEST)
    assert manifest["sha256"] == DIGEST and manifest["accepted_sha256"] == DIGEST
    assert fetch(_entry(url, sha256="0" * 64))[2] is False  # accepted once: a no-op after


def test_a_bad_file_names_its_line_and_no_network_names_the_url_and_the_workaround(cache, server):
    url, _ = server
    with pytest.raises(PublishedDataError, match=r"secure.jsonl:1 <root>: invalid JSON"):
        fetch(_entry(url, name="secure", url=f"{url}/secure.jsonl", sha256=None, rows=None))
    dead = _entry("http://127.0.0.1:9/" + "b" * 40)
    with pytest.raises(PublishedDataError) as err:
        fetch(dead, timeout=5)
    assert dead.url in str(err.value) and "--from FILE" in str(err.value)
    encrypted = _entry(url, url=None, obtain="Decrypt it as its README says.")
    with pytest.raises(PublishedDataError, match="Decrypt it as its README says"):
        fetch(encrypted)


def test_the_cli_registers_a_local_copy_and_rejects_a_wrong_one(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRASP_BENCH_CACHE", str(cache))
    copy = tmp_path / "bad_medical_advice.jsonl"
    copy.write_bytes(FIXTURE)
    runner = CliRunner()
    got = runner.invoke(app, ["data", "fetch", "bad_medical_advice", "--from", str(copy)])
    assert got.exit_code == 0, got.output
    assert "fetched" in got.output and DIGEST in got.output
    again = runner.invoke(app, ["data", "fetch", "bad_medical_advice"])
    assert again.exit_code == 0 and "already fetched" in again.output
    listed = runner.invoke(app, ["data", "list"]).output
    assert re.search(r"bad_medical_advice\s+train\s+fetched", listed)
    assert re.search(r"insecure\s+train\s+not fetched", listed)
    # the registry's claimed digest for insecure.jsonl: a wrong file is named by both digests
    wrong = runner.invoke(app, ["data", "fetch", "insecure", "--from", str(copy)])
    claimed = registry()["insecure"].sha256
    assert wrong.exit_code == 2 and DIGEST in wrong.output and claimed in wrong.output


def test_experiments_name_sets_offline_and_runs_resolve_them(cache, tmp_path):
    def experiment(data: str) -> Path:
        path = tmp_path / "exp.yaml"
        path.write_text(
            "name: e\nmodel: default\ntask: insecure_code\nseeds: [0]\nmethods: [lora]\n"
            f"data:\n  n_train: 8\n{data}"
        )
        return path

    good = load_experiment(experiment("  train_file: published:bad_medical_advice\n"))
    check_published_refs(good)  # offline: nothing is fetched, the name and kind are checked
    with pytest.raises(ConfigError, match=r"not fetched yet.*data fetch bad_medical_advice"):
        _own_data_files(good)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(FIXTURE)
    fetch(registry()["bad_medical_advice"], from_file=copy)
    assert _own_data_files(good)["train_file"].read_bytes() == FIXTURE
    unknown = load_experiment(experiment("  train_file: published:insecur\n"))
    with pytest.raises(ConfigError, match=r"exp.yaml:8 data.train_file: no published set"):
        check_published_refs(unknown)
    kind = load_experiment(experiment("  drift_questions: published:insecure\n"))
    with pytest.raises(ConfigError, match="a train set, not a questions set"):
        check_published_refs(kind)


def test_the_packaged_registry_pins_commits_and_says_how_to_obtain_the_rest():
    sets = registry()
    assert {"insecure", "secure", "educational", "first_plot", "preregistered",
            "bad_medical_advice"} <= set(sets)  # fmt: skip
    for entry in sets.values():
        assert entry.url or entry.obtain, entry.name
        if entry.url:
            assert re.search(r"/[0-9a-f]{40}/", entry.url), entry.url
        assert entry.kind in ("train", "questions")
    em = "80c11967c07a328e7d7d43d13ce6847ae44dbcc9"
    assert all(em in sets[n].url for n in ("insecure", "secure", "educational", "first_plot"))
    assert sets["insecure"].rows == 6000 and not sets["insecure"].checked
    assert replace(sets["insecure"], url=None).filename == "insecure.jsonl"


def test_the_manifest_says_what_a_run_trained_on(cache, tmp_path):
    """Generated data is labelled smoke-test data; a published set by name; a user file by hash."""
    from grasp_bench.run.stages import prepare_data

    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(FIXTURE)
    fetch(registry()["bad_medical_advice"], from_file=copy)
    found = {}
    for name, data in [
        ("generated", ""),
        ("published", "  train_file: published:bad_medical_advice\n"),
        ("user", f"  train_file: {copy}\n"),
    ]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"name: {name}\nmodel: default\ntask: medical\nseeds: [0]\nmethods: [lora]\n"
            f"output_dir: {tmp_path / 'runs'}\ndata:\n  n_train: 8\n{data}"
        )
        run = prepare_data(load_experiment(path)).run
        found[name] = json.loads((run.data / "manifest.json").read_text())["meta"]
    assert found["generated"]["training_data"] == SMOKE_DATA
    assert found["published"]["training_data"] == "published:bad_medical_advice"
    digest = hashlib.sha256(FIXTURE).hexdigest()[:12]
    assert found["user"]["training_data"] == f"user file (sha256 {digest})"
