"""The built leaderboard page in real headless Chromium (Debian's chromium, driven by
playwright): it loads from a file, shows every submission, sorting works, the plot loads."""

from __future__ import annotations

import shutil

import pytest

from .test_leaderboard import make_submission

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


@pytest.fixture
def page_url(tmp_path):
    from grasp_bench.leaderboard.build import build_board

    for method, drift, task in (
        ("base", 0.0, 0.1),
        ("lora", 0.9, 0.6),
        ("grasp", 0.5, 0.5),
        ("caft", 0.2, 0.3),
    ):
        make_submission(tmp_path, method, drift, task)
    return build_board(tmp_path)["html"].as_uri()


def test_page_in_chromium(page_url, tmp_path):
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium"), "Debian chromium is not installed (scripts/install.sh)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(page_url)
        rows = page.locator("#board tbody tr")
        assert rows.count() == 4
        methods = lambda: rows.locator("td:nth-child(3)").all_inner_texts()  # noqa: E731
        assert sorted(methods()) == ["base", "caft", "grasp", "lora"]
        header = page.locator("#board th", has_text="drift (95% CI)")
        header.click()
        drift_order = methods()
        header.click()
        assert methods() == list(reversed(drift_order)) and drift_order[0] == "base"
        assert page.evaluate("document.querySelector('img').naturalWidth") > 100
        link = page.locator("#board tbody tr td:nth-child(3) a").first.get_attribute("href")
        assert link.endswith("recipe.yaml")
        page.screenshot(path=str(tmp_path / "board.png"), full_page=True)
        browser.close()
    assert (tmp_path / "board.png").stat().st_size > 10_000
