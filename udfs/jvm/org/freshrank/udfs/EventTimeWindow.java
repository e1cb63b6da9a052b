package org.freshrank.udfs;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.ExternalTypeInfo;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.Collector;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * What the job's own windows (ItemWindow, UserWindow) share: an unbounded event-time window per
 * key of a stream of table rows, each row out once the watermark passes its time, with columns of
 * the key's state as of that row appended, as an unbounded RANGE OVER window gives them.
 *
 * <p>A row is appended to the key's waiting list and a timer set at the next watermark. When the
 * watermark passes, the key's waiting rows are counted in time order, all rows of a millisecond
 * before any of them goes out (so a row's columns can hold what lies strictly before its
 * millisecond, and apart what lies at it), and the key's state is read and written once per
 * watermark step, however many of its rows the step releases.
 *
 * <p>Why not Flink's OVER window with aggregate functions: its operator reads and writes a row
 * buffer per timestamp, the accumulator row and a cleanup time (twice) for every row, and those
 * lookups were a third of the job's busiest thread. State also leaves in event time here, not by
 * the processing-time TTL of the SQL operators: a key's state goes when the watermark is
 * {@code keepMs} past its last row, when nothing in it can count any more (one timer per key,
 * moved at most once per keepMs of its time). A row at or behind the watermark is counted in
 * {@code numLateRecordsDropped} and dropped, as the OVER operator does (the job moves late events
 * past the watermark before its windows, online_training.add_features).
 */
public abstract class EventTimeWindow<S extends EventTimeWindow.KeyState>
        extends KeyedProcessFunction<String, RowData, RowData> {
    private static final long serialVersionUID = 1L;

    private final int timeIndex;
    private final long keepMs;
    private final InternalTypeInfo<RowData> inputType;

    private transient ListState<RowData> waiting;
    private transient ValueState<S> keyState;
    private transient Counter lateRowsDropped;

    /** A key's own state: the time of its last counted row, and when its cleanup timer is due. */
    public abstract static class KeyState {
        long cleanupAt = Long.MIN_VALUE;

        abstract long latest();
    }

    protected EventTimeWindow(int timeIndex, long keepMs, InternalTypeInfo<RowData> inputType) {
        if (keepMs <= 0) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": window lengths must be > 0 ms, got " + keepMs);
        }
        this.timeIndex = timeIndex;
        this.keepMs = keepMs;
        this.inputType = inputType;
    }

    /** The key's state, created when its first row is counted. */
    abstract S newState();

    abstract TypeSerializer<S> stateSerializer();

    /** Opens the subclass's own state, besides the key's waiting rows and KeyState. */
    void openMore() {
    }

    /** Adds one row (time at or behind the watermark, in time order) to the key's state. */
    abstract void count(RowData row, long time, S state) throws Exception;

    /** Emits one row with its columns, once every row of its millisecond has been counted. */
    abstract void emit(RowData row, S state, Collector<RowData> out) throws Exception;

    /** After a watermark step's rows went out, before the key's state is written. */
    void released(S state) throws Exception {
    }

    /** Clears the subclass's own state of the current key. */
    void clearMore() throws Exception {
    }

    @Override
    public void open(OpenContext context) {
        waiting = getRuntimeContext().getListState(new ListStateDescriptor<>("waiting", inputType));
        keyState = getRuntimeContext().getState(new ValueStateDescriptor<>("key", stateSerializer()));
        lateRowsDropped = getRuntimeContext().getMetricGroup().counter("numLateRecordsDropped");
        openMore();
    }

    @Override
    public void processElement(RowData row, Context ctx, Collector<RowData> out) throws Exception {
        long watermark = ctx.timerService().currentWatermark();
        if (timeOf(row) <= watermark) {
            lateRowsDropped.inc();
            return;
        }
        waiting.add(row);  // rows come from the network: a fresh object each, safe to keep
        ctx.timerService().registerEventTimeTimer(watermark < 0 ? 0 : watermark + 1);
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<RowData> out) throws Exception {
        long watermark = ctx.timerService().currentWatermark();
        List<Timed> ready = new ArrayList<>();
        List<RowData> later = new ArrayList<>();
        Iterable<RowData> held = waiting.get();
        if (held != null) {
            for (RowData row : held) {
                long time = timeOf(row);
                if (time <= watermark) {
                    ready.add(new Timed(time, row));
                } else {
                    later.add(row);
                }
            }
        }
        S state = keyState.value();
        if (!ready.isEmpty()) {
            if (state == null) {
                state = newState();
            }
            release(ready, state, out);
        }
        if (!later.isEmpty()) {
            waiting.update(later);
            ctx.timerService().registerEventTimeTimer(watermark + 1);
        } else if (!ready.isEmpty()) {
            waiting.clear();
        }
        if (state == null) {
            return;
        }
        boolean changed = !ready.isEmpty();
        if (later.isEmpty()) {
            // With rows still waiting, the timer at watermark + 1 comes back here first.
            long latest = state.latest();
            if (watermark > latest + keepMs) {
                keyState.clear();
                clearMore();
                return;
            }
            if (state.cleanupAt <= watermark) {
                state.cleanupAt = latest + keepMs + 1;
                ctx.timerService().registerEventTimeTimer(state.cleanupAt);
                changed = true;
            }
        }
        if (changed) {
            keyState.update(state);
        }
    }

    private void release(List<Timed> ready, S state, Collector<RowData> out) throws Exception {
        ready.sort(Comparator.comparingLong(Timed::time));  // stable: arrival order within a millisecond
        int from = 0;
        while (from < ready.size()) {
            long time = ready.get(from).time();
            int to = from;
            while (to < ready.size() && ready.get(to).time() == time) {
                count(ready.get(to).row(), time, state);
                to++;
            }
            for (int i = from; i < to; i++) {
                emit(ready.get(i).row(), state, out);
            }
            from = to;
        }
        released(state);
    }

    /** A released row with its time, read once (reading it makes a TimestampData each time). */
    private record Timed(long time, RowData row) {
    }

    private long timeOf(RowData row) {
        return row.getTimestamp(timeIndex, 3).getMillisecond();
    }

    // ------------------------------------------------------------------ wiring helpers
    /** The row type of a stream of RowData (a table's toDataStream gives an ExternalTypeInfo). */
    static RowType rowTypeOf(TypeInformation<RowData> type) {
        if (type instanceof InternalTypeInfo) {
            return ((InternalTypeInfo<RowData>) type).toRowType();
        }
        if (type instanceof ExternalTypeInfo) {
            return (RowType) ((ExternalTypeInfo<RowData>) type).getDataType().getLogicalType();
        }
        throw new IllegalArgumentException("not a stream of table rows: " + type);
    }

    /** The index of column `name`, checked to be of type `root`. */
    static int column(RowType type, String name, LogicalTypeRoot root) {
        int index = type.getFieldIndex(name);
        if (index < 0) {
            throw new IllegalArgumentException("no column " + name + " in " + type);
        }
        LogicalType field = type.getTypeAt(index);
        if (field.getTypeRoot() != root) {
            throw new IllegalArgumentException("column " + name + " is " + field + ", not " + root);
        }
        return index;
    }

    /** `in`'s columns, then `appended`. */
    static RowType appended(RowType in, List<RowType.RowField> appended) {
        List<RowType.RowField> fields = new ArrayList<>(in.getFields());
        fields.addAll(appended);
        return new RowType(false, fields);
    }

    /** `rows` keyed by the string column `keyColumn`, through `window`, with output type `out`. */
    static DataStream<RowData> keyedThrough(DataStream<RowData> rows, String keyColumn,
                                            EventTimeWindow<?> window, RowType out, String name) {
        int key = column(rowTypeOf(rows.getType()), keyColumn, LogicalTypeRoot.VARCHAR);
        return rows
                .keyBy(new StringKey(key), Types.STRING)
                .process(window, InternalTypeInfo.of(out))
                .name(name)
                .uid("freshrank-" + name.replace(' ', '-'));
    }

    /** A string column as the key: a String's hash is computed once per row for every state access. */
    static final class StringKey implements KeySelector<RowData, String> {
        private static final long serialVersionUID = 1L;
        private final int index;

        StringKey(int index) {
            this.index = index;
        }

        @Override
        public String getKey(RowData row) {
            if (row.isNullAt(index)) {
                throw new IllegalArgumentException("a row without a key: " + row);
            }
            return row.getString(index).toString();
        }
    }
}
