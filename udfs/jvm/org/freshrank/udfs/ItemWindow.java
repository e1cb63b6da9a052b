package org.freshrank.udfs;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.runtime.typeutils.ExternalTypeInfo;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.DoubleType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.Collector;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The item window: per item, impressions and clicks over a trailing window, and per (query, item)
 * over another, strictly before each row's millisecond, in event time.
 *
 * <p>Its input is one time-ordered stream of an item's impressions (kind 0) and clicks (kind 1);
 * each row goes out once the watermark passes its time, with eight DOUBLE columns appended:
 * {@link #COUNT_COLUMNS}. For the item: impressions and clicks in [t - itemWindow, t), then those
 * at t; for the row's (query, item) pair the same over the query window (null for a row without a
 * query). Rows of one millisecond are all counted before any of them goes out, as an unbounded
 * RANGE OVER window does, so "as of after t" (the online records) is the sum of the two parts.
 *
 * <p>Why not Flink's OVER window with sliding_counts and sliding_counts_by (until 2026-12-01):
 * its operator reads and writes a row buffer per timestamp, an accumulator row, a cleanup time
 * (twice) and, for the pairs, a map entry three times per row; that was a third of the busiest
 * thread of the job. Here a row costs one list append and a timer; each watermark step, one read
 * and write of the item's window and one of each touched pair's, however many of the item's rows
 * it releases. State leaves in event time, not processing time: an item's state goes when the
 * watermark is one query window past its last row (nothing in it can count any more), a pair's
 * when its item's time has moved one query window past it.
 */
public class ItemWindow extends KeyedProcessFunction<String, RowData, RowData> {
    private static final long serialVersionUID = 1L;

    /** The appended columns, in order. */
    public static final String[] COUNT_COLUMNS = {
        "i_impr", "i_click", "i_impr_at_t", "i_click_at_t",
        "qi_impr", "qi_click", "qi_impr_at_t", "qi_click_at_t"};
    private static final int KINDS = 2;

    private final int kindIndex;
    private final int queryIndex;
    private final int timeIndex;
    private final long itemWindowMs;
    private final long queryWindowMs;
    private final InternalTypeInfo<RowData> inputType;

    private transient ListState<RowData> waiting;
    private transient ValueState<Item> items;
    private transient MapState<String, SlidingCounts.Window> pairs;
    private transient Counter lateRowsDropped;

    ItemWindow(int kindIndex, int queryIndex, int timeIndex, long itemWindowMs, long queryWindowMs,
               InternalTypeInfo<RowData> inputType) {
        if (itemWindowMs <= 0 || queryWindowMs <= 0) {
            throw new IllegalArgumentException("item window: window lengths must be > 0 ms, got "
                    + itemWindowMs + " and " + queryWindowMs);
        }
        this.kindIndex = kindIndex;
        this.queryIndex = queryIndex;
        this.timeIndex = timeIndex;
        this.itemWindowMs = itemWindowMs;
        this.queryWindowMs = queryWindowMs;
        this.inputType = inputType;
    }

    /** {@code rows} keyed by the item column, through the item window: its rows with {@link #COUNT_COLUMNS} appended. */
    public static DataStream<RowData> apply(DataStream<RowData> rows, String itemColumn, String kindColumn,
                                            String queryColumn, String timeColumn, long itemWindowMs,
                                            long queryWindowMs) {
        RowType in = rowTypeOf(rows.getType());
        InternalTypeInfo<RowData> inputType = InternalTypeInfo.of(in);
        int item = column(in, itemColumn, LogicalTypeRoot.VARCHAR);
        int kind = column(in, kindColumn, LogicalTypeRoot.INTEGER);
        int query = column(in, queryColumn, LogicalTypeRoot.VARCHAR);
        int time = column(in, timeColumn, LogicalTypeRoot.TIMESTAMP_WITH_LOCAL_TIME_ZONE);
        List<RowType.RowField> fields = new ArrayList<>(in.getFields());
        for (String name : COUNT_COLUMNS) {
            fields.add(new RowType.RowField(name, new DoubleType()));
        }
        return rows
                .keyBy(new ItemKey(item), Types.STRING)
                .process(new ItemWindow(kind, query, time, itemWindowMs, queryWindowMs, inputType),
                         InternalTypeInfo.of(new RowType(false, fields)))
                .name("item window")
                .uid("freshrank-item-window");
    }

    /** The row type of a stream of RowData (a table's toDataStream gives an ExternalTypeInfo). */
    private static RowType rowTypeOf(TypeInformation<RowData> type) {
        if (type instanceof InternalTypeInfo) {
            return ((InternalTypeInfo<RowData>) type).toRowType();
        }
        if (type instanceof ExternalTypeInfo) {
            return (RowType) ((ExternalTypeInfo<RowData>) type).getDataType().getLogicalType();
        }
        throw new IllegalArgumentException("item window: not a stream of table rows: " + type);
    }

    private static int column(RowType type, String name, LogicalTypeRoot root) {
        int index = type.getFieldIndex(name);
        if (index < 0) {
            throw new IllegalArgumentException("item window: no column " + name + " in " + type);
        }
        LogicalType field = type.getTypeAt(index);
        if (field.getTypeRoot() != root) {
            throw new IllegalArgumentException("item window: column " + name + " is " + field + ", not " + root);
        }
        return index;
    }

    /** The item id as a String: its hash is computed once per row for every state access. */
    static final class ItemKey implements KeySelector<RowData, String> {
        private static final long serialVersionUID = 1L;
        private final int index;

        ItemKey(int index) {
            this.index = index;
        }

        @Override
        public String getKey(RowData row) {
            if (row.isNullAt(index)) {
                throw new IllegalArgumentException("item window: a row without an item id: " + row);
            }
            return row.getString(index).toString();
        }
    }

    @Override
    public void open(OpenContext context) {
        waiting = getRuntimeContext().getListState(new ListStateDescriptor<>("waiting", inputType));
        items = getRuntimeContext().getState(new ValueStateDescriptor<>("item", new ItemSerializer()));
        pairs = getRuntimeContext().getMapState(new MapStateDescriptor<>(
                "pairs", StringSerializer.INSTANCE, new SlidingCounts.WindowSerializer()));
        lateRowsDropped = getRuntimeContext().getMetricGroup().counter("numLateRecordsDropped");
    }

    @Override
    public void processElement(RowData row, Context ctx, Collector<RowData> out) throws Exception {
        long watermark = ctx.timerService().currentWatermark();
        if (timeOf(row) <= watermark) {
            // Upstream moves late events past the watermark (online_training.add_features), so
            // this is a row the planner's own OVER window would have dropped too.
            lateRowsDropped.inc();
            return;
        }
        waiting.add(row);  // rows come from the network: a fresh object each, safe to keep
        ctx.timerService().registerEventTimeTimer(watermark < 0 ? 0 : watermark + 1);
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<RowData> out) throws Exception {
        long watermark = ctx.timerService().currentWatermark();
        List<RowData> ready = new ArrayList<>();
        List<RowData> later = new ArrayList<>();
        Iterable<RowData> held = waiting.get();
        if (held != null) {
            for (RowData row : held) {
                (timeOf(row) <= watermark ? ready : later).add(row);
            }
        }
        Item item = items.value();
        if (!ready.isEmpty()) {
            if (item == null) {
                item = new Item(itemWindowMs);
            }
            release(ready, item, out);
        }
        if (!later.isEmpty()) {
            waiting.update(later);
            ctx.timerService().registerEventTimeTimer(watermark + 1);
        } else if (!ready.isEmpty()) {
            waiting.clear();
        }
        if (item == null) {
            return;
        }
        boolean changed = !ready.isEmpty();
        if (later.isEmpty()) {
            // With rows still waiting, the timer at watermark + 1 comes back here first.
            long lastCounted = item.counts.latest;
            if (watermark > lastCounted + queryWindowMs) {
                // Every window of the item and of its pairs is empty and stays so until a new row.
                items.clear();
                pairs.clear();
                return;
            }
            if (item.cleanupAt <= watermark) {
                item.cleanupAt = lastCounted + queryWindowMs + 1;
                ctx.timerService().registerEventTimeTimer(item.cleanupAt);
                changed = true;
            }
        }
        if (changed) {
            items.update(item);
        }
    }

    /** Counts `ready` (times at or behind the watermark) in time order and emits each row. */
    private void release(List<RowData> ready, Item item, Collector<RowData> out) throws Exception {
        ready.sort((a, b) -> Long.compare(timeOf(a), timeOf(b)));  // stable: arrival order within a millisecond
        Map<String, SlidingCounts.Window> touched = new HashMap<>();
        int from = 0;
        while (from < ready.size()) {
            long time = timeOf(ready.get(from));
            int to = from;
            while (to < ready.size() && timeOf(ready.get(to)) == time) {
                RowData row = ready.get(to);
                int kind = row.getInt(kindIndex);
                item.counts.add(kind, time);
                String query = queryOf(row);
                if (query != null) {
                    SlidingCounts.Window pair = touched.get(query);
                    if (pair == null) {
                        pair = pairs.get(query);
                        if (pair == null) {
                            pair = new SlidingCounts.Window();
                            pair.setShape(KINDS, new long[]{queryWindowMs});
                        }
                        touched.put(query, pair);
                    }
                    pair.add(kind, time);
                }
                to++;
            }
            for (int i = from; i < to; i++) {
                RowData row = ready.get(i);
                String query = queryOf(row);
                GenericRowData counts = new GenericRowData(COUNT_COLUMNS.length);
                put(counts, 0, item.counts);
                if (query != null) {
                    put(counts, 4, touched.get(query));
                }
                out.collect(new JoinedRowData(row.getRowKind(), row, counts));
            }
            from = to;
        }
        for (Map.Entry<String, SlidingCounts.Window> pair : touched.entrySet()) {
            pairs.put(pair.getKey(), pair.getValue());
        }
        sweepPairs(item);
    }

    /** Drops the pairs whose every event left the query window, once per query window of item time. */
    private void sweepPairs(Item item) throws Exception {
        long now = item.counts.latest;
        if (item.sweptAt == Long.MIN_VALUE) {
            item.sweptAt = now;
            return;
        }
        if (now - item.sweptAt < queryWindowMs) {
            return;
        }
        item.sweptAt = now;
        List<String> idle = new ArrayList<>();
        for (Map.Entry<String, SlidingCounts.Window> pair : pairs.entries()) {
            if (pair.getValue().latest < now - queryWindowMs) {
                idle.add(pair.getKey());
            }
        }
        for (String query : idle) {
            pairs.remove(query);
        }
    }

    private static void put(GenericRowData counts, int at, SlidingCounts.Window window) {
        for (int kind = 0; kind < KINDS; kind++) {
            counts.setField(at + kind, (double) window.before(0, kind));
            counts.setField(at + KINDS + kind, (double) window.at(kind));
        }
    }

    private long timeOf(RowData row) {
        return row.getTimestamp(timeIndex, 3).getMillisecond();
    }

    private String queryOf(RowData row) {
        return row.isNullAt(queryIndex) ? null : row.getString(queryIndex).toString();
    }

    /** An item's own state: its window and when its pairs were last swept and its cleanup is due. */
    static final class Item {
        final SlidingCounts.Window counts;
        long sweptAt = Long.MIN_VALUE;
        long cleanupAt = Long.MIN_VALUE;

        Item(long itemWindowMs) {
            this(new SlidingCounts.Window());
            counts.setShape(KINDS, new long[]{itemWindowMs});
        }

        Item(SlidingCounts.Window counts) {
            this.counts = counts;
        }
    }

    /** Item's format: the two times, then its window in sliding_counts' own format. */
    public static final class ItemSerializer extends AccumulatorSerializer<Item> {
        private static final int VERSION = 1;
        private final SlidingCounts.WindowSerializer windows = new SlidingCounts.WindowSerializer();

        @Override
        public Item createInstance() {
            return new Item(new SlidingCounts.Window());
        }

        @Override
        public Item copy(Item from) {
            Item item = new Item(windows.copy(from.counts));
            item.sweptAt = from.sweptAt;
            item.cleanupAt = from.cleanupAt;
            return item;
        }

        @Override
        public void serialize(Item item, DataOutputView out) throws IOException {
            out.writeByte(VERSION);
            out.writeLong(item.sweptAt);
            out.writeLong(item.cleanupAt);
            windows.serialize(item.counts, out);
        }

        @Override
        public Item deserialize(DataInputView in) throws IOException {
            int version = in.readByte();
            if (version != VERSION) {
                throw new IOException("item window: unknown state format " + version);
            }
            long sweptAt = in.readLong();
            long cleanupAt = in.readLong();
            Item item = new Item(windows.deserialize(in));
            item.sweptAt = sweptAt;
            item.cleanupAt = cleanupAt;
            return item;
        }

        @Override
        public TypeSerializerSnapshot<Item> snapshotConfiguration() {
            return new ItemSerializerSnapshot();
        }
    }

    /** Restores ItemSerializer from a checkpoint (needs a public no-argument constructor). */
    public static final class ItemSerializerSnapshot extends SimpleTypeSerializerSnapshot<Item> {
        public ItemSerializerSnapshot() {
            super(ItemSerializer::new);
        }
    }
}
