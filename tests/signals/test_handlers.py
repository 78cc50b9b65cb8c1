"""The command's signal handlers, in real processes: the first signal stops the work, later ones
cannot cut its cleanup short, and a signal the parent set to be ignored stays ignored."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.backups.conftest import environ
from tests.signals.conftest import catches_sigterm

# Work that a signal stops, then a cleanup that takes a moment; prints what happened.
SCRIPT = """
import signal, sys, time
from monarch.cli import signals
from monarch.errors import Terminated
if "nohup" in sys.argv:  # as nohup leaves it: ignored, inherited from the parent
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
signals.install()
try:
    print("working", flush=True)
    time.sleep(60)
except Terminated as exc:
    print(f"stopping {exc.signum}", flush=True)
    time.sleep(1.5)
    print("cleaned up", flush=True)
    sys.exit(exc.exit_code)
print("never stopped", flush=True)
"""


def start(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        env=environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "working"
    return process


def test_a_second_signal_during_the_cleanup_is_noted_and_does_not_cut_it_short() -> None:
    process = start()
    assert process.stdout is not None
    process.send_signal(signal.SIGTERM)
    assert process.stdout.readline().strip() == f"stopping {signal.SIGTERM}"
    process.send_signal(signal.SIGINT)  # an impatient Ctrl-C
    out, err = process.communicate(timeout=30)
    assert out.strip() == "cleaned up"
    assert process.returncode == 143
    assert "already stopping after a signal; cleaning up" in err
    assert "Traceback" not in err


def test_a_hangup_the_parent_ignores_stays_ignored() -> None:
    """``nohup monarch backup ...`` keeps running when its terminal closes."""
    process = start("nohup")
    assert process.stdout is not None
    process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert process.poll() is None
    assert catches_sigterm(process.pid)
    process.send_signal(signal.SIGINT)
    assert process.stdout.readline().strip() == f"stopping {signal.SIGINT}"
    process.communicate(timeout=30)
    assert process.returncode == 130
