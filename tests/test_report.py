"""The HTML report: every section present, images embedded, renders in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.report.html import SECTIONS, write_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory, two_strategy_fit_dir):
    # the good and poor curves of tests/conftest.py, fitted once per session
    fit = pb.PalmFit.from_netcdf(two_strategy_fit_dir / "fit.nc")
    return write_report(fit, tmp_path_factory.mktemp("report") / "report.html", target=0.85)


def test_report_has_every_section(report):
    text = report.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in text, section
    assert text.count("data:image/png;base64,") >= 5
    # good reaches 0.85 at ~360 labels, poor never (A_max 0.75): one right verdict
    assert "Continue with good" in text
    assert "Not enough evidence" not in text and "Continue with poor" not in text
    assert 'src="http' not in text  # self-contained


def test_report_renders_in_headless_chromium(report, tmp_path):
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("CI cannot render the report: Debian chromium is missing (make browser)")
        pytest.skip("Debian chromium not installed (make browser installs it as root)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1300,3000",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a blank page is a few kB


def _luminance(rgb) -> float:
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_win_matrix_numbers_are_readable_on_every_cell_colour():
    """WCAG contrast of the printed probability against its cell, over the whole colour map."""
    import matplotlib.pyplot as plt

    from palm_bayes.report.html import _text_colour

    cmap = plt.get_cmap("RdBu_r")
    for p in np.linspace(0, 1, 41):
        cell = _luminance(cmap(p))
        text = 1.0 if _text_colour(cmap(p)) == "white" else 0.0
        hi, lo = max(cell, text), min(cell, text)
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, p
    assert _text_colour(cmap(0.0)) == _text_colour(cmap(1.0)) == "white"


def test_report_header_and_tables_are_plain(report):
    text = report.read_text()
    assert "PalmFit(" not in text  # no Python repr
    assert "2 strategies" in text and "fitted independently" in text
    assert "embedding=none" not in text
    assert "p_cheapest: probability" in text  # the columns are explained
