"""Builds the job's JVM functions (udfs/jvm/, Java sources) into a jar, once per source version.

No pom and no Maven: the sources compile against the Flink jars that PyFlink ships, with the
JDK's javac, in a second or two; the jar is cached under the stack's cache directory and named
after a hash of the sources and the Flink version, so an edited source gets a new jar.
A prebuilt jar (the container image builds one) is used instead when FRESHRANK_UDF_JAR names it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from freshrank.config import REPO_ROOT

SOURCE_DIR = REPO_ROOT / "udfs" / "jvm"
PREBUILT_JAR_ENV = "FRESHRANK_UDF_JAR"
# The SQL name and the class of each JVM function the job's SQL calls. The jar also holds the user
# and item windows (UserWindow, ItemWindow: keyed DataStream operators the job wires in,
# online_training._materialize), built on sliding_counts' and attribute_labels' state classes.
JVM_FUNCTIONS = {"vouch_event": "org.freshrank.udfs.VouchEvent",
                 "json_record": "org.freshrank.udfs.JsonRecord"}
# vouch_event's limits (udfs.config.ValidationConfig fields), in the order of its arguments.
VOUCH_EVENT_LIMITS = ("max_record_bytes", "max_id_len", "max_query_len", "max_string_len", "max_items",
                      "max_position", "min_ts_ms", "max_future_skew_ms", "allowed_lateness_ms")


class JvmBuildError(RuntimeError):
    pass


def vouch_event_sql(config, value: str, watermark: str) -> str:
    """A SQL call of vouch_event (udfs/jvm/.../VouchEvent.java) on columns ``value`` (BYTES) and
    ``watermark`` (TIMESTAMP_LTZ(3)) with the limits of ``config`` (a ValidationConfig)."""
    limits = ", ".join(f"CAST({getattr(config, name)} AS BIGINT)" for name in VOUCH_EVENT_LIMITS)
    return f"vouch_event({value}, {watermark}, {limits})"


def udf_jar(cache_dir: Path) -> Path:
    """The jar of udfs/jvm/: FRESHRANK_UDF_JAR if set, else built into cache_dir/jars once."""
    prebuilt = os.environ.get(PREBUILT_JAR_ENV)
    if prebuilt:
        if not Path(prebuilt).is_file():
            raise JvmBuildError(f"{PREBUILT_JAR_ENV}={prebuilt} is not a file")
        return Path(prebuilt)
    sources = sorted(SOURCE_DIR.rglob("*.java"))
    flink_lib = flink_lib_dir()
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.relative_to(SOURCE_DIR).as_posix().encode() + b"\0" + source.read_bytes())
    digest.update(",".join(sorted(p.name for p in flink_lib.glob("*.jar"))).encode())
    jar = cache_dir / "jars" / f"freshrank-udfs-{digest.hexdigest()[:16]}.jar"
    if not jar.exists():
        _build(sources, flink_lib, jar)
    return jar


def flink_lib_dir() -> Path:
    """PyFlink's lib/ folder: the Flink jars the functions compile against."""
    import importlib.util
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise JvmBuildError("pyflink is not installed: pip install apache-flink")
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def _build(sources: list[Path], flink_lib: Path, jar: Path) -> None:
    javac = shutil.which("javac")
    if javac is None:
        raise JvmBuildError("javac not found: the job's JVM functions need a JDK 17 "
                            "(apt-get install openjdk-17-jdk-headless)")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="freshrank-udfs-") as tmp:
        classes = Path(tmp) / "classes"
        proc = subprocess.run(
            [javac, "--release", "17", "-encoding", "UTF-8", "-nowarn", "-d", str(classes),
             "-cp", str(flink_lib / "*"), *map(str, sources)],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise JvmBuildError(f"javac failed on udfs/jvm:\n{proc.stdout}{proc.stderr}")
        # Written beside the target and renamed: two jobs submitted at once may both build it.
        partial = Path(tmp) / jar.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: freshrank\n\n")
            for path in sorted(classes.rglob("*.class")):
                out.write(path, path.relative_to(classes).as_posix())
        staged = jar.with_name(f"{jar.name}.{os.getpid()}.tmp")
        shutil.copyfile(partial, staged)
        os.replace(staged, jar)
