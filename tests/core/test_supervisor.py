"""`up` keeps what it started running; stopping a process is warm first, then cold, then a kill."""

from __future__ import annotations

import subprocess
import sys
import time

from core.supervisor import KeepAlive, stop_process

IGNORES_ONE_CTRL_C = ("import signal, time\n"
                      "hits = []\n"
                      "signal.signal(signal.SIGINT, lambda *a: hits.append(1) if not hits else exit(0))\n"
                      "print('ready', flush=True)\n"
                      "while True: time.sleep(0.05)\n")


def test_a_child_that_dies_is_started_again_and_stop_ends_the_watch():
    starts = []

    def start():
        starts.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"]))
        return starts[-1]

    keeper = KeepAlive("sleeper", start, interval=0.05)
    keeper.start()
    deadline = time.monotonic() + 10
    while keeper.restarts < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keeper.restarts >= 1 and len(starts) >= 2
    last = keeper.stop()
    count = len(starts)
    time.sleep(0.5)
    assert len(starts) == count, "nothing is started after stop()"
    last.wait(5)


def test_stop_process_is_warm_then_cold():
    process = subprocess.Popen([sys.executable, "-c", IGNORES_ONE_CTRL_C], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"  # its handler is installed (a loaded machine starts Python slowly)
    started = time.monotonic()
    stop_process(process, grace=1)
    assert process.returncode == 0, "the second Ctrl+C ended it (a kill would be -9)"
    assert time.monotonic() - started < 5
    process.stdout.close()
