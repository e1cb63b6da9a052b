"""A real Kafka broker and a real Flink cluster for the integration tests.

The stack runs on its own ports and state dir (.stack-test), so a developer's `make demo` stack
can keep running beside the tests. It is started once per session and always stopped.
"""
from __future__ import annotations

import os
import shutil

import pytest

from freshrank.config import REPO_ROOT, load_config
from freshrank.stack import FlinkCluster, Stack

# TEST_STACK_PORT_OFFSET moves the whole test stack, so two test runs can share a machine.
_OFFSET = int(os.environ.get("TEST_STACK_PORT_OFFSET", "0"))
TEST_ENV = {
    "FRESHRANK_STACK__STATE_DIR": str(REPO_ROOT / f".stack-test{_OFFSET or ''}"),
    "FRESHRANK_STACK__KAFKA_PORT": str(19092 + _OFFSET),
    "FRESHRANK_STACK__CONTROLLER_PORT": str(19093 + _OFFSET),
    "FRESHRANK_STACK__FLINK_REST_PORT": str(18081 + _OFFSET),
    "FRESHRANK_KAFKA__BOOTSTRAP": f"localhost:{19092 + _OFFSET}",
    "FRESHRANK_STACK__READY_TIMEOUT_S": "120",
}


@pytest.fixture(scope="session")
def stack_env():
    """Environment for every process the tests start (the job reads its config from it)."""
    saved = {k: os.environ.get(k) for k in TEST_ENV}
    os.environ.update(TEST_ENV)
    yield dict(TEST_ENV)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def stack(stack_env):
    cfg = load_config()
    shutil.rmtree(cfg.stack.state_path(), ignore_errors=True)
    running = Stack(cfg)
    try:
        running.up()
        yield cfg
    finally:
        running.down()


@pytest.fixture
def flink(stack):
    """The cluster; every job a test submitted is cancelled afterwards."""
    cluster = FlinkCluster(stack)
    yield cluster
    for job in cluster.rest("/jobs/overview").get("jobs", []):
        if job["state"] in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"):
            cluster.cancel(job["jid"])
