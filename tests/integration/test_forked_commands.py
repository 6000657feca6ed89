"""The kill, concurrency, promotion and service tests start their commands through testkit.forked. What
they assert (exit codes, "one error line and no traceback", a kill -9 that reaches what a command
started) holds only if a forked command behaves as a process of its own would: checked here."""

from __future__ import annotations

import signal

import pytest

from testkit import forked

pytestmark = pytest.mark.integration


def test_a_forked_finsent_fails_as_the_console_script_does(tmp_path):
    out, err = tmp_path / "out", tmp_path / "err"
    command = forked.finsent(["--root", str(tmp_path / "nowhere"), "predict", "x"], cwd=tmp_path, stdout=out, stderr=err)
    assert command.wait(300) == 2
    assert out.read_text() == ""
    assert err.read_text().strip().splitlines() == [f"finsent: error: parameters file not found: {tmp_path / 'nowhere' / 'params.yaml'}"]
    usage = forked.finsent(["no-such-command"], stderr=err)
    assert usage.wait(60) == 2 and "usage: finsent" in err.read_text()  # argparse's exit, under the script's name


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(tmp_path):
    err = tmp_path / "err"
    assert forked.Forked("json:loads", ["{"], stderr=err).wait(60) == 1
    assert "Traceback (most recent call last)" in err.read_text() and "JSONDecodeError" in err.read_text()


def test_a_forked_command_has_its_own_environment_folder_and_session(tmp_path):
    out = tmp_path / "out"
    probe = "import os; print(os.environ.get('PROBE'), os.environ.get('HOME_ONLY_HERE'), os.getcwd(), os.getpgid(0) == os.getpid())"
    command = forked.Forked("builtins:exec", [probe], env={"PROBE": "given"}, cwd=tmp_path, stdout=out)
    assert command.wait(60) == 0
    assert out.read_text().split() == ["given", "None", str(tmp_path), "True"]


def test_kill_9_of_a_forked_command_reaches_its_session():
    sleeper = forked.Forked("time:sleep", [120])
    assert sleeper.poll() is None
    sleeper.signal_group(signal.SIGKILL)
    assert sleeper.wait(30) == -signal.SIGKILL
