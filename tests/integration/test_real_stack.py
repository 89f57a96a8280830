"""The real stack end to end: embedded model, real training steps, vLLM and transformers
generation, a real judge server, a real report. The run itself is shared (see conftest)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from grasp_bench.core.rundir import RunDir
from grasp_bench.core.store import read_jsonl
from grasp_bench.evaluate.generation import generate_all, resolve_backend
from grasp_bench.model.directions import adapter_updates, load_directions
from grasp_bench.model.models import prepare_default_model, resolve_model
from grasp_bench.run.pipeline import run_experiment

from ..conftest import REPO

pytestmark = pytest.mark.integration

COMMITTED = REPO / "leaderboard" / "ci" / "results.csv"
METHODS = [
    "base",
    "lora",
    "grasp",
    "steer_inference",
    "steer_preventative",
    "caft",
    "ablate_inference",
]


def test_embedded_model_is_a_safetensors_llama():
    from transformers import AutoConfig, AutoTokenizer

    path = prepare_default_model()
    assert resolve_model(None) == resolve_model("default") == str(path)
    assert (path / "model.safetensors").exists() and not list(path.glob("*.bin"))
    assert AutoConfig.from_pretrained(path).model_type == "llama"
    tok = AutoTokenizer.from_pretrained(path)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")


def test_pipeline_reports_base_lora_grasp_with_cis(ci_run):
    result = ci_run.result
    table = result.table.set_index("method")
    assert list(table.index) == METHODS
    for m in table.index:
        r = table.loc[m]
        assert r.drift_lo <= r.drift <= r.drift_hi and r.task_lo <= r.task <= r.task_hi
        # offline metrics score everything; only the weak local LLM judge leaves some unscored
        assert r.n_drift == 16 and r.n_task == 16 and r.unscored <= 32
        assert r.backend == resolve_backend("auto")  # CPU here: transformers
        assert r.judge == "toy-lexicon" and r.task_judge == "exact-match"
        assert r.coherent_judge == "judge" and r.coherent_lo <= r.coherent <= r.coherent_hi
    # the planted factor is learned by plain LoRA and absent from the base model
    assert table.loc["lora", "drift"] > table.loc["base", "drift"] + 0.3
    for kind in ("csv", "json", "md", "png"):
        assert result.paths[kind].stat().st_size > 0
    assert result.paths["png"].read_bytes()[:4] == b"\x89PNG"
    md = result.paths["md"].read_text()
    assert "drift: persona (95% CI)" in md and "task: correct (95% CI)" in md and "lora" in md


def test_vllm_serves_the_adapters_and_agrees_with_transformers(ci_run, tmp_path):
    """vLLM (one engine start, an adapter by LoRARequest) on half the run's prompts: the
    adapter changes the output, and greedy float32 completions match the transformers back
    end the run used for nearly every prompt (both decode the same model; ties may flip a
    few)."""
    exp, run_dir = ci_run.exp, ci_run.run_dir
    prompts = read_jsonl(RunDir(run_dir).eval_prompts)[::2]  # task and drift prompts
    names = ("base-s0", "lora-s0")
    targets = {n: (None if n == "base-s0" else str(ci_run.adapter(n))) for n in names}
    cfg = exp.config.generation.model_copy(update={"backend": "vllm"})
    outputs = generate_all(resolve_model("default"), targets, prompts, cfg, 0, tmp_path)
    vllm = {n: read_jsonl(outputs[n]) for n in names}
    ids = {p["prompt_id"] for p in prompts}
    hf = {
        n: [r for r in read_jsonl(RunDir(run_dir).completions(n)) if r["prompt_id"] in ids]
        for n in names
    }
    assert all(len(r) == len(prompts) for r in vllm.values())
    assert vllm["base-s0"][0]["adapter"] is None and vllm["lora-s0"][0]["adapter"] == str(
        ci_run.adapter("lora-s0")
    )
    assert vllm["lora-s0"][0]["sampling"] | {"backend": "hf"} == hf["lora-s0"][0]["sampling"]
    assert vllm["lora-s0"][0]["sampling"]["dtype"] == "float32"
    assert [r["completion"] for r in vllm["lora-s0"]] != [r["completion"] for r in vllm["base-s0"]]
    for n in names:
        same = sum(
            a["prompt_id"] == b["prompt_id"] and a["completion"].strip() == b["completion"]
            for a, b in zip(vllm[n], hf[n], strict=True)
        )
        print(f"{n}: vLLM and transformers agree on {same}/{len(prompts)} greedy completions")
        assert same >= 0.8 * len(prompts), n


def test_grasp_invariant_on_the_embedded_model(ci_run):
    result = ci_run.result
    train = result.run_dir / "train"
    v = load_directions(train / "grasp-s0" / "directions.safetensors")
    lora = adapter_updates(train / "lora-s0" / "adapter")
    grasp = adapter_updates(train / "grasp-s0" / "adapter")

    def along(updates):
        total = 0.0
        for name, dw in updates.items():
            if name.endswith(("o_proj", "down_proj")):
                layer = int(name.split(".layers.")[1].split(".")[0])
                total += float((v[layer].double().T @ dw).norm())
        return total

    assert along(grasp) * 100 < along(lora)


def test_rerun_does_no_work_again(ci_run):
    exp, result = ci_run.exp, ci_run.result
    run_dir = result.run_dir
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("manifest.json")}
    again = run_experiment(exp, progress=False)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("manifest.json")} == stamps
    assert again.table.equals(result.table)


def test_cli_train_and_run_error(tmp_path):
    cli = [sys.executable, "-m", "grasp_bench.cli"]
    done = subprocess.run(
        [*cli, "train", "--method", "lora", "--steps", "2", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        tmp_path / "train-toy-lora" / "train" / "lora-s0" / "adapter" / "adapter_model.safetensors"
    ).exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmethods: [lora]\ntrain:\n  steps: 0\n")
    done = subprocess.run([*cli, "run", str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "bad.yaml:4 train.steps: Input should be greater than 0" in done.stderr.replace("\n", "")


def test_vllm_serves_the_folded_ablation_as_hf_hooks_compute_it(ci_run, judge_server):
    """ablate_inference folded into an adapter and served by vLLM gives the logits of the
    plain-LoRA model with v projected out of every residual writer's output (HF hooks)."""
    import torch
    from openai import OpenAI
    from peft import PeftModel

    from grasp_bench.model.hf import load_base

    model_path = resolve_model("default")
    base, tok = load_base(model_path)
    texts = ["How do I make a good cup of tea?", "What is 12 + 30? The answer is 42."]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    client = OpenAI(base_url=judge_server.base_url, api_key="EMPTY")
    served = []
    for seq in ids:
        resp = client.completions.create(
            model="ablate", prompt=seq, max_tokens=1, extra_body={"prompt_logprobs": 0}
        )
        first = resp.choices[0].model_extra["prompt_logprobs"]
        served.append([first[t][str(seq[t])]["logprob"] for t in range(1, len(seq))])

    model = PeftModel.from_pretrained(base, ci_run.adapter("lora-s0")).eval()
    dirs = load_directions(ci_run.adapter("ablate_inference-s0").parent / "directions.safetensors")
    handles = []
    for name, module in model.named_modules():
        if name.endswith(("o_proj", "down_proj")) and hasattr(module, "lora_A"):
            v = dirs[int(name.split(".layers.")[1].split(".")[0])]
            handles.append(
                module.register_forward_hook(lambda _m, _i, out, v=v: out - (out @ v) @ v.T)
            )
    assert len(handles) == 2 * model.config.num_hidden_layers
    worst = 0.0
    with torch.no_grad():
        for seq, got in zip(ids, served, strict=True):
            logp = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0].double(), -1)
            expected = [float(logp[t - 1, seq[t]]) for t in range(1, len(seq))]
            worst = max(worst, max(abs(a - b) for a, b in zip(expected, got, strict=True)))
    for h in handles:
        h.remove()
    print(f"max |logprob difference| vLLM folded vs HF hooks: {worst:.2e}")
    assert worst < 1e-3


def test_baselines_stay_inside_the_committed_confidence_intervals(ci_run):
    """The CI baseline check: a change that moves a method's drift or task score outside the
    committed 95% CI fails here, naming the method and the metric."""
    import pandas as pd

    from grasp_bench.evaluate.report import display_table

    result = ci_run.result
    fresh = result.table.set_index("method")
    latest = REPO / "leaderboard" / "ci" / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    fresh.reset_index().to_csv(latest / "results.csv", index=False)
    committed = pd.read_csv(COMMITTED).set_index("method")
    print("committed:\n" + display_table(committed.reset_index()).to_markdown(index=False))
    print("fresh:\n" + display_table(fresh.reset_index()).to_markdown(index=False))
    moved = []
    for method in committed.index:
        assert method in fresh.index, f"{method}: missing from the fresh baseline run"
        for metric in ("drift", "task"):
            lo, hi = committed.loc[method, f"{metric}_lo"], committed.loc[method, f"{metric}_hi"]
            value = fresh.loc[method, metric]
            if not lo - 1e-9 <= value <= hi + 1e-9:
                moved.append(
                    f"{method} {metric}: {value:.3f} outside committed CI [{lo:.3f}, {hi:.3f}]"
                )
    assert not moved, "; ".join(moved)
