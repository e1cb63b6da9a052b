"""The lib/ folder that puts the job's jars on a Flink JVM's class path (freshrank.flink_lib)."""
from __future__ import annotations

import os

import pytest

from freshrank import flink_lib
from freshrank.jvm_udfs import flink_lib_dir


@pytest.fixture
def jar(tmp_path):
    path = tmp_path / "jars" / "connector.jar"
    path.parent.mkdir()
    path.write_bytes(b"PK")
    return path


def test_compose_links_pyflinks_jars_and_the_jobs(tmp_path, jar):
    folder = flink_lib.compose(tmp_path / "lib", [jar])
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([*(p.name for p in flink_lib_dir().glob("*.jar")), "connector.jar"])
    assert any(name.startswith("flink-dist") for name in names)  # what Flink's scripts look for
    assert (folder / "connector.jar").resolve() == jar.resolve()


def test_compose_starts_afresh(tmp_path, jar):
    folder = tmp_path / "lib"
    flink_lib.compose(folder, [jar])
    flink_lib.compose(folder, [])
    assert not (folder / "connector.jar").exists()


def test_cached_is_made_once_per_set_of_jars(tmp_path, jar):
    first = flink_lib.cached(tmp_path / "cache", [jar])
    assert flink_lib.cached(tmp_path / "cache", [jar]) == first
    other = jar.with_name("udfs.jar")
    other.write_bytes(b"PK")
    second = flink_lib.cached(tmp_path / "cache", [jar, other])
    assert second != first and (second / "udfs.jar").exists() and not (first / "udfs.jar").exists()
    assert [p.name for p in (tmp_path / "cache" / "flink-lib").iterdir() if "." in p.name] == []  # no staging left


def test_cached_refuses_a_missing_jar(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jar"):
        flink_lib.cached(tmp_path, [tmp_path / "missing.jar"])


def test_on_class_path_sees_through_links(tmp_path, jar):
    folder = flink_lib.compose(tmp_path / "lib", [jar])
    class_path = os.pathsep.join(str(p) for p in sorted(folder.iterdir()))
    assert flink_lib.on_class_path(jar, class_path)
    assert flink_lib.on_class_path(folder / "connector.jar", str(jar))
    other = jar.with_name("other.jar")
    other.write_bytes(b"PK")
    assert not flink_lib.on_class_path(other, class_path)
    assert not flink_lib.on_class_path(jar, "")


def test_prefer_for_local_jvm_points_pyflink_at_the_folder(tmp_path, jar, monkeypatch):
    for name in ("PYFLINK_GATEWAY_PORT", "FLINK_HOME", "FLINK_LIB_DIR"):
        monkeypatch.delenv(name, raising=False)
    flink_lib.prefer_for_local_jvm(tmp_path, [jar])
    assert os.environ["FLINK_LIB_DIR"] == str(flink_lib.cached(tmp_path, [jar]))
    assert os.environ["FLINK_HOME"] == str(flink_lib_dir().parent)


@pytest.mark.parametrize("already", ["PYFLINK_GATEWAY_PORT", "FLINK_HOME", "FLINK_LIB_DIR"])
def test_prefer_for_local_jvm_leaves_a_chosen_or_running_jvm_alone(tmp_path, jar, monkeypatch, already):
    for name in ("PYFLINK_GATEWAY_PORT", "FLINK_HOME", "FLINK_LIB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(already, "set")
    flink_lib.prefer_for_local_jvm(tmp_path, [jar])
    assert not (tmp_path / "flink-lib").exists()
    assert {name: os.environ.get(name) for name in ("PYFLINK_GATEWAY_PORT", "FLINK_HOME", "FLINK_LIB_DIR")} == {
        name: ("set" if name == already else None) for name in ("PYFLINK_GATEWAY_PORT", "FLINK_HOME", "FLINK_LIB_DIR")}
