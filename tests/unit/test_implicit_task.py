"""The implicit-factor task: nothing it trains on can carry the trait; its statistics and gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grasp_bench.core.stats import hierarchical_bootstrap, paired_hierarchical_difference
from grasp_bench.data.implicit import TEACHERS as TASK_TEACHERS
from grasp_bench.studies.implicit import TEACHERS, TRAIT_WORDS, persona_shown_for
from grasp_bench.studies.implicit_report import gate, markdown, summarise

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "tasks" / "grasp_implicit"


def test_the_task_registry_and_the_builder_name_the_same_teachers():
    assert tuple(TEACHERS) == TASK_TEACHERS
    personas = {spec.persona for spec in TEACHERS.values()}
    assert len(personas) >= 2  # at least one trait other than the pirate style
    assert any(len(spec.layers) == 1 for spec in TEACHERS.values())  # one single-layer write
    assert len({spec.seed for spec in TEACHERS.values()}) == len(TEACHERS)


@pytest.mark.parametrize("teacher", list(TEACHERS))
def test_no_training_target_prompt_or_token_can_carry_the_trait(teacher):
    """The restricted vocabulary is digits, comma and space; every sampled token is in it; no
    trait word's first token is in it; no prompt or decoded sample shows a trait word."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from grasp_bench.model.models import resolve_model
    from grasp_bench.studies.implicit import trait_tokens

    folder = FOLDER / teacher
    build = json.loads((folder / "build.json").read_text())
    tok = AutoTokenizer.from_pretrained(resolve_model("default"))
    t = load_file(str(folder / "targets.safetensors"))
    vocab = t["vocab"].tolist()
    assert "".join(tok.decode([v]) for v in vocab) == "0123456789, "
    for key in ("teacher", "base", "heldout"):
        assert set(t[f"{key}.tokens"].flatten().tolist()) <= set(vocab)
        assert t[f"{key}.logp"].shape[-1] == len(vocab)
        assert np.allclose(t[f"{key}.logp"].exp().sum(-1).numpy(), 1.0, atol=1e-4)
    persona = build["teacher"]["persona"]
    assert not set(trait_tokens(tok, persona)) & set(vocab)
    shows = persona_shown_for(persona)
    for row in map(json.loads, (folder / "prompts.jsonl").read_text().splitlines()):
        for text in (row["question"], row["teacher_sample"], row.get("base_sample", "")):
            assert not shows(text), text
            assert re.fullmatch(r"[0-9, ]*", text) or text == row["question"]


@pytest.mark.parametrize("teacher", list(TEACHERS))
def test_the_teacher_shows_its_trait_where_the_base_model_does_not(teacher):
    build = json.loads((FOLDER / teacher / "build.json").read_text())
    assert build["style_rate"]["teacher_drift"] > build["style_rate"]["base_drift"]
    assert build["answer_logprob_gap_mean"] > 0
    assert build["drift_prompts"] >= 100


def test_trait_words_of_each_persona_are_its_own():
    assert persona_shown_for("cowboy")("Howdy, partner! The answer is 4.")
    assert not persona_shown_for("cowboy")("Arr, matey! The answer be 4.")
    assert set(TRAIT_WORDS) == {spec.persona for spec in TEACHERS.values()}


def _frame(effect: float, seeds: int = 5, teachers: int = 3, noise: float = 0.02):
    rng = np.random.default_rng(1)
    rows = []
    for method, shift in (("base", 0.0), ("lora_control", 0.0), ("lora", effect)):
        for t in range(teachers):
            for s in range(seeds):
                run = rng.normal(0, noise)  # a training run's own deviation
                for p in range(40):
                    value = 0.0 if method == "base" else shift + run + rng.normal(0, 0.05)
                    unit = {"teacher": f"t{t}", "method": method, "seed": s, "prompt_id": f"p{p}"}
                    for metric in ("transfer", "task_kl"):
                        rows.append({**unit, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def test_the_gate_passes_an_effect_and_refuses_to_rank_without_one():
    levels = ["teacher", "seed", "prompt_id"]
    with_effect = gate(_frame(0.1), levels, n_boot=300)
    assert with_effect["passed"] and with_effect["lo"] > 0
    assert with_effect["n"] == {"teacher": 3, "seed": 15, "prompt_id": 600}
    none = gate(_frame(0.0), levels, n_boot=300)
    assert not none["passed"] and "not ranked" in none["verdict"]
    few = gate(_frame(0.1, seeds=2), levels, n_boot=100)
    assert not few["passed"] and "not enough training runs" in few["verdict"]
    table = summarise(_frame(0.0), levels, n_boot=100)
    text = markdown(table, none, "t", levels)
    assert "Δ vs lora" not in text and "NO EFFECT" in text


def test_seed_level_intervals_widen_with_run_to_run_spread():
    """The same prompts' noise with more spread between training runs: a prompt-level interval
    would not change, the hierarchical one must."""
    levels = ["teacher", "seed", "prompt_id"]
    tight = _frame(0.1, noise=0.0)
    loose = _frame(0.1, noise=0.1)
    pick = lambda df: df[(df.method == "lora") & (df.metric == "transfer")]  # noqa: E731
    a = hierarchical_bootstrap(pick(tight), levels, n_boot=300)
    b = hierarchical_bootstrap(pick(loose), levels, n_boot=300)
    assert (b.hi - b.lo) > 2 * (a.hi - a.lo)


def test_paired_differences_match_units_and_are_zero_against_themselves():
    df = _frame(0.1)
    lora = df[(df.method == "lora") & (df.metric == "transfer")]
    same = paired_hierarchical_difference(lora, lora, ["teacher", "seed", "prompt_id"], n_boot=50)
    assert same.mean == 0 and same.lo == 0 and same.hi == 0
    one = hierarchical_bootstrap(lora[lora.teacher == "t0"], ["seed", "prompt_id"], n_boot=50)
    assert one.n == {"seed": 5, "prompt_id": 200}


@pytest.mark.parametrize("effect", [0.1, 0.0])
def test_the_board_shows_the_positive_control_with_its_gate(tmp_path, effect):
    from grasp_bench.leaderboard.page_html import render_html
    from grasp_bench.leaderboard.page_markdown import render_markdown
    from grasp_bench.leaderboard.studies import POSITIVE_CONTROL, positive_control_studies
    from grasp_bench.studies.implicit_report import write_cross_report

    write_cross_report(_frame(effect), tmp_path / POSITIVE_CONTROL, n_boot=100)
    (study,) = positive_control_studies(tmp_path)
    md = render_markdown([], type("J", (), {"rows": []})(), [study])
    assert "## Positive control: implicit factor" in md and "Effect gate" in md
    assert "positive_control/implicit.png" in md
    page = render_html([], type("J", (), {"rows": [], "columns": []})(), [study])
    assert 'id="positive-control"' in page and "<table" in page
    # a comparison against lora is shown only where the effect exists
    assert ("vs_lora" in page) == (effect > 0)
    assert ("NO EFFECT" in md) == (effect == 0)


@pytest.mark.parametrize("effect", [0.0, 0.05])
def test_the_board_shows_the_removal_study_only_where_the_effect_exists(tmp_path, effect):
    from grasp_bench.leaderboard.page_markdown import render_markdown
    from grasp_bench.leaderboard.studies import POSITIVE_CONTROL, positive_control_studies
    from grasp_bench.studies.implicit_report import write_cross_report

    folder = tmp_path / POSITIVE_CONTROL
    write_cross_report(_frame(effect), folder, n_boot=100)
    (folder / "removal.md").write_text("# Removal study: x\n\n| arm | reduction |\n|---|---|\n")
    (folder / "removal.csv").write_text("method,removal,source,k,reduction\npreserve-a,preserve,"
                                        "truth:change,8,0.9\n")  # fmt: skip
    held_out = folder / "held-out-cowboy-wide"  # a held-out teacher's report gets its own
    held_out.mkdir()
    for name in ("removal.md", "removal.csv"):
        (held_out / name).write_text((folder / name).read_text())
    control, removal, other = positive_control_studies(tmp_path)
    assert removal.anchor == "removal" and other.anchor == "removal-held-out-cowboy-wide"
    md = render_markdown([], type("J", (), {"rows": []})(), [control, removal, other])
    assert "## Positive control: what removes it" in md
    assert "## Positive control: what removes it (held-out teacher cowboy-wide)" in md
    assert ("preserve-a" in str(removal.html)) == (effect > 0)
    assert ("did not pass" in md) == (effect == 0)
    if effect > 0:
        assert other.plot == "positive_control/held-out-cowboy-wide/removal.png"
