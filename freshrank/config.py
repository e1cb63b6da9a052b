"""One typed configuration object for the whole system.

Defaults are documented on each field. Values come from, in order: the defaults, an optional
TOML file (`FRESHRANK_CONFIG` or `--config`), then environment variables
`FRESHRANK_<SECTION>__<FIELD>` (e.g. `FRESHRANK_KAFKA__BOOTSTRAP=localhost:9092`).
Every section validates itself in `__post_init__` and raises `ConfigError` naming the field.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from model.config import ModelConfig, TrainerConfig
from udfs.config import ValidationConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


@dataclass(frozen=True)
class TopicsConfig:
    events: str = "freshrank.events"  # raw behaviour events, key = user_id
    dlq: str = "freshrank.events.dlq"  # dead letters with a reason code
    events_clean: str = "freshrank.events.clean"  # validated, cleaned events; partition i = events' partition i
    features_user: str = "freshrank.features.user"  # compacted, key = user_id
    features_item: str = "freshrank.features.item"  # compacted, key = item_id
    features_query_item: str = "freshrank.features.query_item"  # compacted, key = query + tab + item_id
    model_versions: str = "freshrank.model.versions"  # one record per accepted version
    model_deltas: str = "freshrank.model.deltas"  # compacted, key = model/table/row
    training_examples: str = "freshrank.training.examples"  # labelled examples, key = model
    training_ledger: str = "freshrank.training.ledger"  # one record per trained chunk: which offsets, what came of them
    partitions: int = 2  # partitions of the events topic and of the clean topic (read in parallel)

    def __post_init__(self) -> None:
        _require(self.partitions >= 1, "topics.partitions", "must be >= 1")

    def compacted(self) -> set[str]:
        return {self.features_user, self.features_item, self.features_query_item, self.model_deltas}

    def all(self) -> list[str]:
        return [self.events, self.dlq, self.events_clean, self.features_user, self.features_item,
                self.features_query_item,
                self.training_examples, self.training_ledger, self.model_versions, self.model_deltas]


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = "localhost:9092"  # where the job, the CLI and serving find the brokers
    topics: TopicsConfig = field(default_factory=TopicsConfig)

    def __post_init__(self) -> None:
        _require(":" in self.bootstrap, "kafka.bootstrap", f"expected host:port, got {self.bootstrap!r}")


@dataclass(frozen=True)
class StackConfig:
    """The local development stack started by `freshrank up`."""
    kafka_version: str = "4.1.1"  # org.apache.kafka:kafka_2.13, KRaft mode
    flink_connector_version: str = "5.0.0-2.2"  # flink-sql-connector-kafka build for Flink 2.2
    kafka_port: int = 9092
    controller_port: int = 9093
    flink_rest_port: int = 8081  # Flink web UI
    serving_port: int = 8000
    state_dir: str = ".stack"  # broker data, logs, pids (relative to the repo root unless absolute)
    cache_dir: str = "~/.cache/freshrank"  # downloaded jars, outside git
    ready_timeout_s: float = 60.0  # how long `up` waits for Kafka / Flink to answer
    taskmanager_slots: int = 4

    def __post_init__(self) -> None:
        for name in ("kafka_port", "controller_port", "flink_rest_port", "serving_port"):
            port = getattr(self, name)
            _require(0 < port < 65536, f"stack.{name}", f"not a TCP port: {port}")
        _require(self.ready_timeout_s > 0, "stack.ready_timeout_s", "must be > 0")
        _require(self.taskmanager_slots >= 1, "stack.taskmanager_slots", "must be >= 1")

    def state_path(self) -> Path:
        p = Path(self.state_dir).expanduser()
        return p if p.is_absolute() else REPO_ROOT / p

    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()


JOB_STAGES = ("all", "features", "training")
STATE_BACKENDS = ("rocksdb", "hashmap")


@dataclass(frozen=True)
class JobConfig:
    """The PyFlink online-training job."""
    model_name: str = "default"
    parallelism: int = 1
    checkpoint_interval_ms: int = 5_000  # also bounds how stale published output is (exactly-once sinks)
    checkpoint_timeout_ms: int = 600_000  # training steps hold barriers; be generous
    transaction_timeout_ms: int = 900_000  # Kafka sink transactions; > checkpoint interval + restart time
    state_backend: str = "rocksdb"  # rocksdb (incremental checkpoints) or hashmap
    # The state backend of a job that runs only the feature stage (stages = "features"); '' ->
    # state_backend. Ignored with stages = "all" or "training": one job has one backend, and the
    # trainer needs RocksDB's incremental checkpoints. hashmap: ~3x less CPU per event for the
    # windows and joins (docs/benchmarks.md), but all the state lives in the TaskManager's JVM heap
    # and every checkpoint is full: size the heap for the 24 h windows, or choose rocksdb.
    features_state_backend: str = "hashmap"
    # Flink's pipeline.object-reuse for a job that runs only the feature stage: chained operators
    # hand records on without a defensive copy. Safe for this job: every stateful SQL operator
    # reads from a hash exchange (freshly deserialised rows) and Python operators serialise.
    features_object_reuse: bool = True
    checkpoint_dir: str = ""  # '' -> <stack state dir>/checkpoints
    watermark_delay_ms: int = 5_000  # bounded out-of-orderness of event time
    idle_partition_timeout_ms: int = 10_000  # an idle partition stops holding the watermark back
    # The same for the clean topic, read by the feature stage. While events flow, the validator's
    # watermark markers keep every clean partition active (flink_jobs/clean_topic.py); this only
    # ends the wait after the last event of a stream that stops. It must outlast the validator's
    # longest silence (its start-up above all): a source that goes idle and comes back races its
    # own short and long paths (docs/design.md, known limits).
    clean_idle_timeout_ms: int = 30_000
    dedup_ttl_ms: int = 3_600_000  # an event_id is remembered at least this long (SQL state TTL = max(this, 24 h))
    click_window_ms: int = 1_800_000  # click attribution window (30 min)
    purchase_window_ms: int = 86_400_000  # purchase attribution window (24 h)
    stages: str = "all"  # all | features (events -> examples topic) | training (examples topic -> versions)
    batch_interval_ms: int = 1_000  # how often the trainer reads what arrived on the examples topic
    batch_max_examples: int = 4_096  # a training chunk: this many consecutive examples, in offset order
    batch_linger_ms: int = 2_000  # a partial chunk is trained once its first example waited this long (0: never)
    # Optimiser step size within a chunk. A cold model needs many steps before it ranks better
    # than chance; one Adam step per 4,096-example chunk is ~7 steps in 28k examples. The job's
    # trainer is not its bottleneck (the feature stage is), so smaller steps cost nothing there.
    step_examples: int = 512
    publish_interval_ms: int = 10_000  # how often a candidate version is evaluated and published
    holdout_share: float = 0.05  # share of examples never trained on, kept to judge candidates
    holdout_size: int = 5_000  # the freshest held-out examples the gate evaluates on
    gate_min_examples: int = 500  # fewer held-out examples (or no click): no new version
    gate_max_auc_drop: float = 0.005  # candidate AUC may trail the live version's by this much
    gate_max_logloss_rise: float = 0.01  # candidate log-loss may exceed the live one's by this much
    gate_min_first_auc: float = 0.55  # the first version must rank held-out examples at least this well
    model_store: str = ""  # '' -> <stack state dir>/models; a local path
    python_executable: str = ""  # '' -> the interpreter running the job

    def __post_init__(self) -> None:
        _require(self.parallelism >= 1, "job.parallelism", "must be >= 1")
        _require(self.checkpoint_interval_ms >= 100, "job.checkpoint_interval_ms", "must be >= 100")
        _require(self.state_backend in STATE_BACKENDS, "job.state_backend",
                 f"must be 'rocksdb' or 'hashmap', got {self.state_backend!r}")
        _require(self.features_state_backend in ("", *STATE_BACKENDS), "job.features_state_backend",
                 f"must be '', 'rocksdb' or 'hashmap', got {self.features_state_backend!r}")
        for name in ("watermark_delay_ms", "idle_partition_timeout_ms", "clean_idle_timeout_ms", "dedup_ttl_ms",
                     "click_window_ms", "purchase_window_ms", "batch_interval_ms",
                     "publish_interval_ms"):
            _require(getattr(self, name) > 0, f"job.{name}", "must be > 0")
        _require(self.transaction_timeout_ms > self.checkpoint_interval_ms, "job.transaction_timeout_ms",
                 "must exceed job.checkpoint_interval_ms (a transaction spans a checkpoint)")
        _require(self.batch_max_examples >= 1, "job.batch_max_examples", "must be >= 1")
        _require(self.batch_linger_ms >= 0, "job.batch_linger_ms", "must be >= 0")
        _require(self.step_examples >= 1, "job.step_examples", "must be >= 1")
        _require(self.stages in JOB_STAGES, "job.stages", f"must be one of {JOB_STAGES}, got {self.stages!r}")
        _require(0 <= self.holdout_share < 1, "job.holdout_share", "must be in [0, 1)")
        _require(self.holdout_size >= 1, "job.holdout_size", "must be >= 1")
        _require(self.gate_min_examples >= 1, "job.gate_min_examples", "must be >= 1")
        _require(self.gate_max_auc_drop >= 0 and self.gate_max_logloss_rise >= 0, "job.gate_max_*",
                 "must be >= 0")
        _require(0.5 <= self.gate_min_first_auc <= 1, "job.gate_min_first_auc", "must be in [0.5, 1]")
        _require(self.purchase_window_ms >= self.click_window_ms, "job.purchase_window_ms",
                 "must be >= job.click_window_ms")

    def job_object_reuse(self) -> bool:
        """Whether this job runs with object reuse: features_object_reuse when it runs only the
        feature stage; off otherwise (not yet measured with the training operator's tests)."""
        return self.stages == "features" and self.features_object_reuse

    def job_state_backend(self) -> str:
        """The backend this job runs with: features_state_backend when it runs only the feature
        stage, state_backend otherwise (the trainer needs RocksDB's incremental checkpoints)."""
        if self.stages == "features" and self.features_state_backend:
            return self.features_state_backend
        return self.state_backend


@dataclass(frozen=True)
class ServingConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    group_id: str = "freshrank-serving"
    poll_timeout_s: float = 0.5  # Kafka poll; bounds how fast a new version is seen
    feature_cache_keys: int = 1_000_000  # users, items and (query, item) pairs whose latest online features are kept (LRU, each)
    purchase_weight: float = 0.0  # rank score = p_click + purchase_weight * p_purchase
    restore_settle_s: float = 5.0  # after a restart, wait this long for a version's rows before serving it

    def __post_init__(self) -> None:
        _require(0 < self.port < 65536, "serving.port", f"not a TCP port: {self.port}")
        _require(self.feature_cache_keys >= 1, "serving.feature_cache_keys", "must be >= 1")
        _require(self.purchase_weight >= 0, "serving.purchase_weight", "must be >= 0")
        _require(self.restore_settle_s >= 0, "serving.restore_settle_s", "must be >= 0")


@dataclass(frozen=True)
class FreshrankConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    stack: StackConfig = field(default_factory=StackConfig)
    job: JobConfig = field(default_factory=JobConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)

    def checkpoint_dir(self) -> Path:
        return Path(self.job.checkpoint_dir) if self.job.checkpoint_dir else self.stack.state_path() / "checkpoints"

    def model_store(self) -> Path:
        return Path(self.job.model_store) if self.job.model_store else self.stack.state_path() / "models"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(value: str, hint: typing.Any, where: str) -> typing.Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # e.g. int | None: "none" or "" means None
        if value.strip().lower() in ("", "none", "null"):
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(value, inner, where)
    if hint is bool:
        lowered = value.strip().lower()
        _require(lowered in ("1", "0", "true", "false", "yes", "no"), where, f"not a boolean: {value!r}")
        return lowered in ("1", "true", "yes")
    if hint in (int, float, str):
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{where}: not a {hint.__name__}: {value!r}") from None
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(hint) or (str,)
        return tuple(_coerce(v, inner, where) for v in value.split(",") if v.strip())
    raise ConfigError(f"{where}: cannot be set from a string")


def _env_keys(cls: type, prefix: str) -> set[str]:
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        where = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= _env_keys(hints[f.name], where)
        else:
            keys.add("FRESHRANK_" + where.upper().replace(".", "__"))
    return keys


def _build(cls: type, values: dict, env: dict[str, str], prefix: str) -> typing.Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    _require(not unknown, prefix or "config", f"unknown setting(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        where = f"{prefix}.{f.name}" if prefix else f.name
        hint = hints[f.name]
        env_key = "FRESHRANK_" + where.upper().replace(".", "__")
        if dataclasses.is_dataclass(hint):
            sub = values.get(f.name, {})
            _require(isinstance(sub, dict), where, "must be a table")
            kwargs[f.name] = _build(hint, sub, env, where)
        elif env_key in env:
            kwargs[f.name] = _coerce(env[env_key], hint, where)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> FreshrankConfig:
    """Defaults, then the TOML file (if any), then FRESHRANK_* environment variables."""
    env = dict(os.environ if env is None else env)
    path = path or env.get("FRESHRANK_CONFIG")
    values: dict = {}
    if path:
        try:
            values = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(k for k in env if k.startswith("FRESHRANK_") and k != "FRESHRANK_CONFIG"
                     and k not in _env_keys(FreshrankConfig, ""))
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
    return _build(FreshrankConfig, values, env, "")
