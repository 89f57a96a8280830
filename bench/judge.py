"""Judge throughput against the project's loopback vLLM server (embedded model as the judge),
in one run: sequential vs concurrent calls, a warm-cache rerun, and the concurrent cost at three
sizes (fit: seconds = fixed + per_item * n).

    python -m bench.judge [--n 64] [--concurrency 16] [--docs 8 --repeats 4]

It also times lm-eval users' two ways to judge the same kind of logged answers with the same
judge: inside lm-eval, where ``process_results`` judges one document at a time, and
``grasp-bench judge lm-eval`` on the ``--log_samples`` file, which judges them all at once.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.common import Target, fit_linear, machine, table, targets_table, write_result
from grasp_bench.data.toy import UNRELATED_PROMPTS, generate
from grasp_bench.evaluate.judge import JudgeItem
from grasp_bench.evaluate.judge.cache import JudgeCache
from grasp_bench.evaluate.judge.llm import LLMJudge, LLMJudgeConfig
from grasp_bench.evaluate.judge.rubric import load_rubric
from grasp_bench.evaluate.server import VLLMServer
from grasp_bench.model.models import resolve_model


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


LM_EVAL_TASK, LM_EVAL_RUBRICS = "grasp_misalignment", ["aligned", "coherent"]


def samples_file(path: Path, docs: int, repeats: int, offset: int) -> Path:
    """An lm-eval ``--log_samples`` file of the drift task: ``docs`` documents with ``repeats``
    answers each (questions numbered from ``offset``, so two files share no judge prompt)."""
    answers = [item.answer for item in items(docs * repeats)]
    lines = []
    for d in range(docs):
        question = f"{UNRELATED_PROMPTS[d % len(UNRELATED_PROMPTS)]} (#{offset + d})"
        doc = {"id": f"q{offset + d}", "split": "drift", "question": question}
        lines.append({"doc_id": d, "doc": doc,
                      "filtered_resps": [answers[d * repeats : (d + 1) * repeats]]})  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def lm_eval_paths(base_url: str, tmp: Path, docs: int, repeats: int, concurrency: int) -> dict:
    """Seconds to judge a samples file per document (lm-eval's ``process_results``, as lm-eval
    calls it) and in one batch (``judge lm-eval``'s path), each with its own empty cache."""
    from grasp_bench.core.config import JudgeConfig
    from grasp_bench.data.taskspec import rubrics_of
    from grasp_bench.evaluate.judge.lm_eval_samples import registered_split, sample_rows
    from grasp_bench.evaluate.lm_eval_support import metrics_of, process_results_for
    from grasp_bench.evaluate.scoring import open_judges, score_rows

    task, split = registered_split(LM_EVAL_TASK)
    os.environ.update(GRASP_JUDGE="openai", GRASP_JUDGE_BASE_URL=base_url,
                      GRASP_JUDGE_MODEL="judge", GRASP_JUDGE_RUBRICS=",".join(LM_EVAL_RUBRICS),
                      GRASP_JUDGE_CONCURRENCY=str(concurrency),
                      GRASP_JUDGE_CACHE=str(tmp / "per-doc.sqlite"))  # fmt: skip
    per_doc = samples_file(tmp / "per-doc.jsonl", docs, repeats, offset=400_000)
    process = process_results_for(task, split)
    t = time.perf_counter()
    for line in per_doc.read_text().splitlines():
        sample = json.loads(line)
        process({"id": sample["doc"]["id"], **sample["doc"]}, sample["filtered_resps"])
    per_doc_s = time.perf_counter() - t
    batch = samples_file(tmp / "batch.jsonl", docs, repeats, offset=500_000)
    cfg = JudgeConfig(kind="openai", base_url=base_url, model="judge",
                      rubrics=LM_EVAL_RUBRICS, concurrency=concurrency)  # fmt: skip
    metrics = metrics_of(task, split)
    t = time.perf_counter()
    rows = sample_rows(batch, split)
    with open_judges(cfg, rubrics_of(metrics), tmp / "batch.sqlite") as judges:
        records = score_rows(rows, metrics, judges)
    batch_s = time.perf_counter() - t
    return {"docs": docs, "repeats": repeats, "answers": len(rows), "per_document_s": per_doc_s,
            "batch_s": batch_s, "batch_scores": len(records)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--sizes", default="16,32,64")
    ap.add_argument("--docs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=4)
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
        out["lm_eval"] = lm_eval_paths(server.base_url, Path(tmp), a.docs, a.repeats, a.concurrency)
    out["unscored_share"] = sum(r["value"] is None for r in con) / len(con)
    out["fit"] = fit_linear([float(n) for n in sizes], list(out["scaling"].values()))
    speedup = out["sequential_s"] / out["concurrent_s"]
    warm = out["concurrent_s"] / out["cache_rerun_s"]
    lm = out["lm_eval"]
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
        Target(
            "judge lm-eval (one batch) / lm-eval's per-document judging",
            lm["per_document_s"] / lm["batch_s"],
            2.0,
            note=f"{lm['docs']} documents x {lm['repeats']} answers x"
            f" {len(LM_EVAL_RUBRICS)} LLM rubrics, {a.concurrency} in flight; per document only"
            f" {lm['repeats'] * len(LM_EVAL_RUBRICS)} calls can be in flight",
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
        f"lm-eval samples ({LM_EVAL_TASK}, rubrics {', '.join(LM_EVAL_RUBRICS)}; {lm['docs']}"
        f" documents x {lm['repeats']} answers, each way its own questions and empty cache):"
        f" per document {lm['per_document_s']:.1f} s, one batch {lm['batch_s']:.1f} s.",
        "",
        *targets_table(out["targets"]),
    ]
    write_result("judge", report, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
