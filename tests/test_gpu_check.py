"""benchmarks/gpu_check.py: the CPU exit path and failure-tolerant table rows."""

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", _PATH)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


def test_without_cuda_prints_no_gpu_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert capsys.readouterr().out.strip() == "no GPU"


def test_a_failing_measurement_becomes_an_error_row():
    def broken():
        raise RuntimeError("CUDA out of memory | tried 2 GiB\nmore")

    rows = [gpu_check.measure("ok", lambda: ("1.00 s", "fine")), gpu_check.measure("bad", broken)]
    assert rows[1] == ("bad", "error", "RuntimeError: CUDA out of memory / tried 2 GiB more")
    lines = gpu_check.table(rows).splitlines()
    assert lines[0] == "| measurement | value | note |" and len(lines) == 4
    assert all(line.count("|") == 4 for line in lines)
