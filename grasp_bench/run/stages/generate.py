"""The generate stage: every target's completions of the eval prompts."""

from __future__ import annotations

from grasp_bench.core.hardware import describe as describe_machine
from grasp_bench.core.store import (
    Stage,
    read_jsonl,
    stable_hash,
)
from grasp_bench.run.stages.base import RunStage, RunState, adapter_identity


class GenerateStage(RunStage):
    """``generate/<target>.jsonl``: every target's completions of the eval prompts, by vLLM (one
    engine start for the base model and every adapter) or batched transformers, whichever the
    generation config resolves to on this machine; methods whose intervention needs activation
    hooks always go through transformers. Inputs: the model, the generation settings as asked
    and as resolved, the prompts, and each target's adapter identity (a new seed or method
    generates only its own)."""

    name = "generate"
    covers = ("generate",)

    def run(self, state: RunState) -> None:
        from grasp_bench.evaluate.generation import (
            generate_all,
            generate_hf,
            resolve_backend,
            resolve_generation_dtype,
        )

        cfg, data, targets, run = state.exp.config, state.data, state.targets, state.run
        backend = resolve_backend(cfg.generation.backend)
        dtype = resolve_generation_dtype(cfg.generation.dtype, backend)
        generation = cfg.generation.model_copy(update={"dtype": dtype})
        gen_targets = {t.name: (str(t.adapter) if t.adapter else None) for t in targets}
        hooked = {t.name for t in targets if t.recipe.method.serving == "hf-hooks"}
        shared = {
            "model": data.model,
            "generation": cfg.generation.model_dump(),
            "resolved": {"backend": backend, "dtype": dtype},
            "prompts": stable_hash(data.eval_prompts),
        }
        adapters = {t.name: stable_hash(adapter_identity(t.adapter)) for t in targets}
        stage = Stage(run.root, run.generate.name, {**shared, "targets": adapters})
        if not stage.is_done():
            stage.reset_if_stale(
                keys={
                    run.completions(n).name: stable_hash({**shared, "adapter": a})
                    for n, a in adapters.items()
                }
            )
            served = {n: a for n, a in gen_targets.items() if backend == "vllm" and n not in hooked}
            if served:
                generate_all(
                    data.model,
                    served,
                    data.eval_prompts,
                    generation,
                    generation.seed,
                    stage.dir,
                    trust_remote_code=cfg.trust_remote_code,
                )
            for t in targets:
                if t.name not in served:
                    generate_hf(
                        data.model,
                        t.name,
                        gen_targets[t.name],
                        data.eval_prompts,
                        generation,
                        generation.seed,
                        stage.dir,
                        method=t.recipe.method,
                        trust_remote_code=cfg.trust_remote_code,
                    )
            stage.finish(
                targets=sorted(gen_targets),
                backends={n: "vllm" if n in served else "hf" for n in gen_targets},
                dtype=dtype,
                machine=describe_machine(),
            )
        state.completions = [
            row for name in gen_targets for row in read_jsonl(run.completions(name))
        ]
        state.backends = stage.manifest()["backends"]
        state.generate_hash = stage.config_hash
