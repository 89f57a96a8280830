"""The report stage: the trade-off table and its files, the task's own seed-level report, and
the direction agreement table."""

from __future__ import annotations

import json
from pathlib import Path

from grasp_bench.core.rundir import DIRECTIONS, parse_target
from grasp_bench.core.store import (
    Stage,
    atomic_write_text,
    file_hash,
)
from grasp_bench.model.models import resolve_model
from grasp_bench.run.stages.base import RunStage, RunState, console
from grasp_bench.run.stages.score import CANARIES


class ReportStage(RunStage):
    """``report/``: results.{md,csv,json}, the plot, the task's seed-level files and the
    direction cosines. It is cheap, so it is rendered on every run; its manifest records the
    scores and targets it was rendered from and the files it wrote, and is rewritten only when
    those inputs change (a rerun of a finished run touches no manifest)."""

    name = "report"
    covers = ("report",)

    def run(self, state: RunState) -> None:
        from grasp_bench.evaluate.report import build_table, print_table, write_report

        exp, spec, run, data = state.exp, state.spec, state.run, state.data
        cfg = exp.config
        meta_rows = [
            {"target": t.name, "method": t.recipe.label, "seed": t.seed,
             "backend": state.backends[t.name]}
            for t in state.targets
        ]  # fmt: skip
        stage = Stage(
            run.root,
            run.report.name,
            {"scores": file_hash(run.scores), "targets": meta_rows, "task": cfg.task},
        )
        table = build_table(spec, state.records, meta_rows)
        title = f"{cfg.name}: task={cfg.task}, model={cfg.model}"
        meta = {
            "experiment": cfg.model_dump(mode="json"),
            "model_path": resolve_model(cfg.model),
            "targets": meta_rows,
            "training_data": data.training_data,
        }
        canaries = run.score / CANARIES
        if canaries.exists():  # the LLM judge's canary check, beside the numbers it vouches for
            meta["judge_canaries"] = [c["line"] for c in json.loads(canaries.read_text())]
        paths = write_report(table, run.report, title, meta)
        if spec.seed_report is not None:
            paths.update(spec.seed_report(run, state.records, meta_rows))
        cosines = direction_agreement(run.train)
        if cosines is not None:
            paths["direction_cosines"] = run.direction_cosines
            atomic_write_text(run.direction_cosines, cosines.to_csv(index=False))
            console.print(
                "directions vs the reference direction (|cos| of the first; span), per layer:"
            )
            for (target, ref), part in cosines.groupby(["target", "reference"], sort=True):
                console.print(
                    f"  {target} vs {ref}: |cos| mean {part['abs_cos'].mean():.3f},"
                    f" max {part['abs_cos'].max():.3f}; span mean {part['span_cos'].mean():.3f}"
                )
        if not stage.is_done():  # same inputs: the same files again, the manifest kept
            stage.finish(files=sorted(Path(p).name for p in paths.values()))
        print_table(table, title)
        console.print(f"[green]report[/] {run.report}")
        state.table, state.paths = table, paths


def direction_agreement(train_dir: Path):
    """How well each method's directions agree with a reference direction, per layer: the
    supervised difference of means of the same seed (or the planted truth a method was given as
    ``directions_file``). ``abs_cos`` compares the first direction, ``span_cos`` the whole span
    (|V^T u|, for k > 1). None if the run has no reference or nothing to compare."""
    import json

    import pandas as pd
    from safetensors import safe_open

    from grasp_bench.model.directions import cosine_by_layer, load_directions

    found = []
    for path in sorted(train_dir.glob(f"*/{DIRECTIONS}")):
        with safe_open(str(path), "pt") as fh:
            prov = json.loads(fh.metadata().get("provenance", "{}"))
        seed = str(parse_target(path.parent.name)[1])
        found.append((path.parent.name, seed, prov, load_directions(path)))
    references = {
        seed: (name, dirs)
        for name, seed, prov, dirs in found
        if prov.get("kind") in ("supervised", "file")
    }
    rows = []
    for name, seed, prov, dirs in found:
        if seed not in references or references[seed][0] == name:
            continue
        ref_name, ref = references[seed]
        for layer, cos in cosine_by_layer(dirs, ref).items():
            u = ref[layer][:, 0] / ref[layer][:, 0].norm()
            rows.append(
                {
                    "target": name,
                    "kind": prov.get("kind", ""),
                    "reading": prov.get("reading", ""),
                    "layer": layer,
                    "abs_cos": round(cos, 6),
                    "span_cos": round(float((dirs[layer].T @ u).norm()), 6),
                    "reference": ref_name,
                }
            )
    return pd.DataFrame(rows) if rows else None
