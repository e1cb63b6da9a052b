import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.server import ServingApp, start_in_thread
from tests.unit.test_serving_support import feed, history

PAGE = {"user_id": "u1", "query": "red shoe", "device": "mobile", "platform": "ios",
        "candidates": [{"item_id": f"i{n}", "category": f"c{n}", "price": 10.0 + n} for n in range(8)]}


@pytest.fixture()
def server():
    app = ServingApp.create("default")
    running = start_in_thread(app, port=0)
    yield app, running.port
    running.stop()


def call(port, method, path, body=None, raw=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


def test_http_round_trip_through_the_real_server(server):
    app, port = server
    assert port > 0
    status, health = call(port, "GET", "/healthz")
    assert status == 503 and health["live_version"] is None and health["status"] == "no model version live"
    status, answer = call(port, "POST", "/rank", PAGE)
    assert status == 503 and "has been published yet" in answer["error"]

    v1, v2, _ = history()
    feed(app.registry, v1)  # what the Kafka follower does
    app.registry.advance()
    status, health = call(port, "GET", "/healthz")
    assert status == 200 and health["live_version"] == 1 and health["versions_behind"] == 0
    status, ranking = call(port, "POST", "/rank", PAGE)
    assert status == 200 and (ranking["model"], ranking["version"]) == ("default", 1)
    ranked = [item["item_id"] for item in ranking["items"]]
    assert sorted(ranked) == sorted(candidate["item_id"] for candidate in PAGE["candidates"])
    scores = [item["score"] for item in ranking["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < item["p_click"] < 1.0 for item in ranking["items"])

    status, answer = call(port, "POST", "/rollback")
    assert status == 409 and "no previous live version" in answer["error"]
    feed(app.registry, v2)
    app.registry.advance()
    status, versions = call(port, "GET", "/versions")
    assert status == 200 and versions["live"]["version"] == 2 and versions["previous"]["version"] == 1
    assert versions["live"]["sha256"] == v2.record["sha256"]
    status, answer = call(port, "POST", "/rollback")
    assert status == 200 and answer == {"model": "default", "live_version": 1}
    assert call(port, "POST", "/rank", PAGE)[1]["version"] == 1


def test_http_errors_are_json(server):
    _, port = server
    status, answer = call(port, "POST", "/rank", raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = call(port, "POST", "/rank", {"candidates": []})
    assert status == 400 and "user_id is required" in answer["error"]
    assert call(port, "GET", "/nowhere")[0] == 404
    status, answer = call(port, "GET", "/rank")
    assert status == 405 and answer["error"] == "use POST /rank"
    # A body announced as too large is refused before it is read.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", "/rank")
    connection.putheader("Content-Length", str(2 << 20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "body over" in json.loads(response.read())["error"]
    connection.close()


def test_keep_alive_connection_serves_several_requests(server):
    app, port = server
    feed(app.registry, history()[0])
    app.registry.advance()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        connection.request("POST", "/rank", body=json.dumps(PAGE).encode())
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["version"] == 1
    connection.close()


def test_freshrank_serve_binds_the_configured_port_and_stops_on_sigterm(tmp_path):
    with socket.socket() as probe:  # a port that is free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "FRESHRANK_SERVING__PORT": str(port),
           "FRESHRANK_KAFKA__BOOTSTRAP": "127.0.0.1:1"}  # no broker: serving waits, replaying
    log = (tmp_path / "serve.log").open("w")  # a file, not a pipe: a full pipe would block it
    process = subprocess.Popen([sys.executable, "-m", "freshrank.cli", "serve"], env=env,
                               cwd=Path(__file__).resolve().parents[2],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = call(port, "GET", "/healthz")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.2)
        assert status == 503 and health["phase"] == "replaying"
        assert set(health["kafka"]) == {"model-follower", "feature-follower"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
