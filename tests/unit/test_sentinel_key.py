"""The judge's API key reaches the endpoint and nothing else: a whole run, submit and board build
with an ``openai`` judge at a local fake OpenAI-compatible server, the key a unique sentinel in
the variable ``api_key_env`` names; afterwards not one byte of it is in any file written (run
directory, board, judge cache and its WAL, logs) nor in anything the commands printed. The
server answers some calls with a 401 that quotes the key, as real endpoints do."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from grasp_bench.evaluate.judge.canary import canaries
from tests.unit.test_crash_resume import EXPERIMENT, REPO, run_cli, warm_imports

JUDGE = """\
judge:
  kind: openai
  model: fake-judge
  base_url: http://127.0.0.1:{port}/v1
  rubrics: [aligned]
  api_key_env: GRASP_TEST_SENTINEL_KEY
  cache: {cache}
  concurrency: 2
  max_retries: 0
  timeout: 20
"""


class FakeOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``: a grade of 85 for the right bearer key; a 401 quoting
    the key for the first few calls, and for a wrong key."""

    key: str = ""
    seen: list[str] = []  # noqa: RUF012  (one server per test)
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        with self.lock:  # the server is threaded: a call's number is fixed when it arrives
            self.seen.append(auth)
            number = len(self.seen)
        # the canaries are graded first (judge/canary.py); the three calls after them refused
        refused = len(canaries("aligned")) < number <= len(canaries("aligned")) + 3
        if auth != f"Bearer {self.key}" or refused:
            self._send(
                401,
                {
                    "error": {
                        "message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
            return
        self._send(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "85"},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def endpoint():
    sentinel = f"sk-sentinel-{secrets.token_hex(16)}"
    FakeOpenAI.key, FakeOpenAI.seen = sentinel, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], sentinel
    finally:
        server.shutdown()
        server.server_close()


def test_the_key_is_sent_to_the_judge_and_written_nowhere(tiny_model, tmp_path, endpoint):
    port, sentinel = endpoint
    warm_imports()
    cache = tmp_path / "cache" / "judge.sqlite"
    exp = tmp_path / "crash.yaml"
    text = EXPERIMENT.format(model=tiny_model, repo=REPO, out=tmp_path / "runs")
    exp.write_text(text.replace("judge: offline\n", JUDGE.format(port=port, cache=cache)))
    run, board = tmp_path / "runs" / "crash", tmp_path / "board"
    env = {"GRASP_TEST_SENTINEL_KEY": sentinel, "NO_PROXY": "127.0.0.1,localhost"}
    printed = []
    for i, args in enumerate(
        (
            ["run", str(exp)],
            ["submit", str(run), "--board", str(board)],
            ["leaderboard", "build", str(board)],
        )
    ):
        done = run_cli(args, tmp_path / "logs" / f"{i}.txt", env=env)
        assert done.code == 0, done.output
        printed.append(done.output)

    # the judge was really called, with the key, and graded (the first calls refused)
    assert FakeOpenAI.seen and set(FakeOpenAI.seen) == {f"Bearer {sentinel}"}
    scores = [json.loads(line) for line in (run / "score" / "scores.jsonl").open()]
    aligned = [s for s in scores if s["metric"] == "aligned"]
    assert len(aligned) == 2 * 8  # targets x prompts
    assert sum(s["value"] is None for s in aligned) == 3
    checked = json.loads((run / "score" / "canaries.json").read_text())
    assert checked[0]["status"] == "baseline recorded" and None not in checked[0]["grades"]
    assert all("401" in s["reason"] and "***" in s["reason"] for s in aligned if s["value"] is None)
    with sqlite3.connect(cache) as conn:
        cached = conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    assert 0 < cached <= 2 * 8 - 3  # grades only (same answer, same key), failures never

    # and the key is nowhere: every file under the test's folder, byte for byte
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {run / "report" / "results.json", board / "index.html", cache} <= set(written)
    for path in written:
        assert sentinel.encode() not in path.read_bytes(), path
    for output in printed:
        assert sentinel not in output
