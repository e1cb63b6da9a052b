"""The stateful training operator: keyed by model, one record per micro-batch.

A micro-batch is whatever arrived on the examples topic in one interval; the session cuts that
stream into fixed chunks by offset (flink_jobs/offset_chunks.py) and trains chunk by chunk, so
where a crash falls changes nothing about what is learned. Each trained chunk goes to the
training ledger with its offsets.

The live Trainer is kept in memory; after every step the operator writes what the step changed
to Flink keyed state (dense part in a ValueState, embedding rows and admission counters as
entries of a MapState), so a checkpoint holds exactly the model that the Kafka offsets in the
same checkpoint produced. PyFlink flushes Python state to the JVM backend before each barrier.
With RocksDB and incremental checkpoints a checkpoint then grows with the rows that changed.

Every `publish_interval_ms` of processing time the candidate is gated against the live version
on the freshest batch (scored before it is learned), exported to ONNX in the model store, and
announced on the versions topic; the rows changed since the previous version go out as deltas.
Both outputs are transactional, so a version that a crash undoes is never seen by serving.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from freshrank.config import FreshrankConfig

log = logging.getLogger("freshrank.trainer")

DELTAS_TAG = OutputTag("embedding-deltas", Types.STRING())
LEDGER_TAG = OutputTag("training-ledger", Types.STRING())


def key_of_delta(delta_json: str) -> Row:
    """(compaction key, value) for the deltas topic; a removed row becomes a tombstone."""
    delta = json.loads(delta_json)
    key = f"{delta['model']}/{delta['table']}/{delta['key']}"
    return Row(key, None if delta.get("removed") else delta_json)


class TrainingOperator(KeyedProcessFunction):
    def __init__(self, cfg: FreshrankConfig):
        self.cfg = cfg
        self.session = None  # created in open(): holds torch, not picklable

    def open(self, runtime_context: RuntimeContext):
        from flink_jobs.training_session import TrainingSession  # imports torch on the worker only
        self.dense_state = runtime_context.get_state(
            ValueStateDescriptor("model-dense", Types.PICKLED_BYTE_ARRAY()))
        self.entries_state = runtime_context.get_map_state(
            MapStateDescriptor("model-rows", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.side_state = runtime_context.get_state(
            ValueStateDescriptor("model-side", Types.PICKLED_BYTE_ARRAY()))
        self.holdout_state = runtime_context.get_map_state(
            MapStateDescriptor("holdout", Types.INT(), Types.PICKLED_BYTE_ARRAY()))
        self.published_state = runtime_context.get_map_state(
            MapStateDescriptor("published-rows", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.pending_state = runtime_context.get_map_state(
            MapStateDescriptor("pending-examples", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.session = TrainingSession(self.cfg)
        self._timers: set[int] = set()  # processing-time timers registered by this instance
        self._register_metrics(runtime_context.get_metrics_group().add_group("freshrank"))

    def _register_metrics(self, group) -> None:
        s = self.session
        self.examples_counter = group.counter("examples_trained")
        self.batches_counter = group.counter("batches")
        self.skipped_counter = group.counter("skipped_batches")
        self.versions_counter = group.counter("versions_published")
        self.rejected_counter = group.counter("versions_rejected")
        # Gauges are int-only in PyFlink: ratios are reported in parts per 10,000.
        group.gauge("model_version", lambda: s.version)
        group.gauge("table_rows", lambda: s.table_rows())
        group.gauge("admitted", lambda: s.counter("admitted"))
        group.gauge("expired", lambda: s.counter("expired"))
        group.gauge("evicted", lambda: s.counter("evicted"))
        group.gauge("state_bytes_written", lambda: s.state_bytes_written)
        group.gauge("state_bytes", lambda: s.state_bytes())
        group.gauge("chunks_trained", lambda: s.chunks_trained)
        group.gauge("examples_pending", lambda: s.chunks.pending_count())
        group.gauge("prequential_auc_x10000", lambda: s.metric_x10000("auc"))
        group.gauge("prequential_logloss_x10000", lambda: s.metric_x10000("logloss"))
        group.gauge("loss_x10000", lambda: s.metric_x10000("loss"))
        group.gauge("step_ms", lambda: int(s.last_step_ms))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        s = self._ready_session()
        now = ctx.timer_service().current_processing_time()
        records = [(int(p), int(o), example) for p, o, example in json.loads(value[3])]
        # Publish before learning this batch, so that the version shipped is the one judged.
        yield from self._publish_if_due(ctx)
        yield from self._trained(s.consume(records, now))
        self._write_state(s.state_changes())
        self._schedule(ctx, now)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        s = self._ready_session()
        self._timers.discard(timestamp)
        now = ctx.timer_service().current_processing_time()
        if s.linger_due(now):
            yield from self._trained(s.flush(now))
            self._write_state(s.state_changes())
        yield from self._publish_if_due(ctx)
        self._schedule(ctx, now)

    def _trained(self, ledger_entries: list[str]):
        for entry in ledger_entries:
            chunk = json.loads(entry)
            self.examples_counter.inc(chunk["trained"])
            self.batches_counter.inc()
            self.skipped_counter.inc(int(chunk["skipped"]))
            yield LEDGER_TAG, entry

    def _schedule(self, ctx, now: int) -> None:
        """Timers for the linger of a partial chunk and for publishing when no batch follows."""
        s = self.session
        wanted = [s.chunks.linger_deadline()]
        if s.learned_since_publish > 0:
            wanted.append(max(now, s.last_publish_ms + self.cfg.job.publish_interval_ms))
        for at in wanted:
            if at is not None and not any(t <= at for t in self._timers):
                self._timers.add(at)
                ctx.timer_service().register_processing_time_timer(at)

    def _ready_session(self):
        if not self.session.ready:
            self.session.load(self._read_state())
        return self.session

    def _publish_if_due(self, ctx):
        s = self.session
        publication = s.maybe_publish(now_ms=ctx.timer_service().current_processing_time())
        if publication is None:
            return
        log.info("candidate version %d %s: %s", publication.version,
                 "published" if publication.accepted else "rejected", publication.reason)
        if publication.accepted:
            self.versions_counter.inc()
            for delta in publication.deltas:
                yield DELTAS_TAG, delta
            yield publication.version_record
        else:
            self.rejected_counter.inc()
        self._write_state(s.state_changes())

    # -------------------------------------------------------------------------- state
    def _read_state(self) -> dict[str, Any] | None:
        dense = self.dense_state.value()
        if dense is None:
            return None
        return {"dense": dense, "entries": dict(self.entries_state.items()), "side": self.side_state.value(),
                "holdout": dict(self.holdout_state.items()), "published": dict(self.published_state.items()),
                "pending": dict(self.pending_state.items())}

    def _write_state(self, changes) -> None:
        if changes.dense is not None:
            self.dense_state.update(changes.dense)
        if changes.side is not None:
            self.side_state.update(changes.side)
        _apply(self.entries_state, changes.entries)
        _apply(self.holdout_state, changes.holdout)
        _apply(self.published_state, changes.published)
        _apply(self.pending_state, changes.pending)


def _apply(map_state, changes: dict) -> None:
    """Write only what changed; None deletes the entry."""
    for key, blob in changes.items():
        if blob is None:
            map_state.remove(key)
        else:
            map_state.put(key, blob)
