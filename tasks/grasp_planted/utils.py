"""lm-eval hooks of grasp_planted: the all split of the registered task 'planted'.

Written by `grasp-bench tasks export` from the task's spec; the shared logic is in
grasp_bench.evaluate.lm_eval_support."""

from pathlib import Path

from grasp_bench.evaluate import lm_eval_support

load_eval = lm_eval_support.loader(Path(__file__).parent / "eval.jsonl")
process_results = lm_eval_support.process_results_for("planted", "all")
