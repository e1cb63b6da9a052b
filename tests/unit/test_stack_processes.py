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


def test_spawning_a_helper_again_stops_the_one_started_before(tmp_path):
    import dataclasses

    from freshrank.config import FreshrankConfig
    from freshrank.stack import Stack

    cfg = FreshrankConfig()
    stack = Stack(dataclasses.replace(cfg, stack=dataclasses.replace(cfg.stack, state_dir=str(tmp_path))))
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    first = stack.spawn("helper", sleeper)
    second = stack.spawn("helper", sleeper)  # e.g. `make demo` run twice without `make down`
    try:
        assert first != second and pid_alive(second)
        assert not pid_alive(first)
        assert int((tmp_path / "pids" / "helper.pid").read_text().split()[0]) == second
    finally:
        stop_pid(second, grace_s=2.0)
