"""The ranking HTTP server (stdlib only): POST /rank, GET /healthz, GET /versions, POST /rollback.

`serve_forever(cfg)` is what `freshrank serve` runs: it follows the model and feature topics in
background threads and answers on cfg.serving.host:cfg.serving.port. `start_in_thread` runs the
same server on any port (0 picks a free one) for tests and embedding.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from freshrank.config import FreshrankConfig
from serving.online_features import OnlineFeatures
from serving.ranker import Ranker, RankingError
from serving.registry import ModelRegistry, NothingToRollBack
from udfs.config import ValidationConfig

log = logging.getLogger("freshrank.serving")

MAX_BODY_BYTES = 1 << 20


class ServingApp:
    """Routes requests to the ranker and the registry; knows nothing about HTTP framing."""

    def __init__(self, registry: ModelRegistry, features: OnlineFeatures, ranker: Ranker,
                 followers: tuple = ()) -> None:
        self.registry = registry
        self.features = features
        self.ranker = ranker
        self.followers = followers  # TopicFollower threads, for lag in /healthz

    @classmethod
    def create(cls, model_name: str = "default", *, feature_cache_keys: int = 1_000_000,
               purchase_weight: float = 0.0, validation: ValidationConfig | None = None,
               registry: ModelRegistry | None = None) -> "ServingApp":
        registry = registry or ModelRegistry(model_name)
        features = OnlineFeatures(feature_cache_keys, feature_cache_keys, feature_cache_keys)
        ranker = Ranker(registry, features, purchase_weight=purchase_weight, validation=validation)
        return cls(registry, features, ranker)

    def handle(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        route = (method, path.split("?", 1)[0].rstrip("/") or "/")
        if route == ("POST", "/rank"):
            try:
                return HTTPStatus.OK, self.ranker.rank(body)
            except RankingError as exc:
                return exc.status, {"error": str(exc)}
        if route == ("GET", "/healthz"):
            return self.healthz()
        if route == ("GET", "/versions"):
            return HTTPStatus.OK, self.registry.status()
        if route == ("POST", "/rollback"):
            try:
                model = self.registry.rollback()
            except NothingToRollBack as exc:
                return HTTPStatus.CONFLICT, {"error": str(exc)}
            return HTTPStatus.OK, {"model": model.name, "live_version": model.version}
        known = {"/rank": "POST", "/healthz": "GET", "/versions": "GET", "/rollback": "POST"}
        if route[1] in known:
            return HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"use {known[route[1]]} {route[1]}"}
        return HTTPStatus.NOT_FOUND, {"error": f"no route {method} {path}"}

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """200 when a version is live (ready to rank), 503 otherwise; the body says why."""
        health = self.registry.health()
        health["kafka"] = {f.name: {"caught_up": f.caught_up, "alive": f.is_alive(), "lag": f.lag}
                           for f in self.followers}
        counts = self.features.counts()
        health["features"] = {"users": counts.users, "items": counts.items, "query_items": counts.query_items}
        ready = health["live_version"] is not None
        health["status"] = "ok" if ready else "no model version live"
        return (HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE), health


def _handler_for(app: ServingApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the frontend calls once per search

        def do_GET(self) -> None:
            self._route("GET", None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True  # the unread body would poison the next request
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
                return
            self._route("POST", body)

        def _route(self, method: str, body: Any) -> None:
            try:
                status, payload = app.handle(method, self.path, body)
                data = json.dumps(payload, allow_nan=False, default=str).encode("utf-8")
            except Exception:  # a bug must answer 500, not drop the connection
                log.exception("%s %s failed", method, self.path)
                self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
                return
            self._send(status, data)

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode("utf-8"))

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


@dataclass
class RunningServer:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def make_server(app: ServingApp, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler_for(app))
    server.daemon_threads = True
    return server


def start_in_thread(app: ServingApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `app` from a background thread; `.port` is the bound port, `.stop()` ends it."""
    server = make_server(app, host, port)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return RunningServer(server, thread)


def serve_forever(cfg: FreshrankConfig) -> None:
    """`freshrank serve`: follow the topics of cfg.kafka and answer on cfg.serving.host:port."""
    from serving.kafka_follower import feature_follower, model_follower  # needs the Kafka client

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = ModelRegistry(cfg.job.model_name, restore_settle_s=cfg.serving.restore_settle_s)
    app = ServingApp.create(cfg.job.model_name, registry=registry,
                            feature_cache_keys=cfg.serving.feature_cache_keys,
                            purchase_weight=cfg.serving.purchase_weight,
                            validation=cfg.validation)  # the job's limits, so cleaning matches
    app.followers = (model_follower(cfg, registry), feature_follower(cfg, app.features))
    server = make_server(app, cfg.serving.host, cfg.serving.port)
    # SIGTERM (`freshrank down`) ends serve_forever like Ctrl+C does; shutdown() must come
    # from another thread than the one serving.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    for follower in app.followers:
        follower.start()
    log.info("serving model %r on http://%s:%d (Kafka %s)", cfg.job.model_name, cfg.serving.host,
             server.server_address[1], cfg.kafka.bootstrap)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for follower in app.followers:
            follower.request_stop()  # all at once: each may be inside a poll
        for follower in app.followers:
            follower.join(5.0)
        log.info("serving stopped")
