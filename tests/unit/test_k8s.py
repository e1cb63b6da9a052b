"""The Kubernetes manifests stay in step with the code: versions, entry point, config names."""
from __future__ import annotations

from pathlib import Path

import pyflink
import yaml

from freshrank.config import load_config

K8S = Path(__file__).resolve().parents[2] / "k8s"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def test_flink_deployment_runs_the_job_with_the_shipped_python_driver():
    (deployment,) = documents("flinkdeployment.yaml")
    job = deployment["spec"]["job"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    jar = Path(job["jarURI"].removeprefix("local://")).name
    assert (Path(pyflink.__file__).parent / "opt" / jar).exists(), f"{jar} is not the Flink we ship"
    from pyflink.version import __version__ as flink_version
    assert deployment["spec"]["flinkVersion"] == "v" + "_".join(flink_version.split(".")[:2])
    assert job["upgradeMode"] in ("last-state", "savepoint")  # the model lives in state


def test_env_overrides_in_manifests_are_real_settings():
    env = {}
    for doc in documents("flinkdeployment.yaml") + documents("serving.yaml"):
        text = yaml.safe_dump(doc)
        for line in text.splitlines():
            if "FRESHRANK_" in line and "name:" in line:
                env[line.split("name:")[1].strip()] = "1"
    assert env, "the manifests configure freshrank through FRESHRANK_* variables"
    values = {k: {"FRESHRANK_KAFKA__BOOTSTRAP": "kafka:9092", "FRESHRANK_SERVING__PORT": "8000",
                  "FRESHRANK_KAFKA__TOPICS__PARTITIONS": "12"}.get(k, "x")
              for k in env}
    values["FRESHRANK_SERVING__HOST"] = "0.0.0.0"
    values["FRESHRANK_JOB__MODEL_STORE"] = "/models"
    load_config(env=values)  # raises ConfigError on an unknown or malformed setting


def _env_settings(node):
    """(name, value) of every FRESHRANK_* environment variable set anywhere in the documents."""
    if isinstance(node, dict):
        if str(node.get("name", "")).startswith("FRESHRANK_") and "value" in node:
            yield node["name"], str(node["value"])
        for child in node.values():
            yield from _env_settings(child)
    elif isinstance(node, list):
        for child in node:
            yield from _env_settings(child)


def test_topics_match_the_config():
    names = {d["metadata"]["name"]: d["spec"] for d in documents("topics.yaml")}
    topics = load_config(env={}).kafka.topics
    assert set(names) == set(topics.all())
    for name in topics.compacted():
        assert names[name]["config"]["cleanup.policy"] == "compact"
    # Clean partition i holds raw partition i's events (flink_jobs/clean_topic.py).
    assert names[topics.events_clean]["partitions"] == names[topics.events]["partitions"]
    job_env = dict(_env_settings(documents("flinkdeployment.yaml")))
    assert job_env.get("FRESHRANK_KAFKA__TOPICS__PARTITIONS") == str(names[topics.events]["partitions"]), job_env
