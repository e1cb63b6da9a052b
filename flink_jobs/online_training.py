"""The freshrank online-training job.

Kafka events -> validate/clean (Python UDF) -> dead letters | clean events topic -> dedup (SQL) ->
event time -> point-in-time features and label attribution (the user and item windows: keyed JVM
operators of ours, udfs/jvm/) -> label join (SQL interval joins) -> examples topic -> micro-batches
(SQL window) -> training operator (Python, keyed by model, model in Flink state) -> model
versions, embedding deltas and the training ledger (Kafka, exactly-once). Online features go to
compacted topics.

`job.stages` runs both halves in one job (the default), or one of them: `features` (events to the
examples topic) and `training` (examples topic to versions) scale and restart independently.

Run it with `freshrank run` (submits to the local cluster) or `python -m flink_jobs.online_training`
(a MiniCluster in this process; web UI on the configured port).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.table import Schema, StreamTableEnvironment, Table
from pyflink.table.expressions import col

from flink_jobs.clean_topic import key_lookup_sql, key_sql, partition_keys
from flink_jobs.sql_files import FEATURE_WINDOWS_MS, LONGEST_FEATURE_WINDOW_MS, statements
from flink_jobs.training_operator import DELTAS_TAG, LEDGER_TAG, TrainingOperator, key_of_delta
from flink_jobs.validation_udf import count_duplicate_udf, python_options, validate_event_udf
from freshrank import flink_lib
from freshrank.config import JOB_STAGES, FreshrankConfig, load_config
from freshrank.jvm_udfs import JVM_FUNCTIONS, udf_jar, vouch_event_sql

log = logging.getLogger("freshrank.job")


def job_name(cfg: FreshrankConfig) -> str:
    stages = "" if cfg.job.stages == "all" else f" ({cfg.job.stages})"
    return f"freshrank online training [{cfg.job.model_name}]{stages}"


def flink_configuration(cfg: FreshrankConfig, connector_jar: str | None,
                        extra: dict[str, str] | None = None) -> Configuration:
    """The job's Flink settings; `extra` (Flink option -> value) is applied last (benchmarks)."""
    job = cfg.job
    job_jars = [Path(connector_jar)] if connector_jar else []
    flink_lib.prefer_for_local_jvm(cfg.stack.cache_path(), [*job_jars, udf_jar(cfg.stack.cache_path())])
    conf = Configuration()  # starts PyFlink's JVM in a local run
    shipped = [jar.resolve().as_uri() for jar in job_jars if not on_jvm_class_path(jar)]
    if shipped:
        conf.set_string("pipeline.jars", ";".join(shipped))
    conf.set_string("pipeline.name", job_name(cfg))
    conf.set_string("python.executable", job.python_executable or sys.executable)
    for key, value in python_options().items():  # Arrow batches and bundles for the validation function
        conf.set_string(key, value)
    conf.set_string("rest.port", str(cfg.stack.flink_rest_port))
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", "1000")
    conf.set_string("restart-strategy.fixed-delay.delay", "2 s")
    conf.set_string("state.backend.type", job.job_state_backend())
    conf.set_string("pipeline.object-reuse", str(job.job_object_reuse()).lower())
    conf.set_string("execution.checkpointing.incremental", "true")
    conf.set_string("execution.checkpointing.dir", cfg.checkpoint_dir().as_uri())
    # A cancelled or crashed job can be resubmitted from its last checkpoint (`-s`).
    conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    conf.set_string("table.local-time-zone", "UTC")
    # One TTL covers every non-windowed SQL state: the dedup ids, the click numbering's counters.
    # The user and item windows drop a key's state in event time, past its longest window.
    conf.set_string("table.exec.state.ttl", f"{max(job.dedup_ttl_ms, LONGEST_FEATURE_WINDOW_MS)} ms")
    for key, value in (extra or {}).items():
        conf.set_string(key, value)
    return conf


def on_jvm_class_path(jar: Path) -> bool:
    """Whether the JVM that plans the job (PyFlink's own, or `flink run`'s) has `jar` on its class path."""
    return flink_lib.on_class_path(jar, get_gateway().jvm.java.lang.System.getProperty("java.class.path"))


def build_environment(cfg: FreshrankConfig, connector_jar: str | None = None, extra: dict[str, str] | None = None):
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(cfg, connector_jar, extra))
    env.set_parallelism(cfg.job.parallelism)
    env.enable_checkpointing(cfg.job.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    checkpoints = env.get_checkpoint_config()
    checkpoints.set_checkpoint_timeout(cfg.job.checkpoint_timeout_ms)
    # The training step holds the barrier while it runs; unaligned barriers overtake queued batches.
    checkpoints.enable_unaligned_checkpoints(True)
    checkpoints.set_min_pause_between_checkpoints(min(1_000, cfg.job.checkpoint_interval_ms // 2))
    t_env = StreamTableEnvironment.create(env)
    add_jvm_functions(cfg, env, t_env)
    return env, t_env


def add_jvm_functions(cfg: FreshrankConfig, env, t_env) -> None:
    """The job's JVM functions (udfs/jvm/), built once into the stack's cache, under their SQL names;
    their jar is shipped with the job unless the JVM has it on its class path."""
    jar = udf_jar(cfg.stack.cache_path())
    if not on_jvm_class_path(jar):
        env.add_jars(jar.as_uri())
    for name, java_class in JVM_FUNCTIONS.items():
        t_env.create_java_temporary_function(name, java_class)


def _run_sql(t_env, cfg: FreshrankConfig, name: str) -> None:
    for stmt in statements(name, cfg):
        t_env.execute_sql(stmt)


def _materialize(t_env, view: str, name: str, own_task: bool = False, through=None) -> None:
    """Register `view` as `name`, computed once however many queries read it; `through` (a Java
    DataStream<RowData> -> DataStream<RowData> function: one of the job's own windows) on the way.

    The planner optimises each DataStream conversion and the statement set separately, and it
    reuses a sub-plan only where the projections match: the same join would otherwise run once
    per consumer. A DataStream in between is a single node. The rowtime attribute crosses as a
    plain column (`upstream_rowtime`) and is declared again, with the upstream watermarks
    (SOURCE_WATERMARK).
    """
    table = t_env.sql_query(f"SELECT *, rowtime AS upstream_rowtime FROM {view}").drop_columns(col("rowtime"))
    t_env.create_temporary_view(name, _through_datastream(t_env, table, "upstream_rowtime", own_task, through))


def _add_user_window(t_env, cfg: FreshrankConfig) -> None:
    """View user_events through the user window (udfs/jvm/.../UserWindow.java) as user_windows:
    each event with the user's counts, the impression a label belongs to and the recent category."""
    gateway = get_gateway()
    windows = list(FEATURE_WINDOWS_MS.items())
    lengths = gateway.new_array(gateway.jvm.long, len(windows))
    names = gateway.new_array(gateway.jvm.String, len(windows))
    for i, (name, ms) in enumerate(windows):
        lengths[i], names[i] = ms, name[1:]  # "w5m" -> u_click_5m
    _materialize(t_env, "user_events", "user_windows", through=lambda rows: (
        gateway.jvm.org.freshrank.udfs.UserWindow.apply(
            rows, "upstream_rowtime", lengths, names, cfg.job.click_window_ms, cfg.job.purchase_window_ms)))


def _add_item_window(t_env) -> None:
    """View item_events through the item window (udfs/jvm/.../ItemWindow.java) as item_windows:
    each row with its item's counts over 1 h and its (query, item) pair's over 24 h.

    The item view's readers (the online item and (query, item) records, the label join's input)
    run in a task of their own: in the item window's thread they made it the job's busiest."""
    item_window = get_gateway().jvm.org.freshrank.udfs.ItemWindow
    _materialize(t_env, "item_events", "item_windows", own_task=True, through=lambda rows: (
        item_window.apply(rows, "item_id", "item_kind", "query", "upstream_rowtime",
                          FEATURE_WINDOWS_MS["w1h"], FEATURE_WINDOWS_MS["w24h"])))


def _through_datastream(t_env, table, rowtime_expression: str, own_task: bool = False, through=None):
    """`table` through a DataStream and back, with `rowtime` = `rowtime_expression` as its event
    time and the upstream watermarks; `through` (a Java DataStream<RowData> -> DataStream<RowData>
    function) is applied on the way.

    The rows cross in Flink's internal format (RowData): PyFlink's to_data_stream would convert
    every field of every row to a Java object (String, Instant, boxed arrays) and back."""
    j_table = table._j_table
    row_data = get_gateway().jvm.org.apache.flink.table.data.RowData._java_lang_class
    internal_rows = t_env._j_tenv.toDataStream(
        j_table, j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data))
    if through is not None:
        internal_rows = through(internal_rows)
    if own_task:
        # Readers in a task (thread) of their own: a rescale edge is not chained, and between equal
        # parallelisms it links subtask i to subtask i only, so each key's rows keep their order.
        internal_rows = internal_rows.rescale()
    schema = (Schema.new_builder()
              .column_by_expression("rowtime", rowtime_expression)
              .watermark("rowtime", "SOURCE_WATERMARK()")
              .build())
    return Table(t_env._j_tenv.fromDataStream(internal_rows, schema._j_schema), t_env)


def build_pipeline(cfg: FreshrankConfig, env, t_env) -> None:
    _run_sql(t_env, cfg, "01_source.sql")
    _run_sql(t_env, cfg, "02_sinks.sql")
    sinks = t_env.create_statement_set()
    if cfg.job.stages in ("all", "features"):
        _add_feature_stage(cfg, t_env, sinks)
    if cfg.job.stages in ("all", "training"):
        _add_training_stage(cfg, t_env, sinks)
    sinks.attach_as_datastream()


# Which fast paths validation takes: vouch_event in the JVM, then the msgspec one in Python (the
# job); the msgspec one alone; none, the exact validator alone (the last two: bench.validation's peers).
FAST_PATHS = ("jvm", "python", "off")


def add_validation(cfg: FreshrankConfig, t_env, sinks, fast_path: str = "jvm") -> None:
    """Tables raw_events -> validation -> dlq_sink (rejects) and clean_events_sink.

    The validation half of the feature stage, on its own for bench.validation (which also runs
    it with the other FAST_PATHS as its peers). Needs the JVM functions (add_jvm_functions)."""
    if fast_path not in FAST_PATHS:
        raise ValueError(f"fast_path must be one of {', '.join(FAST_PATHS)}, got {fast_path!r}")
    vouched = (vouch_event_sql(cfg.validation, "`value`", "source_watermark") if fast_path == "jvm"
               else "CAST(NULL AS ROW<record STRING, event_time BIGINT>)")
    # Batch watermarks go to every clean partition, which is right only when one subtask reads
    # every raw partition (flink_jobs/clean_topic.py).
    t_env.create_temporary_function("validate_events", validate_event_udf(
        cfg.validation, mark_batches=cfg.job.parallelism == 1, fast_path=fast_path != "off"))
    # vouch_event writes the clean record of an event that needs no repair, in the JVM; the Python
    # function (one call per Arrow batch) validates the rest, counts every record and marks batches.
    # Only its arguments cross to Python: a vouched record's value goes as null, and the columns it
    # does not read stay in the JVM, joined back to its answers in order.
    checked = t_env.sql_query(
        "SELECT `partition`, vouched, validate_events(CASE WHEN vouched IS NULL THEN `value` END, "
        "vouched IS NOT NULL, CASE WHEN vouched IS NULL THEN `topic` END, `partition`, `offset`, "
        "source_watermark) AS verdict "
        f"FROM (SELECT `value`, `topic`, `partition`, `offset`, source_watermark, {vouched} AS vouched "
        "FROM (SELECT `value`, `topic`, `partition`, `offset`, "
        "CURRENT_WATERMARK(kafka_ts) AS source_watermark FROM raw_events))")
    # Both INSERTs below read the one Python call: the planner reuses the common sub-plan.
    t_env.create_temporary_view("checked", checked)
    sinks.add_insert_sql("INSERT INTO dlq_sink SELECT x.verdict.record FROM checked x WHERE NOT x.verdict.ok")
    # Clean events to the clean topic, each on its raw partition's number, and each batch's
    # watermark as a marker to every clean partition, right after the batch's first event: the
    # rows of one record come from one UNNEST, so the sink stays chained to the function with a
    # single input and writes in the raw order (a UNION of branches would give the sink several
    # inputs, read in any interleaving; a join with a list of partitions, a shuffled state).
    partitions = cfg.kafka.topics.partitions
    event = (f"ROW(CASE WHEN x.verdict.ok THEN {key_lookup_sql(partitions, 'x.`partition`')} END, "
             "COALESCE(x.vouched.event_time, x.verdict.event_time), COALESCE(x.vouched.record, x.verdict.record))")
    marker = "CONCAT('{\"event_time\":', CAST(x.verdict.batch_watermark AS STRING), '}')"
    markers = ", ".join(f"ROW({key_sql(key)}, x.verdict.batch_watermark, {marker})"
                        for key in partition_keys(partitions))
    sinks.add_insert_sql(
        "INSERT INTO clean_events_sink SELECT k, TO_TIMESTAMP_LTZ(t, 3), v FROM checked x CROSS JOIN UNNEST("
        f"CASE WHEN x.verdict.batch_watermark IS NULL THEN ARRAY[{event}] ELSE ARRAY[{event}, {markers}] END"
        ") AS out_rows(k, t, v) WHERE k IS NOT NULL")


def _add_feature_stage(cfg: FreshrankConfig, t_env, sinks) -> None:
    """Raw events to dead letters and the clean topic; clean events to online features and
    labelled examples on the examples topic."""
    add_validation(cfg, t_env, sinks)
    add_features(cfg, t_env, sinks)


def add_features(cfg: FreshrankConfig, t_env, sinks) -> None:
    """Table clean_events -> deduplication -> features and the label join -> online-feature sinks,
    duplicates_sink and training_examples_sink. The feature half, on its own for bench.features."""
    # 1. Deduplicate by event_id: a processing-time OVER count numbers the copies of each id (JVM
    # state with TTL, append-only), copy 1 goes on, later copies are only counted.
    # An event at or behind the clean topic's watermark enters event time 1 ms after it, as the
    # validator moves a late event up to the raw watermark: windows downstream would drop it as
    # late. That happens to an event the validator moved (it lands on the watermark the clean
    # topic's markers carry) and right after the validation half restarted. "At" counts: the user
    # and item windows and the click numbering's OVER window drop a row whose time is not above
    # their current watermark, which the row's own path has already passed on.
    numbered = t_env.sql_query(
        "SELECT event_id, type, ts, event_time, user_id, session_id, request_id, query, "
        "items.item_id AS item_ids, items.`position` AS item_positions, items.price AS item_prices, "
        "items.category AS item_categories, items.brand AS item_brands, item_id, "
        "price, quantity, category, brand, device, platform, "
        "CASE WHEN clean_time <= CURRENT_WATERMARK(clean_time) "
        "THEN CURRENT_WATERMARK(clean_time) + INTERVAL '0.001' SECOND ELSE clean_time END AS feature_time, "
        "COUNT(*) OVER (PARTITION BY event_id ORDER BY pt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS copy "
        "FROM clean_events WHERE event_id IS NOT NULL")  # not the watermark markers
    # Event time keeps the clean source's per-partition, idle-aware watermark, so no event is
    # ever late here.
    numbered = _through_datastream(t_env, numbered, "CAST(feature_time AS TIMESTAMP_LTZ(3))")
    t_env.create_temporary_view("numbered_events", numbered.drop_columns(col("feature_time")))
    t_env.create_temporary_view("events", t_env.sql_query("SELECT * FROM numbered_events WHERE copy = 1"))
    t_env.create_temporary_function("count_duplicate", count_duplicate_udf())

    # 2. Features and the label joins (SQL in flink_jobs/sql/). The feature views feed both the
    # online-feature sinks and the label join, the click join both the examples and the purchase
    # join; each is computed once (see _materialize).
    _run_sql(t_env, cfg, "03_user_events.sql")
    _add_user_window(t_env, cfg)
    _run_sql(t_env, cfg, "03_user_features.sql")
    _run_sql(t_env, cfg, "04_attribution.sql")
    _materialize(t_env, "attributed_labels_computed", "attributed_labels")
    _run_sql(t_env, cfg, "05_item_events.sql")
    _add_item_window(t_env)
    _run_sql(t_env, cfg, "05_item_features.sql")
    _run_sql(t_env, cfg, "06_labels.sql")
    _materialize(t_env, "labelled_impressions_computed", "labelled_impressions")
    _run_sql(t_env, cfg, "07_examples.sql")

    sinks.add_insert_sql("INSERT INTO duplicates_sink SELECT count_duplicate(event_id) FROM numbered_events WHERE copy > 1")
    for stmt in statements("08_online_features.sql", cfg):
        sinks.add_insert_sql(stmt)

    sinks.add_insert_sql("INSERT INTO training_examples_sink SELECT model, example FROM example_json")


def _add_training_stage(cfg: FreshrankConfig, t_env, sinks) -> None:
    """Committed examples, read back in micro-batches, to the trainer; versions, deltas, ledger out."""
    _run_sql(t_env, cfg, "09_training_input.sql")
    batches = t_env.to_data_stream(t_env.from_path("micro_batches"))
    versions = batches \
        .key_by(lambda row: row[0], key_type=Types.STRING()) \
        .process(TrainingOperator(cfg), output_type=Types.STRING()) \
        .name("train + publish").uid("freshrank-trainer")
    sinks.add_insert("model_versions_sink", t_env.from_data_stream(versions).alias("value"))
    deltas = versions.get_side_output(DELTAS_TAG) \
        .map(key_of_delta, output_type=Types.ROW_NAMED(["k", "value"], [Types.STRING(), Types.STRING()]))
    sinks.add_insert("model_deltas_sink", t_env.from_data_stream(deltas))
    model = cfg.job.model_name
    ledger = versions.get_side_output(LEDGER_TAG) \
        .map(lambda entry: Row(model, entry),
             output_type=Types.ROW_NAMED(["model", "entry"], [Types.STRING(), Types.STRING()]))
    sinks.add_insert("training_ledger_sink", t_env.from_data_stream(ledger))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="freshrank online-training job")
    parser.add_argument("--config", help="TOML config file")
    parser.add_argument("--connector-jar", help="flink-sql-connector-kafka jar (not needed under `flink run`: the cluster's lib/ holds it)")
    parser.add_argument("--stages", choices=JOB_STAGES, help="override job.stages for this submission")
    args, _ = parser.parse_known_args(argv)
    cfg = load_config(args.config)
    if args.stages:
        cfg = dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, stages=args.stages))
    env, t_env = build_environment(cfg, args.connector_jar)
    build_pipeline(cfg, env, t_env)
    env.execute(job_name(cfg))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
