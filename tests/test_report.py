"""The HTML report: every section present, images embedded, renders in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.report import SECTIONS, write_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    curves = pb.simulate_curves(
        {
            "random": dict(A_max=0.9, delta=0.15, alpha=0.0, beta=1.0),
            "margin": dict(A_max=0.93, delta=0.25, alpha=0.0, beta=1.0),
        },
        np.arange(1, 9) * 50.0,
        seeds=3,
        rng=1,
    )
    fit = pb.fit(curves, draws=300, tune=300, chains=2, progress=False)
    return write_report(fit, tmp_path_factory.mktemp("report") / "report.html", target=0.85)


def test_report_has_every_section(report):
    text = report.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in text, section
    assert text.count("data:image/png;base64,") >= 5
    assert "Continue with" in text or "Not enough evidence" in text
    assert 'src="http' not in text  # self-contained


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
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
