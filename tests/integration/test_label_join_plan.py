"""The label joins' plan, as Flink's planner makes it from the job's SQL (no job runs).

Both interval joins (06_labels.sql, 07_examples.sql) are keyed by the request alone, with the
item's equality left in the join condition: one key per impression instead of one per impressed
item. The SQL gets there by writing that equality as a range, which a future planner could
simplify back into an `=` and so into the key, silently; this test would then fail.
"""
from __future__ import annotations

import re

import pytest

from freshrank.config import load_config
from freshrank.stack import ensure_artifacts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plans():
    """The optimized plans of the click join (materialized on its own) and of the statement set
    that holds the purchase join."""
    from flink_jobs import online_training as job

    cfg = load_config()
    env, t_env = job.build_environment(cfg, str(ensure_artifacts(cfg.stack, log=lambda *_: None).connector_jar))
    job._run_sql(t_env, cfg, "01_source.sql")
    job._run_sql(t_env, cfg, "02_sinks.sql")
    sinks = t_env.create_statement_set()
    job.add_features(cfg, t_env, sinks)
    return {"click": t_env.sql_query("SELECT * FROM labelled_impressions_computed").explain(),
            "purchase": sinks.explain()}


def execution_plan(explained: str) -> list[str]:
    return explained.split("== Optimized Execution Plan ==", 1)[1].splitlines()


def interval_joins(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Each IntervalJoin line with its two input lines (the lines of its depth that follow it)."""
    joins = []
    for i, line in enumerate(lines):
        column = line.find("IntervalJoin(")
        if column < 0:
            continue
        inputs = [after[column + 3:] for after in lines[i + 1:]
                  if len(after) > column + 3 and after[column:column + 3] in (":- ", "+- ")]
        joins.append((line[column:], inputs[:2]))
    return joins


@pytest.mark.parametrize("join, join_type", [("click", "LeftOuterJoin"), ("purchase", "InnerJoin")])
def test_label_joins_are_keyed_by_the_request_alone(plans, join, join_type):
    joins = [(line, inputs) for line, inputs in interval_joins(execution_plan(plans[join]))
             if f"joinType=[{join_type}]" in line]
    assert len(joins) == 1, f"expected one {join_type} interval join in the {join} plan"
    line, inputs = joins[0]
    assert inputs == ["Exchange(distribution=[hash[request_id]])"] * 2, line
    # The item's equality is still checked, in the condition.
    assert re.search(r"item_id >= item_id0\) AND \(item_id <= item_id0", line), line
