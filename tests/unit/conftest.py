"""Fixtures shared by the unit tests."""
from __future__ import annotations

import subprocess

import pytest

from freshrank.config import REPO_ROOT


@pytest.fixture(scope="session")
def jvm_classpath(tmp_path_factory) -> str:
    """The job's JVM functions (udfs/jvm/, built by freshrank.jvm_udfs) and tests/jvm/, compiled,
    with Flink's jars: the classpath to run a tests/jvm/ class on."""
    from freshrank.jvm_udfs import flink_lib_dir, udf_jar
    build = tmp_path_factory.mktemp("jvm")
    classpath = f"{udf_jar(build)}:{flink_lib_dir() / '*'}"
    sources = sorted(str(p) for p in (REPO_ROOT / "tests" / "jvm").rglob("*.java"))
    subprocess.run(["javac", "--release", "17", "-d", str(build / "classes"), "-cp", classpath, *sources],
                   check=True, capture_output=True)
    return f"{build / 'classes'}:{classpath}"
