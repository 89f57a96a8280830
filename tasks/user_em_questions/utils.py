"""lm-eval hooks of user_em_questions; the shared logic: grasp_bench.evaluate.lm_eval_support."""

from grasp_bench.evaluate import lm_eval_support

load_eval = lm_eval_support.em_question_loader("GRASP_EM_QUESTIONS")
process_results = lm_eval_support.process_results_for("insecure_code", "drift")
