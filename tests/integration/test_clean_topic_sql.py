"""The job's SQL for the clean topic, evaluated by Flink itself (a local batch query, no Kafka)."""
from __future__ import annotations

import pytest

from flink_jobs.clean_topic import key_lookup_sql, key_sql, partition_keys

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def t_env():
    from pyflink.table import EnvironmentSettings, TableEnvironment
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("parallelism.default", "1")
    return env


def rows(t_env, sql):
    with t_env.execute_sql(sql).collect() as results:
        return [tuple(row) for row in results]


@pytest.mark.parametrize("partitions", [2, 12])
def test_each_raw_partition_gets_the_key_of_its_clean_partition(t_env, partitions):
    """Byte-exact keys (a key with one byte more or less hashes to another partition); raw
    partitions beyond the count wrap around."""
    values = ", ".join(f"({p})" for p in range(partitions + 2))
    got = rows(t_env, f"SELECT p, {key_lookup_sql(partitions, 'p')} FROM (VALUES {values}) AS source(p) ORDER BY p")
    keys = partition_keys(partitions)
    assert got == [(p, keys[p % partitions]) for p in range(partitions + 2)]
    assert rows(t_env, f"SELECT {key_sql(keys[0])}, {key_sql('p10-100')}") == [(keys[0], "p10-100")]
