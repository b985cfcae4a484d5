"""`process_cpu.cpu_seconds`: the lease keeper process's evidence that a silent node still runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hotspare.coordination.process_cpu import cpu_seconds

measurable = pytest.mark.skipif(sys.platform not in ("linux", "win32"),
                                reason="CPU time of another process: Linux and Windows only")


@measurable
def test_a_running_process_shows_its_cpu_time_growing() -> None:
    before = cpu_seconds(os.getpid())
    assert before is not None
    started = time.process_time()
    while time.process_time() - started < 0.1:
        pass
    after = cpu_seconds(os.getpid())
    assert after is not None and after >= before + 0.05


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGSTOP and /proc: Linux")
def test_a_stopped_process_does_not_count_as_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert cpu_seconds(child.pid) is not None
        child.send_signal(signal.SIGSTOP)
        time.sleep(0.1)
        assert cpu_seconds(child.pid) is None
        child.send_signal(signal.SIGCONT)
        time.sleep(0.1)
        assert cpu_seconds(child.pid) is not None
    finally:
        child.kill()
        child.wait()


def test_a_process_that_is_gone_has_no_cpu_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) is None
