"""One writer per output folder: a second ``palm fit`` on the same --out is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from palm_bayes.cli import main
from palm_bayes.data.outlock import exclusive_output
from palm_bayes.errors import PalmInputError

_HOLD = textwrap.dedent(
    """
    import sys, time
    from palm_bayes.data.outlock import exclusive_output

    with exclusive_output(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_second_palm_fit_on_the_same_out_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "fit"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(["fit", str(tmp_path / "curves.csv"), "--out", str(out), "--quiet"])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert f"is being written by process {holder.pid}" in err
    assert "choose another --out" in err
    assert not out.exists()


def test_lock_is_released_after_the_writer_and_by_a_killed_one(tmp_path):
    out = tmp_path / "fit"
    with exclusive_output(out):
        with pytest.raises(PalmInputError, match="being written by process"):
            with exclusive_output(out):
                pass
    with exclusive_output(out):  # released by the first writer
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    with exclusive_output(out):  # the kernel released the killed holder's lock
        pass
