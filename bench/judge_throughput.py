"""Judge throughput against the project's loopback vLLM server (embedded model), in one run:
sequential vs concurrent calls (ratio), a cache-hit rerun, the unscored share, and how the
offline embedding judge agrees with the LLM judge.

    .venv/bin/python bench/judge_throughput.py [--run runs/toy-demo] [--n 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from grasp_bench.judge import JudgeItem
from grasp_bench.judge.cache import JudgeCache
from grasp_bench.judge.embedding import EmbeddingJudge, agreement
from grasp_bench.judge.llm import LLMJudge, LLMJudgeConfig
from grasp_bench.judge.rubric import load_rubric
from grasp_bench.models import resolve_model
from grasp_bench.server import VLLMServer
from grasp_bench.store import read_jsonl


def items_from(run: Path, n: int) -> list[JudgeItem]:
    rows = [r for p in sorted((run / "generate").glob("*.jsonl")) for r in read_jsonl(p)]
    rows = [r for r in rows if r["split"] == "drift"] or rows
    return [JudgeItem(r["prompt"], r["completion"]) for r in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=Path("runs/toy-demo"))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    items = items_from(args.run, args.n)
    rubric = load_rubric("aligned")
    out: dict[str, float | int | dict] = {"items": len(items)}
    with tempfile.TemporaryDirectory() as tmp, VLLMServer(resolve_model("default")) as server:

        def judge(concurrency: int, cache: JudgeCache | None) -> LLMJudge:
            cfg = LLMJudgeConfig(model="judge", base_url=server.base_url, concurrency=concurrency)
            return LLMJudge(cfg, cache)

        judge(1, None).score(rubric, items[:4], progress=False)  # warm-up
        t = time.perf_counter()
        judge(1, None).score(rubric, items, progress=False)
        out["sequential_s"] = time.perf_counter() - t
        cache = JudgeCache(Path(tmp) / "c.sqlite")
        t = time.perf_counter()
        records = judge(args.concurrency, cache).score(rubric, items, progress=False)
        out["concurrent_s"] = time.perf_counter() - t
        rerun = judge(args.concurrency, cache)
        t = time.perf_counter()
        rerun.score(rubric, items, progress=False)
        out["cache_rerun_s"] = time.perf_counter() - t
        out["cache_rerun_calls"] = rerun.calls
    out["concurrent_speedup"] = out["sequential_s"] / out["concurrent_s"]
    out["cache_rerun_fraction_of_concurrent"] = out["cache_rerun_s"] / out["concurrent_s"]
    llm = [r["value"] for r in records]
    out["unscored_share"] = sum(v is None for v in llm) / len(llm)
    emb = [r["value"] for r in EmbeddingJudge("aligned").score([i.answer for i in items])]
    out["embedding_vs_llm"] = agreement(llm, emb, 30, 30)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
