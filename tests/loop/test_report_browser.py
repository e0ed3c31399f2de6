"""The rendered report in a real browser (Debian's headless Chromium at 1,200 px), for a params PR,
the October data PR and main's own report: the verdict and the metric table end within the
first 900 px, every image loads and is at most 780 px wide, no table is wider than its column,
and a params PR fits in about two screens as it opens. The screenshots are kept as test
artifacts in .artifacts/report-browser/ (git-ignored; the path is printed)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import report_fixtures as rf
from flightdelay.core.params import Params
from flightdelay.loop.report import ReportInputs, write_report

pytestmark = pytest.mark.slow  # three Chromium runs a page: about 10 s each on a busy runner

ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "report-browser"


def browser() -> Any:
    """scripts/report_browser.py (standard library only)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "report_browser.py"
    spec = importlib.util.spec_from_file_location("report_browser", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def look(capsys: pytest.CaptureFixture[str]) -> Callable[[str, ReportInputs, Path], Any]:
    b = browser()
    if b.chromium() is None:
        pytest.skip("chromium not installed: apt-get install chromium (make system-deps)")

    def run(name: str, inputs: ReportInputs, tmp: Path) -> Any:
        write_report(inputs, tmp / name, rf.plot_data(inputs))
        page = b.look(tmp / name, name, ARTIFACTS)
        with capsys.disabled():  # printed even when the test passes: where to look
            print(f"\nscreenshots: {', '.join(str(s) for s in page.screenshots)}")
        return page

    return run


@pytest.mark.parametrize("scenario", ["params_pr", "data_pr", "main_report"])
def test_report_browser_first_screen_images_and_tables(
    look: Any, params: Params, tmp_path: Path, scenario: str
) -> None:
    page = look(scenario, getattr(rf, scenario)(params), tmp_path)

    assert page.problems() == []
    assert page.measures["images"], "the report shows its plots"
    assert all(s.is_file() and s.stat().st_size > 10_000 for s in page.screenshots)
    if scenario == "params_pr":  # short by default: about two screens as it opens
        assert page.measures["closedHeight"] <= 2 * 900


def test_report_browser_finds_a_table_wider_than_its_column(
    look: Any, params: Params, tmp_path: Path
) -> None:
    inputs = rf.params_pr(params)
    write_report(inputs, tmp_path / "wide", rf.plot_data(inputs))
    html = (tmp_path / "wide" / "report.html").read_text()
    (tmp_path / "wide" / "report.html").write_text(
        html.replace("</body>", "<table><tr><td>" + "y" * 400 + "</td></tr></table></body>")
    )

    page = browser().look(tmp_path / "wide", "wide", tmp_path / "shots", screenshots=False)

    assert [p for p in page.problems() if "px column" in p], page.problems()
