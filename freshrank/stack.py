"""The local development stack: a real Kafka broker (KRaft) and a standalone Flink cluster.

Jars come from Maven Central through `mvn` (no pom.xml in git: one is written into the cache at
run time), are cached outside git and checked against the sha256 sums in `stack/checksums.sha256`.
Everything started here writes a pid file under the stack's state dir, so `down` stops exactly
what `up` started.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from freshrank import flink_lib
from freshrank.config import REPO_ROOT, FreshrankConfig, StackConfig
from freshrank.jvm_udfs import udf_jar

CHECKSUMS_FILE = REPO_ROOT / "stack" / "checksums.sha256"


class StackError(RuntimeError):
    """Something the stack needs is missing or did not come up; the message is one line."""


# ---------------------------------------------------------------------------------- artifacts
@dataclass(frozen=True)
class Artifacts:
    kafka_libs: Path  # the broker's runtime classpath (kafka_2.13 and its dependencies)
    connector_jar: Path  # flink-sql-connector-kafka for our Flink version

    def kafka_classpath(self) -> str:
        return str(self.kafka_libs / "*")


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.freshrank</groupId><artifactId>{artifact}</artifactId><version>0</version>
  <dependencies>{deps}
  </dependencies>
</project>
"""
_DEP = "\n    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pinned_checksums() -> dict[str, str]:
    sums = {}
    for line in CHECKSUMS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            digest, name = line.split()
            sums[name] = digest
    return sums


def _mvn_copy(deps: list[tuple[str, str, str]], out_dir: Path, work_dir: Path) -> None:
    """Resolve deps (and their runtime dependencies) into out_dir with strict checksum checks."""
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) not found: install it (apt-get install maven) to fetch Kafka and the Flink connector")
    work_dir.mkdir(parents=True, exist_ok=True)
    pom = _POM.format(artifact=work_dir.name, deps="".join(_DEP.format(g=g, a=a, v=v) for g, a, v in deps))
    (work_dir / "pom.xml").write_text(pom)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-B", "-q", "-C", "-f", str(work_dir / "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise StackError("download failed (mvn dependency:copy-dependencies): " + " | ".join(last))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def _verify(paths: list[Path]) -> None:
    pinned = _pinned_checksums()
    for path in paths:
        expected = pinned.get(path.name)
        if expected is None:
            raise StackError(f"no pinned sha256 for {path.name} in {CHECKSUMS_FILE.name}: add it after checking the jar")
        actual = _sha256(path)
        if actual != expected:
            raise StackError(f"checksum mismatch for {path}: expected {expected}, got {actual}; delete it and retry")


def ensure_artifacts(cfg: StackConfig, log=print) -> Artifacts:
    """Fetch (once) and verify the Kafka broker and the Flink Kafka connector."""
    root = cfg.cache_path() / "artifacts"
    kafka_dir = root / f"kafka_2.13-{cfg.kafka_version}"
    connector_dir = root / f"flink-sql-connector-kafka-{cfg.flink_connector_version}"
    kafka_jar = kafka_dir / "libs" / f"kafka_2.13-{cfg.kafka_version}.jar"
    connector_jar = connector_dir / "libs" / f"flink-sql-connector-kafka-{cfg.flink_connector_version}.jar"
    if not kafka_jar.exists():
        log(f"fetching Apache Kafka {cfg.kafka_version} (broker, KRaft) from Maven Central ...")
        _mvn_copy([("org.apache.kafka", "kafka_2.13", cfg.kafka_version),
                   # Kafka logs through slf4j; this binding sends it to log4j2 so the broker log is readable.
                   ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")],
                  kafka_dir / "libs", kafka_dir / "pom")
    if not connector_jar.exists():
        log(f"fetching flink-sql-connector-kafka {cfg.flink_connector_version} from Maven Central ...")
        _mvn_copy([("org.apache.flink", "flink-sql-connector-kafka", cfg.flink_connector_version)],
                  connector_dir / "libs", connector_dir / "pom")
        # Only the shaded connector is needed; its transitive jars would clash with Flink's own.
        for extra in (connector_dir / "libs").glob("*.jar"):
            if extra != connector_jar:
                extra.unlink()
    _verify([kafka_jar, kafka_jar.with_name(f"kafka-clients-{cfg.kafka_version}.jar"), connector_jar])
    return Artifacts(kafka_dir / "libs", connector_jar)


# ------------------------------------------------------------------------------------ helpers
def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("Java not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless) and put java on PATH")
    return java


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _require_free(port: int, what: str) -> None:
    if port_open(port):
        raise StackError(f"port {port} is in use ({what}): stop whatever holds it or set another port in the config")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int, exclude: set[int] = frozenset()) -> list[int]:
    """Every live process below pid, read from /proc (parents before their children), leaving
    out `exclude` and everything below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child in exclude:
                continue
            found.append(child)
            todo.append(child)
    return found


def stop_pid(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM the process group (the process and its children), then SIGKILL after grace_s.
    Descendants outside the group (the TaskManager's Python workers) that outlive it are killed
    too: an orphaned worker would otherwise keep running after `make down`."""
    below = descendants(pid)
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
        if not pid_alive(pid):
            break
    for child in below:
        if pid_alive(child):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _spawn(cmd: list[str], log_path: Path, pid_path: Path, env: dict | None = None, cwd: Path | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=cwd)
    pid_path.write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_until(check, timeout_s: float, what: str, log_hint: Path, alive=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up: see {log_hint}")
        time.sleep(0.5)
    raise StackError(f"{what} not ready after {timeout_s:.0f} s: see {log_hint}")


# -------------------------------------------------------------------------------------- Kafka
_SERVER_PROPERTIES = """# written by freshrank; single node, broker + controller (KRaft, no ZooKeeper)
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:{controller_port}
listeners=PLAINTEXT://localhost:{kafka_port},CONTROLLER://localhost:{controller_port}
advertised.listeners=PLAINTEXT://localhost:{kafka_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dirs}
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Flink's exactly-once sink keeps a transaction open across a checkpoint and a restart.
transaction.max.timeout.ms=3600000
# Generated histories carry old event times; keep by size, not by age, on this dev broker.
log.retention.ms=-1
log.retention.bytes=1073741824
log.cleaner.enable=true
"""

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class KafkaBroker:
    def __init__(self, cfg: StackConfig, artifacts: Artifacts):
        self.cfg = cfg
        self.artifacts = artifacts
        self.dir = cfg.state_path() / "kafka"
        self.pid_file = cfg.state_path() / "pids" / "kafka.pid"
        self.log_file = self.dir / "broker.log"

    def pid(self) -> int | None:
        pid = _read_pid(self.pid_file)
        return pid if pid and pid_alive(pid) else None

    def ready(self) -> bool:
        if not port_open(self.cfg.kafka_port):
            return False
        from confluent_kafka.admin import AdminClient
        try:
            AdminClient({"bootstrap.servers": f"localhost:{self.cfg.kafka_port}"}).list_topics(timeout=2)
            return True
        except Exception:  # KafkaException while the broker is still electing itself
            return False

    def start(self, log=print, wait: bool = True) -> None:
        """Start the broker; wait=False returns once it is launched (then call wait_ready)."""
        if self.pid():
            log(f"kafka already running (pid {self.pid()}) on localhost:{self.cfg.kafka_port}")
            return
        java = require_java()
        _require_free(self.cfg.kafka_port, "Kafka"), _require_free(self.cfg.controller_port, "Kafka controller")
        data = self.dir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        props.write_text(_SERVER_PROPERTIES.format(kafka_port=self.cfg.kafka_port,
                                                   controller_port=self.cfg.controller_port, log_dirs=data))
        log4j = self.dir / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log_file=self.log_file))
        base = [java, "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={log4j}", "-cp",
                self.artifacts.kafka_classpath()]
        if not (data / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            fmt = subprocess.run(base + ["kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cluster_id}",
                                        "-c", str(props)], capture_output=True, text=True)
            if fmt.returncode != 0:
                raise StackError("formatting Kafka storage failed: " + (fmt.stdout + fmt.stderr).strip().splitlines()[-1])
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid = _spawn(base + ["kafka.Kafka", str(props)], self.dir / "stdout.log", self.pid_file)
        log(f"kafka starting (pid {pid}) on localhost:{self.cfg.kafka_port} ...")
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        pid = self.pid()
        _wait_until(self.ready, self.cfg.ready_timeout_s, "Kafka broker", self.log_file,
                    alive=lambda: pid is not None and pid_alive(pid))

    def stop(self) -> bool:
        pid = self.pid()
        if pid:
            stop_pid(pid)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None


def _kafka_cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes in url-safe base64 without padding; one in 64 starts
    # with '-', which is why the caller passes it as --cluster-id=<id>.
    import base64
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def create_topics(cfg: FreshrankConfig, bootstrap: str | None = None, log=print) -> None:
    """Create the design's topics; compacted where a consumer needs only the latest per key."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap or cfg.kafka.bootstrap})
    topics = cfg.kafka.topics
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = []
    for name in topics.all():
        if name in existing:
            continue
        partitions = topics.partitions if name in (topics.events, topics.events_clean) else 1
        conf = {"cleanup.policy": "compact"} if name in topics.compacted() else {}
        wanted.append(NewTopic(name, num_partitions=partitions, replication_factor=1, config=conf))
    for name, fut in admin.create_topics(wanted).items() if wanted else []:
        try:
            fut.result(timeout=30)
            log(f"  topic {name} created")
        except Exception as exc:  # TOPIC_ALREADY_EXISTS in a race is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise StackError(f"could not create topic {name}: {exc}") from None


# -------------------------------------------------------------------------------------- Flink
def flink_home() -> Path:
    import pyflink
    return Path(pyflink.__file__).resolve().parent


class FlinkCluster:
    """A standalone session cluster (one JobManager, one TaskManager) from the pip package's Flink."""

    def __init__(self, cfg: FreshrankConfig):
        self.cfg = cfg
        self.dir = cfg.stack.state_path() / "flink"
        self.conf_dir = self.dir / "conf"
        self.pid_dir = self.dir / "pids"
        self.log_dir = self.dir / "log"
        self.lib_dir = self.dir / "lib"  # PyFlink's jars, the Kafka connector and the JVM functions

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(FLINK_CONF_DIR=str(self.conf_dir), FLINK_LOG_DIR=str(self.log_dir),
                   FLINK_PID_DIR=str(self.pid_dir), FLINK_HOME=str(flink_home()))
        # The cluster and `flink run` share one lib/, so the client sees the jars the cluster has.
        env["FLINK_LIB_DIR"] = str(self.lib_dir if self.lib_dir.is_dir() else flink_home() / "lib")
        # The TaskManager starts Python workers; they must find our packages and the venv's torch.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def _write_conf(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties", "logback.xml"):
            shutil.copy(flink_home() / "conf" / name, self.conf_dir / name)
        stack, job = self.cfg.stack, self.cfg.job
        java_opts = _read_default_java_opts()
        python = job.python_executable or sys.executable
        (self.conf_dir / "config.yaml").write_text(f"""# written by freshrank up
env:
  java:
    opts:
      all: {java_opts}
      # `flink run` is a short-lived JVM that spends its life loading and planning: without the
      # C2 compiler and with the serial GC, two parallel submissions take ~22 s instead of ~32 s.
      client: -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
  pid:
    dir: {self.pid_dir}
jobmanager:
  bind-host: localhost
  rpc: {{address: localhost, port: {stack.flink_rest_port + 42}}}
  memory: {{process: {{size: 1024m}}}}
  execution: {{failover-strategy: region}}
taskmanager:
  bind-host: localhost
  host: localhost
  numberOfTaskSlots: {stack.taskmanager_slots}
  # Managed memory is RocksDB's block cache and write buffers and the Python workers' memory,
  # shared by the slots: 0.4 of 4 GB runs the feature windows at about half the CPU per event of
  # 0.2 of 2 GB (bench.features, RocksDB, 512 MB against 128 MB of managed memory).
  memory:
    process: {{size: 4096m}}
    managed: {{fraction: 0.4}}
rest:
  address: localhost
  bind-address: localhost
  port: {stack.flink_rest_port}
blob: {{server: {{port: "{stack.flink_rest_port + 43}"}}}}
python:
  executable: {python}
  client: {{executable: {python}}}
parallelism: {{default: 1}}
# A killed TaskManager is noticed within seconds, not after the default 50 s.
heartbeat: {{interval: 2000, timeout: 20000}}
restart-strategy:
  type: fixed-delay
  fixed-delay: {{attempts: 1000, delay: 2 s}}
""")

    def rest(self, path: str, timeout: float = 3.0):
        import json
        import urllib.request
        with urllib.request.urlopen(f"http://localhost:{self.cfg.stack.flink_rest_port}{path}", timeout=timeout) as resp:
            return json.loads(resp.read())

    def ready(self) -> bool:
        try:
            return self.rest("/overview").get("taskmanagers", 0) >= 1
        except Exception:  # not listening yet
            return False

    def pids(self) -> list[int]:
        pids = []
        for pid_file in self.pid_dir.glob("*.pid"):
            for line in pid_file.read_text().split():
                if line.isdigit() and pid_alive(int(line)):
                    pids.append(int(line))
        return pids

    def start(self, log=print, wait: bool = True) -> None:
        """Start a JobManager and a TaskManager; wait=False returns once they are launched."""
        if self.pids() and self.ready():
            log(f"flink already running, web UI on http://localhost:{self.cfg.stack.flink_rest_port}")
            return
        require_java()
        for port, what in ((self.cfg.stack.flink_rest_port, "Flink web UI / REST"),
                           (self.cfg.stack.flink_rest_port + 42, "Flink JobManager RPC")):
            _require_free(port, what)
        self._write_conf()
        # In lib/, the jobs share one copy of the connector's and the functions' classes (freshrank.flink_lib).
        flink_lib.compose(self.lib_dir, [ensure_artifacts(self.cfg.stack, log).connector_jar,
                                         udf_jar(self.cfg.stack.cache_path())])
        self.log_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = flink_home() / "bin"
        for script in ("jobmanager.sh", "taskmanager.sh"):
            proc = subprocess.run(["bash", str(bin_dir / script), "start"], env=self.env(), capture_output=True, text=True)
            if proc.returncode != 0:
                raise StackError(f"{script} start failed: {(proc.stdout + proc.stderr).strip()[-300:]}")
        log(f"flink starting, web UI on http://localhost:{self.cfg.stack.flink_rest_port} ...")
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        _wait_until(self.ready, self.cfg.stack.ready_timeout_s, "Flink cluster", self.log_dir)

    def stop(self) -> bool:
        pids = self.pids()
        for pid in pids:
            stop_pid(pid)
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()
        return bool(pids)

    def job_metrics(self, job_id: str, names: list[str]) -> dict[str, float]:
        """Custom metrics by short name (e.g. 'events_in'), summed over vertices and subtasks."""
        import urllib.parse
        totals: dict[str, float] = {}
        for vertex in self.rest(f"/jobs/{job_id}").get("vertices", []):
            base = f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
            available = [m["id"] for m in self.rest(base)]
            wanted = {m: short for m in available for short in names if m.endswith("freshrank." + short)}
            if not wanted:
                continue
            query = urllib.parse.quote(",".join(sorted(wanted)), safe=",")
            for metric in self.rest(base + "?get=" + query):
                short = wanted[metric["id"]]
                totals[short] = totals.get(short, 0.0) + float(metric.get("sum", 0.0))
        return totals

    def cancel(self, job_id: str, timeout_s: float = 60.0) -> None:
        import urllib.request
        request = urllib.request.Request(
            f"http://localhost:{self.cfg.stack.flink_rest_port}/jobs/{job_id}?mode=cancel", method="PATCH")
        urllib.request.urlopen(request, timeout=10).read()
        _wait_until(lambda: self.rest(f"/jobs/{job_id}")["state"] in ("CANCELED", "FAILED", "FINISHED"),
                    timeout_s, f"cancelling job {job_id}", self.log_dir)

    def submit(self, job_args: list[str], log=print) -> str:
        """Submit the PyFlink job detached; returns the Flink job id."""
        artifacts = ensure_artifacts(self.cfg.stack, log)
        python = self.cfg.job.python_executable or sys.executable
        # A cluster started before its lib/ held the connector gets it with the job.
        ship = [] if (self.lib_dir / artifacts.connector_jar.name).exists() else ["-j", str(artifacts.connector_jar)]
        cmd = ["bash", str(flink_home() / "bin" / "flink"), "run", "-d",
               "-m", f"localhost:{self.cfg.stack.flink_rest_port}",
               "-pyexec", python, "-pyclientexec", python, *ship,
               "-pym", "flink_jobs.online_training", *job_args]
        proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, cwd=REPO_ROOT)
        out = proc.stdout + proc.stderr
        for line in out.splitlines():
            if "JobID" in line:
                return line.split()[-1]
        raise StackError("job submission failed: " + " | ".join(out.strip().splitlines()[-5:]))


def submit_split(flink: FlinkCluster, job_args: list[str]) -> list[tuple[str, str]]:
    """Submit the job as two, the feature stage and the trainer, at once: each `flink run` spends
    tens of seconds starting a JVM and planning before it talks to the cluster.
    Returns [(stages, job id)]."""
    from concurrent.futures import ThreadPoolExecutor
    stages = ("features", "training")
    with ThreadPoolExecutor(len(stages)) as pool:
        ids = list(pool.map(lambda s: flink.submit(job_args + ["--stages", s], log=lambda *_: None), stages))
    return list(zip(stages, ids))


def _read_default_java_opts() -> str:
    for line in (flink_home() / "conf" / "config.yaml").read_text().splitlines():
        if line.strip().startswith("all: --add-exports"):
            return line.split("all:", 1)[1].strip()
    return ""


# ----------------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    cfg: FreshrankConfig

    def up(self, log=print, flink: bool = True, wait_for_flink: bool = True) -> Artifacts:
        """Kafka with its topics, and Flink; both JVMs start at once, since each takes seconds.
        wait_for_flink=False returns once the topics exist (then FlinkCluster.wait_ready)."""
        artifacts = ensure_artifacts(self.cfg.stack, log)
        broker, cluster = KafkaBroker(self.cfg.stack, artifacts), FlinkCluster(self.cfg)
        broker.start(log, wait=False)
        if flink:
            cluster.start(log, wait=False)
        broker.wait_ready()
        create_topics(self.cfg, f"localhost:{self.cfg.stack.kafka_port}", log)
        if flink and wait_for_flink:
            cluster.wait_ready()
        return artifacts

    def down(self, log=print) -> None:
        """Stop what up/run/produce/serve started, by pid: clients first, the broker last."""
        pid_dir = self.cfg.stack.state_path() / "pids"
        for pid_file in sorted(pid_dir.glob("*.pid")) if pid_dir.exists() else []:
            if pid_file.name == "kafka.pid":
                continue
            pid = _read_pid(pid_file)
            if pid and pid_alive(pid):
                stop_pid(pid)
                log(f"{pid_file.stem} stopped (pid {pid})")
            pid_file.unlink(missing_ok=True)
        log("flink stopped" if FlinkCluster(self.cfg).stop() else "flink was not running")
        stopped = KafkaBroker(self.cfg.stack, Artifacts(Path(), Path())).stop()
        log("kafka stopped" if stopped else "kafka was not running")

    def spawn(self, name: str, cmd: list[str]) -> int:
        """Start a long-running helper process (producer, serving) that `down` will stop. One of
        that name still running from an earlier start is stopped first: its pid file is about to
        be overwritten, and `down` would no longer find it."""
        state = self.cfg.stack.state_path()
        (state / "pids").mkdir(parents=True, exist_ok=True)
        earlier = _read_pid(state / "pids" / f"{name}.pid")
        if earlier and pid_alive(earlier):
            stop_pid(earlier)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        return _spawn(cmd, state / "logs" / f"{name}.log", state / "pids" / f"{name}.pid", env=env, cwd=REPO_ROOT)

    def status(self) -> dict:
        cfg = self.cfg.stack
        broker = KafkaBroker(cfg, Artifacts(Path(), Path()))
        flink = FlinkCluster(self.cfg)
        jobs = []
        if flink.ready():
            try:
                jobs = flink.rest("/jobs/overview").get("jobs", [])
            except Exception:
                jobs = []
        return {
            "kafka": {"pid": broker.pid(), "ready": broker.ready(), "bootstrap": f"localhost:{cfg.kafka_port}"},
            "flink": {"pids": flink.pids(), "ready": flink.ready(), "ui": f"http://localhost:{cfg.flink_rest_port}",
                      "jobs": [{"id": j["jid"], "name": j["name"], "state": j["state"]} for j in jobs]},
        }
