"""A lib/ folder for Flink's JVMs: PyFlink's own jars plus the job's (the Kafka connector, the JVM
functions), so that a JVM started on it loads them once, on its class path.

A jar shipped with a job instead (pipeline.jars, `flink run -j`) is loaded by that job's own class
loader: every job gets classes of its own, and the JIT compiler compiles the Kafka client, the
connector and the functions again for each (bench.features: 0.79x CPU per event with the jars in
lib/). Flink's docs put connectors in lib/, and so does the container image (k8s/Dockerfile).
Shipping stays the fallback: a jar is shipped with the job when that very file is not on the class
path of the JVM that plans it (a JVM started before, a cluster started with an older build of the
functions: the job's class loader looks in its own jars first).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from freshrank.jvm_udfs import flink_lib_dir


def compose(folder: Path, jars: Iterable[Path]) -> Path:
    """Make `folder` afresh: links to every jar of PyFlink's lib/ and to `jars`."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for jar in [*sorted(flink_lib_dir().glob("*.jar")), *jars]:
        (folder / jar.name).symlink_to(jar.resolve())
    return folder


def cached(cache_dir: Path, jars: Iterable[Path]) -> Path:
    """compose() once per set of jars, under cache_dir/flink-lib/."""
    jars = [Path(jar).resolve() for jar in jars]
    for jar in jars:
        if not jar.is_file():
            raise FileNotFoundError(f"{jar}: not a jar file")
    digest = hashlib.sha256("\n".join(map(str, [flink_lib_dir().resolve(), *jars])).encode()).hexdigest()[:16]
    folder = cache_dir / "flink-lib" / digest
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Made beside and renamed: two processes may compose it at once; the second keeps the first's.
        staged = compose(Path(tempfile.mkdtemp(prefix=f"{digest}.", dir=folder.parent)), jars)
        try:
            os.rename(staged, folder)
        except OSError:
            shutil.rmtree(staged)
    return folder


def on_class_path(jar: Path, class_path: str) -> bool:
    """Whether `jar` itself (links resolved) is an entry of a JVM's `class_path`."""
    target = Path(jar).resolve()
    return any(entry and Path(entry).resolve() == target for entry in class_path.split(os.pathsep))


def prefer_for_local_jvm(cache_dir: Path, jars: Iterable[Path]) -> None:
    """Have the JVM that PyFlink starts for a local run (on its first Flink call) start on
    cached(cache_dir, jars). Does nothing under `flink run` (the client's JVM is already there)
    or when FLINK_HOME or FLINK_LIB_DIR is set (someone chose, or PyFlink already started)."""
    if any(name in os.environ for name in ("PYFLINK_GATEWAY_PORT", "FLINK_HOME", "FLINK_LIB_DIR")):
        return
    folder = cached(cache_dir, jars)
    # Without FLINK_HOME, PyFlink sets FLINK_LIB_DIR to its own lib/ as it looks for its home.
    os.environ["FLINK_HOME"] = str(flink_lib_dir().parent)
    os.environ["FLINK_LIB_DIR"] = str(folder)
