"""One real run that the integration tests share, and one vLLM server they all talk to.

Starting vLLM and training adapters are the expensive parts of the real stack, so the suite
does each once: the CI baseline experiment is trained and generated once (``ci_generated``);
one OpenAI-compatible vLLM server (the ``local`` judge's server, with the run's adapters
loaded) then judges that run, serves lm-eval, answers the judge tests and the prompt-logprob
check (``judge_server``); ``ci_run`` is the finished run with its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from grasp_bench.core.config import JudgeConfig, LoadedExperiment, load_experiment
from grasp_bench.core.rundir import RunDir
from grasp_bench.evaluate.scoring import local_judge_server
from grasp_bench.run.pipeline import RunResult, run_experiment

from ..conftest import REPO

CI_EXPERIMENT = REPO / "experiments" / "ci-baselines.yaml"


@dataclass
class SharedRun:
    exp: LoadedExperiment
    run_dir: Path
    result: RunResult

    def adapter(self, target: str) -> Path:
        return RunDir(self.run_dir).adapter(target)


@pytest.fixture(scope="session")
def ci_generated(tmp_path_factory) -> SharedRun:
    """The CI baseline experiment trained and generated (not yet judged)."""
    exp = load_experiment(CI_EXPERIMENT)
    exp.config.output_dir = str(tmp_path_factory.mktemp("runs"))
    result = run_experiment(exp, progress=False, until="generate")
    return SharedRun(exp, result.run_dir, result)


@pytest.fixture(scope="session")
def judge_server(ci_generated, tmp_path_factory):
    """The experiment's own ``local`` judge server, started once, with two of the run's
    adapters loaded by name (``grasp-lora``: plain LoRA; ``ablate``: the folded ablation)."""
    log = tmp_path_factory.mktemp("server") / "vllm.log"
    loras = {
        "grasp-lora": str(ci_generated.adapter("lora-s0")),
        "ablate": str(ci_generated.adapter("ablate_inference-s0")),
    }
    with local_judge_server(ci_generated.exp.config.judge, log, loras=loras) as server:
        yield server


@pytest.fixture(scope="session")
def ci_run(ci_generated, judge_server) -> SharedRun:
    """The CI run judged by the running server (the same model and rubrics as the
    experiment's ``local`` judge, reached as an ``openai`` endpoint) and reported."""
    exp = ci_generated.exp
    local = exp.config.judge
    assert local.kind == "local", "the CI experiment is meant to use the local judge"
    exp.config.judge = JudgeConfig(
        kind="openai",
        base_url=judge_server.base_url,
        model=judge_server.served_name,
        rubrics=local.rubrics,
        api_key_env="GRASP_TEST_UNSET_KEY",
    )
    result = run_experiment(exp, progress=False)
    return SharedRun(exp, result.run_dir, result)
