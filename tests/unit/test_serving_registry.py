import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from serving.ranker import Ranker
from serving.registry import ModelRegistry, NoLiveModel, NothingToRollBack
from tests.unit.test_serving_support import PROBE, feed, history, live_version

ATOL = 1e-5


def assert_serves(model, publication):
    """The model scores PROBE exactly as the trainer did at the publication's version."""
    p_click, p_purchase = Ranker.predict(model, PROBE)
    np.testing.assert_allclose(p_click, publication.probe[:, 0], rtol=0, atol=ATOL)
    np.testing.assert_allclose(p_purchase, publication.probe[:, 1], rtol=0, atol=ATOL)


def test_a_version_goes_live_only_when_all_its_delta_rows_are_applied():
    v1 = history()[0]
    registry = ModelRegistry()
    feed(registry, record=v1.record, deltas=v1.deltas[:-1])
    assert registry.advance() is None and registry.live is None
    pending = registry.status()["pending"]
    assert pending == [{"version": 1, "delta_rows": len(v1.deltas), "received": len(v1.deltas) - 1,
                        "rejected": None}]
    with pytest.raises(NoLiveModel, match="waiting for v1"):
        with registry.acquire():
            pass
    feed(registry, deltas=v1.deltas[-1:])
    assert registry.advance().version == 1
    assert_serves(registry.live, v1)


def test_deltas_may_arrive_before_their_version_record():
    v1 = history()[0]
    registry = ModelRegistry()
    feed(registry, deltas=v1.deltas)
    assert registry.advance() is None
    assert registry.status()["deltas_without_record"] == {1: len(v1.deltas)}
    feed(registry, record=v1.record)
    assert registry.advance().version == 1
    assert_serves(registry.live, v1)


def test_later_versions_are_served_from_older_rows_plus_their_own_deltas_and_tombstones():
    v1, v2, v3 = history()
    registry = ModelRegistry()
    for publication in (v1, v2, v3):
        feed(registry, publication)
        assert registry.advance().version == publication.version
        assert_serves(registry.live, publication)
    assert registry.status()["embeddings"]["base_version"] == 2  # v1 folded: only v2, v3 readable


def test_a_request_in_flight_finishes_on_the_version_it_started_with():
    v1, v2, v3 = history()
    registry = ModelRegistry()
    feed(registry, v1)
    registry.advance()
    with registry.acquire() as started_on_v1:
        for publication in (v2, v3):  # two swaps: v1 is neither live nor previous any more
            feed(registry, publication)
            registry.advance()
        assert live_version(registry) == 3
        assert registry.status()["embeddings"]["base_version"] == 1  # v1 still being read
        assert_serves(started_on_v1, v1)
    registry.advance()  # the next promotion check folds what no one reads any more
    assert registry.status()["embeddings"]["base_version"] == 2
    assert_serves(registry.live, v3)


def test_only_the_newest_complete_version_is_loaded():
    v1, v2, _ = history()
    loaded = []

    def loader(uri, sha256, spec):
        loaded.append(uri)
        from serving.onnx_model import load_onnx_model
        return load_onnx_model(uri, sha256, spec)

    registry = ModelRegistry(loader=loader)
    feed(registry, v1)
    feed(registry, v2)
    assert registry.advance().version == 2
    assert loaded == [v2.record["onnx_uri"]]
    assert_serves(registry.live, v2)


@pytest.mark.parametrize("tamper", ["record", "file"])
def test_a_model_file_whose_sha256_does_not_match_is_rejected(tamper, tmp_path):
    v1, v2, _ = history()
    record = dict(v2.record)
    if tamper == "record":
        record["sha256"] = "0" * 64
    else:
        source = Path(v2.record["onnx_uri"].removeprefix("file://")).parent
        copy = Path(shutil.copytree(source, tmp_path / "v2"))
        data = bytearray((copy / "model.onnx").read_bytes())
        data[-1] ^= 0xFF
        (copy / "model.onnx").write_bytes(bytes(data))
        record["onnx_uri"] = (copy / "model.onnx").as_uri()
    registry = ModelRegistry()
    feed(registry, v1)
    registry.advance()
    feed(registry, record=record, deltas=v2.deltas)
    assert registry.advance() is None
    assert live_version(registry) == 1  # the live version stays
    (pending,) = registry.status()["pending"]
    assert "sha256 mismatch" in pending["rejected"]
    assert registry.status()["history"][-1]["event"] == "rejected"


def test_a_rejected_versions_rows_still_count_for_the_next_version():
    v1, v2, v3 = history()
    registry = ModelRegistry()
    feed(registry, v1)
    registry.advance()
    feed(registry, record={**v2.record, "sha256": "0" * 64}, deltas=v2.deltas)
    assert registry.advance() is None
    feed(registry, v3)
    assert registry.advance().version == 3
    assert_serves(registry.live, v3)


def test_rollback_makes_the_previous_version_live_and_versions_keep_moving_forward():
    v1, v2, v3 = history()
    registry = ModelRegistry()
    with pytest.raises(NothingToRollBack):
        registry.rollback()
    feed(registry, v1)
    registry.advance()
    feed(registry, v2)
    registry.advance()
    assert registry.rollback().version == 1
    assert_serves(registry.live, v1)
    assert registry.advance() is None and live_version(registry) == 1  # v2 stays rolled back
    with pytest.raises(NothingToRollBack):
        registry.rollback()
    feed(registry, v3)
    assert registry.advance().version == 3  # a newer version goes live again
    assert_serves(registry.live, v3)
    assert registry.rollback().version == 1
    assert_serves(registry.live, v1)
    events = [(e["version"], e["event"]) for e in registry.status()["history"]]
    assert events == [(1, "live"), (2, "live"), (2, "rolled_back"), (3, "live"), (3, "rolled_back")]


def test_versions_only_move_forward():
    v1, v2, _ = history()
    registry = ModelRegistry()
    feed(registry, deltas=v1.deltas)  # v1's record is late: v2 goes live first, on v1's rows
    feed(registry, v2)
    assert registry.advance().version == 2
    assert_serves(registry.live, v2)
    feed(registry, v1)  # now v1 is complete, but older than the live version: ignored
    assert registry.advance() is None and live_version(registry) == 2
    assert registry.counters["stale_records"] == 1
    assert registry.counters["stale_deltas"] == len(v1.deltas)
    assert_serves(registry.live, v2)


def test_a_restarted_server_replays_the_log_and_serves_the_newest_version():
    registry = ModelRegistry()
    registry.begin_replay()
    for publication in history():
        feed(registry, publication)
        assert registry.advance() is None  # nothing goes live while replaying
    assert registry.health()["phase"] == "replaying"
    registry.end_replay()
    assert registry.advance().version == 3
    assert registry.live.complete
    assert_serves(registry.live, history()[2])
    assert [e["event"] for e in registry.status()["history"]] == ["restored"]


def test_a_restore_whose_rows_are_incomplete_waits_then_serves_what_the_log_holds():
    now = [0.0]
    registry = ModelRegistry(restore_settle_s=5.0, clock=lambda: now[0])
    v1, v2, v3 = history()
    registry.begin_replay()
    feed(registry, v1)
    feed(registry, v2)
    feed(registry, record=v3.record, deltas=v3.deltas[:-1])
    registry.end_replay()
    assert registry.advance() is None  # the last rows may still be committing
    now[0] = 5.0
    model = registry.advance()
    assert model.version == 3 and not model.complete
    assert registry.status()["live"]["complete"] is False


def test_tombstones_belong_to_the_version_of_the_preceding_row():
    v1, v2, _ = history()
    user_rows = v1.trainer.tables["user_id"].index
    removed = [key.split("/", 2)[2] for key, value in v2.deltas
               if value is None and key.startswith("default/user_id/")]
    evicted_user = next(user for user in removed if user in user_rows)
    registry = ModelRegistry()
    feed(registry, v1)
    on_v1 = registry.advance()
    feed(registry, deltas=v2.deltas)
    assert registry.status()["deltas_without_record"] == {2: len(v2.deltas)}
    feed(registry, record=v2.record)
    on_v2 = registry.advance()
    assert on_v2.version == 2
    assert on_v2.embeddings.row("user_id", evicted_user) is None  # v2: back to the default row
    np.testing.assert_allclose(on_v1.embeddings.row("user_id", evicted_user),
                               v1.trainer.tables["user_id"].weight[user_rows[evicted_user]].numpy(),
                               atol=1e-6)  # v1 (the rollback target) still has it


def test_records_of_other_models_and_malformed_records_are_ignored():
    v1 = history()[0]
    registry = ModelRegistry("default")
    registry.apply_version_record({**v1.record, "model": "other"})
    registry.apply_delta("other/item_id/i1", {**v1.deltas[0][1], "model": "other"})
    registry.apply_version_record({"version": "one"})
    registry.apply_delta("no-slashes", {"version": 1})
    registry.apply_delta("default/item_id/i1", {"model": "default", "version": 1, "table": "item_id",
                                                "key": "i2", "vector": [0.0] * 8})
    assert registry.advance() is None
    assert registry.counters == {"other_model_records": 1, "other_model_deltas": 1,
                                 "malformed_records": 1, "malformed_deltas": 2}


def test_health_reports_the_live_version_and_how_far_behind_it_is():
    v1, v2, _ = history()
    registry = ModelRegistry(wall_clock_ms=lambda: v1.record["created_ms"] + 1500)
    assert registry.health()["live_version"] is None
    feed(registry, v1)
    registry.advance()
    feed(registry, record=v2.record)  # its rows have not come yet
    health = registry.health()
    assert health["live_version"] == 1 and health["newest_version_seen"] == 2
    assert health["versions_behind"] == 1 and health["pending_versions"] == [2]
    assert health["live_model_age_s"] == pytest.approx(1.5)


def test_concurrent_requests_always_see_one_whole_version():
    publications = history()
    registry = ModelRegistry()
    feed(registry, publications[0])
    registry.advance()
    seen, wrong, stop = [], [], threading.Event()

    def rank_until_stopped():
        while not stop.is_set():
            with registry.acquire() as model:
                p_click, _ = Ranker.predict(model, PROBE)
                expected = publications[model.version - 1].probe[:, 0]
            seen.append(model.version)
            if not np.allclose(p_click, expected, rtol=0, atol=ATOL):
                wrong.append(model.version)

    workers = [threading.Thread(target=rank_until_stopped) for _ in range(3)]
    for worker in workers:
        worker.start()
    for publication in publications[1:]:
        feed(registry, publication)
        registry.advance()
        time.sleep(0.05)
    registry.rollback()
    time.sleep(0.05)
    stop.set()
    for worker in workers:
        worker.join()
    assert not wrong and set(seen) >= {2}
