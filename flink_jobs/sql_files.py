"""Loads the job's SQL (flink_jobs/sql/*.sql) with the configured values filled in."""
from __future__ import annotations

from pathlib import Path

from freshrank.config import FreshrankConfig
from udfs.features import CTR_PRIOR_CLICKS, CTR_PRIOR_STRENGTH

SQL_DIR = Path(__file__).resolve().parent / "sql"
FEATURE_WINDOWS_MS = {"w5m": 5 * 60_000, "w1h": 3_600_000, "w24h": 86_400_000}
LONGEST_FEATURE_WINDOW_MS = max(FEATURE_WINDOWS_MS.values())
# The producer settings of the sinks written once per event or impressed item (clean events,
# online features, examples): batches of up to 20 ms and 512 KB per partition, lz4-compressed.
# A transactional sink's records are not visible before the commit anyway (the at-least-once
# clean sink waits 20 ms at most), and fewer, larger requests cost the producer and the broker
# (on the same cores here) less.
BATCHED_PRODUCER = ("'properties.linger.ms' = '20',\n  'properties.batch.size' = '524288',\n"
                    "  'properties.compression.type' = 'lz4',")


def interval(ms: int) -> str:
    """A Flink SQL DAY TO SECOND(3) literal body ('D HH:MM:SS.mmm') for a duration in ms."""
    seconds, millis = divmod(int(ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def sql_values(cfg: FreshrankConfig) -> dict[str, str]:
    topics, job = cfg.kafka.topics, cfg.job
    return {
        "bootstrap": cfg.kafka.bootstrap,
        "group_id": f"freshrank-job-{job.model_name}",
        "txn_prefix": f"freshrank-{job.model_name}",
        "transaction_timeout_ms": str(job.transaction_timeout_ms),
        "topic_events": topics.events,
        "topic_dlq": topics.dlq,
        "topic_events_clean": topics.events_clean,
        "clean_partitions": str(topics.partitions),
        "topic_features_user": topics.features_user,
        "topic_features_item": topics.features_item,
        "topic_features_query_item": topics.features_query_item,
        "topic_model_versions": topics.model_versions,
        "topic_model_deltas": topics.model_deltas,
        "topic_training_examples": topics.training_examples,
        "topic_training_ledger": topics.training_ledger,
        "watermark_delay": interval(job.watermark_delay_ms),
        "idle_timeout_ms": str(job.idle_partition_timeout_ms),
        "clean_idle_timeout_ms": str(job.clean_idle_timeout_ms),
        **{name: interval(ms) for name, ms in FEATURE_WINDOWS_MS.items()},
        **{f"{name}_ms": str(ms) for name, ms in FEATURE_WINDOWS_MS.items()},
        "ctr_prior_clicks": repr(CTR_PRIOR_CLICKS),
        "ctr_prior_impressions": repr(CTR_PRIOR_STRENGTH),
        "click_window": interval(job.click_window_ms),
        "click_window_ms": str(int(job.click_window_ms)),
        "purchase_window_ms": str(int(job.purchase_window_ms)),
        "purchase_window": interval(job.purchase_window_ms),
        "batch_interval": interval(job.batch_interval_ms),
        "model_name": job.model_name,
        "batched_producer": BATCHED_PRODUCER,
    }


def statements(name: str, cfg: FreshrankConfig) -> list[str]:
    """The ';'-separated statements of one SQL file, formatted, comments kept."""
    text = (SQL_DIR / name).read_text().format(**sql_values(cfg))
    return [s.strip() for s in text.split(";\n") if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in statement.splitlines())
