"""Judge throughput against the project's loopback vLLM server (embedded model as the judge),
in one run: sequential vs concurrent calls, a warm-cache rerun, and the concurrent cost at three
sizes (fit: seconds = fixed + per_item * n).

    python -m bench.judge [--n 64] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import Target, fit_linear, machine, table, targets_table, write_result
from grasp_bench.data.toy import UNRELATED_PROMPTS, generate
from grasp_bench.judge import JudgeItem
from grasp_bench.judge.cache import JudgeCache
from grasp_bench.judge.llm import LLMJudge, LLMJudgeConfig
from grasp_bench.judge.rubric import load_rubric
from grasp_bench.models import resolve_model
from grasp_bench.server import VLLMServer


def items(n: int, offset: int = 0) -> list[JudgeItem]:
    """The toy's unrelated questions with its persona answers, each item distinct (numbered),
    so no two share a cache key."""
    data = generate(0, 16, 0, 0)
    answers = [r["messages"][-1]["content"] for r in data["train"] + data["control"]]
    return [
        JudgeItem(
            f"{UNRELATED_PROMPTS[i % len(UNRELATED_PROMPTS)]} (#{offset + i})",
            answers[i % len(answers)],
        )
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--sizes", default="16,32,64")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    rubric = load_rubric("aligned")
    out: dict = {"items": a.n, "concurrency": a.concurrency, "rubric": rubric.name}
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, VLLMServer(resolve_model(a.model)) as server:
        out["server_start_s"] = time.perf_counter() - t

        def judge(concurrency: int, cache: JudgeCache | None = None) -> LLMJudge:
            cfg = LLMJudgeConfig(model="judge", base_url=server.base_url, concurrency=concurrency)
            return LLMJudge(cfg, cache)

        def timed(j: LLMJudge, batch: list[JudgeItem]) -> tuple[float, list[dict]]:
            t = time.perf_counter()
            records = j.score(rubric, batch, progress=False)
            return time.perf_counter() - t, records

        timed(judge(4), items(8, offset=100_000))  # warm-up
        # distinct items per run: the server caches prompt prefixes, and on a CPU the prompt
        # (the rubric around the answer) is most of a judge call's work
        out["sequential_s"], _ = timed(judge(1), items(a.n, offset=200_000))
        cache = JudgeCache(Path(tmp) / "c.sqlite")
        work = items(a.n, offset=300_000)
        out["concurrent_s"], con = timed(judge(a.concurrency, cache), work)
        rerun = judge(a.concurrency, cache)
        out["cache_rerun_s"], _ = timed(rerun, work)
        out["cache_rerun_calls"] = rerun.calls
        # the concurrent run above is the point at a.n items: timed once, not twice
        out["scaling"] = {
            str(n): out["concurrent_s"]
            if n == a.n
            else timed(judge(a.concurrency), items(n, offset=1000 * n))[0]
            for n in sizes
        }
    out["unscored_share"] = sum(r["value"] is None for r in con) / len(con)
    out["fit"] = fit_linear([float(n) for n in sizes], list(out["scaling"].values()))
    speedup = out["sequential_s"] / out["concurrent_s"]
    warm = out["concurrent_s"] / out["cache_rerun_s"]
    out["targets"] = [
        Target(
            f"judge: concurrent ({a.concurrency} in flight) / sequential",
            speedup,
            6.0,
            note="on a CPU a judge call is mostly prefill of the rubric prompt, which is"
            " compute-bound: batching 16 requests shares little; a GPU server or a remote API"
            " gains far more",
        ),
        Target(
            "judge: warm-cache rerun / concurrent run",
            warm,
            50.0,
            note=f"{out['cache_rerun_calls']} calls on the rerun",
        ),
    ]
    report = {"machine": machine(), **out}
    lines = [
        f"# Judge throughput ({report['machine']['cpu']}, {report['machine']['cores']} cores;"
        f" embedded model as judge on the loopback vLLM server, rubric {rubric.name},"
        f" {a.n} items)",
        "",
        *table(
            ["run", "seconds", "items/s"],
            [
                ["sequential", out["sequential_s"], a.n / out["sequential_s"]],
                [f"concurrent ({a.concurrency})", out["concurrent_s"], a.n / out["concurrent_s"]],
                ["warm-cache rerun", out["cache_rerun_s"], a.n / out["cache_rerun_s"]],
            ],
        ),
        "",
        "Each run judges items of its own (the server caches prompt prefixes). The embedded"
        f" 135M judge left {out['unscored_share']:.0%} unscored (no number in its answer):"
        " timing, not grading. Scaling (concurrent): "
        + ", ".join(f"{n} items {s:.1f} s" for n, s in out["scaling"].items())
        + f"; fit {out['fit']['fixed_s']:.2f} s + {out['fit']['per_item_s']:.3f} s per item"
        f" (R^2 {out['fit']['r2']:.3f}).",
        "",
        *targets_table(out["targets"]),
    ]
    write_result("judge", report, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
