"""Stopping a process of ours stops what it started, even outside its process group."""
import subprocess
import sys
import time

from freshrank.stack import descendants, pid_alive, stop_pid

# A parent that starts a child in a session (and process group) of its own, as the TaskManager's
# Python workers end up, then waits; the child ignores SIGTERM.
PARENT = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
    start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_stop_pid_kills_descendants_outside_the_process_group():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    child = int(parent.stdout.readline())
    assert descendants(parent.pid) == [child]
    stop_pid(parent.pid, grace_s=2.0)
    parent.wait(5)
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child)


def test_descendants_of_a_process_without_children_is_empty():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert descendants(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()
