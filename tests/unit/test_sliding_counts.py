"""The feature stage's JVM code (udfs/jvm/: sliding_counts, attribute_labels, the user and item
windows): built by freshrank.jvm_udfs and checked against brute-force definitions by tests/jvm/
(random streams, serializer round trips; the windows in a local Flink job that fails once and
resumes from a checkpoint). The job that calls them runs in tests/integration/test_features.py."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from freshrank.jvm_udfs import JVM_FUNCTIONS, JvmBuildError, udf_jar

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (javac)")


def test_the_jar_holds_every_registered_function_and_is_built_once(tmp_path):
    import zipfile
    jar = udf_jar(tmp_path)
    names = set(zipfile.ZipFile(jar).namelist())
    for java_class in JVM_FUNCTIONS.values():
        assert java_class.replace(".", "/") + ".class" in names
    mtime = jar.stat().st_mtime_ns
    assert udf_jar(tmp_path) == jar and jar.stat().st_mtime_ns == mtime


def test_a_prebuilt_jar_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("FRESHRANK_UDF_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(JvmBuildError, match="is not a file"):
        udf_jar(tmp_path)


@pytest.fixture(scope="module")
def checks(jvm_classpath):
    """A function that runs one tests/jvm/ check class and returns the count it prints last."""
    def run(check: str, *args: str) -> int:
        proc = subprocess.run(["java", "-ea", "-cp", jvm_classpath,
                               f"org.freshrank.udfs.{check}", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return int(proc.stdout.split()[-1])
    return run


def test_sliding_counts_match_a_brute_force_count(checks):
    assert checks("SlidingCountsCheck", "2000", "7") > 100_000  # every event of 2,000 random streams


def test_attribute_labels_match_a_brute_force_search(checks):
    assert checks("AttributeLabelsCheck", "3000", "11") > 50_000  # every label of 3,000 random streams


@pytest.mark.parametrize("backend", ["hashmap", "rocksdb"])
def test_the_item_window_matches_a_brute_force_count_across_a_restart(checks, backend):
    # every row of a random stream, through two window subtasks, a failure and a restore
    assert checks("ItemWindowCheck", "6000", "5", backend) == 6000


@pytest.mark.parametrize("backend", ["hashmap", "rocksdb"])
def test_the_user_window_matches_brute_force_across_a_restart(checks, backend):
    # counts, attribution and recent category of every row of a random stream
    assert checks("UserWindowCheck", "6000", "7", backend) == 6000
