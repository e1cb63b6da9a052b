"""Table -> DataStream -> Table hops that keep Flink's internal row format.

The job goes through a DataStream after the validation function (so the Python function runs
once for both branches, and to declare a processing-time attribute and the source watermarks).
PyFlink's `to_data_stream` hands out external `Row`s: every field is converted to a Java object
(each string decoded from UTF-8 into a java.lang.String, each array copied into a Java array) and
`from_data_stream` converts them all back, per record, on the JVM. Bridged to `RowData`, the
stream carries the planner's own rows and both conversions are the identity.
"""
from __future__ import annotations

from pyflink.datastream import DataStream
from pyflink.java_gateway import get_gateway


def to_internal_data_stream(t_env, table) -> DataStream:
    """`table` as a DataStream of internal rows (RowData), for `t_env.from_data_stream(...)`.

    Only for going back into the Table API: Python DataStream functions cannot read RowData.
    """
    j_table = table._j_table
    row_data = get_gateway().jvm.org.apache.flink.table.data.RowData._java_lang_class
    j_type = j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data)
    return DataStream(t_env._j_tenv.toDataStream(j_table, j_type))
