"""The built leaderboard page in real headless Chromium (Debian's chromium, driven by
playwright): it loads from a file, a section per task shows its submissions, the model and
judge filters hide rows, sorting works, seeds are a count, every plot loads, every link
resolves to a file of the board, and the judge's calibration sits beside the headline."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from .test_leaderboard import CALIBRATED, JUDGE, make_submission, write_calibration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OTHER_JUDGE = {"kind": "openai", "model": "gpt-4o", "name": "gpt-4o", "rubric_version": 2}


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """toy: four methods on model "tiny" (a calibrated judge) and two on "small" (a judge no
    file calibrates, three seeds); insecure_code: three methods on "tiny". Built once."""
    from grasp_bench.leaderboard.build import build_board

    tmp_path = tmp_path_factory.mktemp("board")

    for method, drift, task in (
        ("base", 0.0, 0.1),
        ("lora", 0.9, 0.6),
        ("grasp", 0.5, 0.5),
        ("caft", 0.2, 0.3),
    ):
        make_submission(tmp_path, method, drift, task)
    for method, drift, task in (("lora", 0.8, 0.7), ("grasp", 0.3, 0.6)):
        make_submission(
            tmp_path, method, drift, task, seeds=(0, 1, 2), model="small", judge=OTHER_JUDGE
        )
    for method, drift, task in (("base", 0.05, 0.0), ("lora", 0.4, 0.7), ("caft", 0.1, 0.6)):
        make_submission(tmp_path, method, drift, task, task_name="insecure_code")
    write_calibration(tmp_path)
    build_board(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium"), "Debian chromium is not installed (scripts/install.sh)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, board):
    """The page freshly loaded (no filter or sort left from another test), failing on any
    JavaScript error."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((board / "index.html").as_uri())
    yield page
    page.close()
    assert not errors, errors


def _column(page, task: str, header: str) -> list[str]:
    """The visible texts of a column of a task's table, found by its header."""
    heads = page.locator(f"#task-{task} table th").all_inner_texts()
    col = heads.index(header) + 1
    rows = page.locator(f"#task-{task} tbody tr:visible")
    return [t.strip() for t in rows.locator(f"td:nth-child({col})").all_inner_texts()]


def test_a_section_per_task_with_its_own_metrics(page):
    toy = page.locator("#task-toy tbody tr")
    assert toy.count() == 6 and page.locator("#task-insecure_code tbody tr").count() == 3
    methods = [m.split()[0] for m in _column(page, "insecure_code", "method")]
    assert sorted(methods) == ["base", "caft", "lora"]
    heads = page.locator("#task-insecure_code th").all_inner_texts()
    assert "misaligned (drift)" in heads and "vulnerable (task)" in heads
    assert "persona (drift)" in page.locator("#task-toy th").all_inner_texts()
    # a one-line explanation per column, on the header and in the legend
    title = page.locator("#task-insecure_code th", has_text="misaligned (drift)")
    assert "lower is better" in title.get_attribute("title")
    assert page.locator("#task-insecure_code dl.legend dt").count() == len(heads)
    nav = page.locator("nav a").all_inner_texts()
    assert any(t.startswith("toy") for t in nav) and "How to submit" in nav


def test_model_and_judge_filters_hide_rows(page):
    model = page.locator("#task-toy select[data-filter=model]")
    judge = page.locator("#task-toy select[data-filter=driftjudge]")
    assert sorted(model.locator("option").all_inner_texts()) == ["all", "small", "tiny"]
    model.select_option("small")
    assert _column(page, "toy", "model") == ["small", "small"]
    model.select_option("")
    judge.select_option("toy-lexicon+exact-match")
    assert _column(page, "toy", "model") == ["tiny"] * 4
    model.select_option("small")  # no row has both
    assert _column(page, "toy", "model") == []
    model.select_option("")
    judge.select_option("")
    assert len(_column(page, "toy", "model")) == 6
    assert len(_column(page, "insecure_code", "model")) == 3  # another section is untouched


def test_sorting_and_seeds_as_a_count(page):
    header = page.locator("#task-toy th", has_text="persona (drift)")
    header.click()
    ascending = _column(page, "toy", "persona (drift)")
    assert ascending == sorted(ascending)
    assert _column(page, "toy", "method")[0] == "base recipe"  # the method, its recipe link
    header.click()
    assert _column(page, "toy", "persona (drift)") == list(reversed(ascending))
    seeds = page.locator("#task-toy th", has_text="seeds")
    seeds.click()
    assert _column(page, "toy", "seeds") == ["1", "1", "1", "1", "3", "3"]
    cell = page.locator("#task-toy tbody tr", has_text="small").first.locator("td").nth(11)
    assert cell.inner_text() == "3" and cell.get_attribute("title") == "seeds 0, 1, 2"


def test_plots_load_and_every_link_resolves(page, board, tmp_path):
    images = page.locator("img")
    assert images.count() == 3  # toy x tiny, toy x small, insecure_code x tiny
    widths = page.evaluate("[...document.images].map(i => i.complete ? i.naturalWidth : 0)")
    assert all(w > 100 for w in widths), widths
    alts = images.evaluate_all("imgs => imgs.map(i => i.alt)")
    assert any("persona (drift, judge gpt-4o)" in a for a in alts), alts
    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    files = [Path(unquote(urlparse(h).path)) for h in hrefs if h.startswith("file:")]
    missing = [f for f in files if not f.is_file()]
    assert not missing, missing
    names = {f.relative_to(board).as_posix() for f in files}
    assert {"leaderboard.csv", "csv/toy.csv", "csv/insecure_code.csv", "board.json"} <= names
    assert "calibration/toy-judge.json" in names
    for kind in ("method_card.json", "recipe.yaml", "summary.json", "samples.jsonl"):
        assert any(n.endswith(kind) for n in names), kind
    method = page.locator("#task-toy tbody tr", has_text="caft").first.locator("td").nth(1)
    assert method.locator("a").first.get_attribute("href").endswith("caft/tiny/method_card.json")
    assert method.locator("a.extra").get_attribute("href").endswith("caft/tiny/recipe.yaml")
    page.screenshot(path=str(tmp_path / "board.png"), full_page=True)
    assert (tmp_path / "board.png").stat().st_size > 10_000


def test_calibration_beside_the_judge(page):
    tiny = page.locator("#task-toy tbody tr[data-model=tiny]")
    small = page.locator("#task-toy tbody tr[data-model=small]")
    judge_col = page.locator("#task-toy th").all_inner_texts().index("drift judge (calibration)")
    for i in range(tiny.count()):
        cell = tiny.nth(i).locator("td").nth(judge_col)
        assert cell.inner_text().splitlines() == ["toy-lexicon+exact-match", CALIBRATED]
        assert cell.locator("a").get_attribute("href") == "calibration/toy-judge.json"
    for i in range(small.count()):
        cell = small.nth(i).locator("td").nth(judge_col)
        assert cell.inner_text().splitlines() == ["gpt-4o", "not calibrated"]
    judges = page.locator("#judges table tbody tr")
    assert judges.count() == 2  # the rubric and the metric of the one calibration file
    assert "0.71 [0.60, 0.80]" in judges.first.inner_text()
    assert JUDGE["name"] in judges.first.inner_text()
