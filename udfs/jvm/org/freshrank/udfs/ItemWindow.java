package org.freshrank.udfs;

import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.DoubleType;
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
 * over another, strictly before each row's millisecond, in event time (an {@link EventTimeWindow}
 * keyed by item).
 *
 * <p>Its input is one stream of items' impressions (kind 0) and clicks (kind 1); each row goes out
 * once the watermark passes its time, with eight DOUBLE columns appended: {@link #COUNT_COLUMNS}.
 * For the item: impressions and clicks in [t - itemWindow, t), then those at t; for the row's
 * (query, item) pair the same over the query window (null for a row without a query). "As of
 * after t" (the online records) is the sum of the two parts.
 *
 * <p>A pair is an entry of a map state in its item's state, not a key of its own: nearly every
 * impressed pair is new, and a key costs its own waiting list, timers and cleanup. A watermark
 * step reads and writes each touched pair once; RocksDB reads only those. A pair goes when its
 * item's time has moved one query window past it (a sweep once per query window of item time);
 * the item's whole state when the watermark is one query window past its last row.
 * Until 2026-12-01 this was Flink's OVER window with sliding_counts and sliding_counts_by.
 */
public class ItemWindow extends EventTimeWindow<ItemWindow.Item> {
    private static final long serialVersionUID = 1L;

    /** The appended columns, in order. */
    public static final String[] COUNT_COLUMNS = {
        "i_impr", "i_click", "i_impr_at_t", "i_click_at_t",
        "qi_impr", "qi_click", "qi_impr_at_t", "qi_click_at_t"};
    private static final int KINDS = 2;

    private final int kindIndex;
    private final int queryIndex;
    private final long itemWindowMs;
    private final long queryWindowMs;

    private transient MapState<String, SlidingCounts.Window> pairs;
    // The pairs a watermark step touched, written back once at its end.
    private transient Map<String, SlidingCounts.Window> touched;
    // Each counted row's pair (null: no query), in the order its rows go out.
    private transient List<SlidingCounts.Window> rowPairs;
    private transient int nextRow;

    ItemWindow(int kindIndex, int queryIndex, int timeIndex, long itemWindowMs, long queryWindowMs,
               InternalTypeInfo<RowData> inputType) {
        super(timeIndex, Math.max(itemWindowMs, queryWindowMs), inputType);
        if (itemWindowMs <= 0 || queryWindowMs <= 0) {
            throw new IllegalArgumentException("item window: window lengths must be > 0 ms, got "
                    + itemWindowMs + " and " + queryWindowMs);
        }
        this.kindIndex = kindIndex;
        this.queryIndex = queryIndex;
        this.itemWindowMs = itemWindowMs;
        this.queryWindowMs = queryWindowMs;
    }

    /** {@code rows} keyed by the item column, through the item window: its rows with {@link #COUNT_COLUMNS} appended. */
    public static DataStream<RowData> apply(DataStream<RowData> rows, String itemColumn, String kindColumn,
                                            String queryColumn, String timeColumn, long itemWindowMs,
                                            long queryWindowMs) {
        RowType in = rowTypeOf(rows.getType());
        List<RowType.RowField> counts = new ArrayList<>();
        for (String name : COUNT_COLUMNS) {
            counts.add(new RowType.RowField(name, new DoubleType()));
        }
        ItemWindow window = new ItemWindow(
                column(in, kindColumn, LogicalTypeRoot.INTEGER), column(in, queryColumn, LogicalTypeRoot.VARCHAR),
                column(in, timeColumn, LogicalTypeRoot.TIMESTAMP_WITH_LOCAL_TIME_ZONE), itemWindowMs, queryWindowMs,
                InternalTypeInfo.of(in));
        return keyedThrough(rows, itemColumn, window, appended(in, counts), "item window");
    }

    @Override
    Item newState() {
        return new Item(itemWindowMs);
    }

    @Override
    TypeSerializer<Item> stateSerializer() {
        return new ItemSerializer();
    }

    @Override
    void openMore() {
        pairs = getRuntimeContext().getMapState(new MapStateDescriptor<>(
                "pairs", StringSerializer.INSTANCE, new SlidingCounts.WindowSerializer()));
        touched = new HashMap<>();
        rowPairs = new ArrayList<>();
    }

    @Override
    void count(RowData row, long time, Item item) throws Exception {
        int kind = row.getInt(kindIndex);
        item.counts.add(kind, time);
        String query = queryOf(row);
        if (query == null) {
            rowPairs.add(null);
            return;
        }
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
        rowPairs.add(pair);
    }

    @Override
    void emit(RowData row, Item item, Collector<RowData> out) {
        SlidingCounts.Window pair = rowPairs.get(nextRow++);
        if (nextRow == rowPairs.size()) {
            rowPairs.clear();
            nextRow = 0;
        }
        GenericRowData counts = new GenericRowData(COUNT_COLUMNS.length);
        put(counts, 0, item.counts);
        if (pair != null) {
            put(counts, 4, pair);
        }
        out.collect(new JoinedRowData(row.getRowKind(), row, counts));
    }

    @Override
    void released(Item item) throws Exception {
        for (Map.Entry<String, SlidingCounts.Window> pair : touched.entrySet()) {
            pairs.put(pair.getKey(), pair.getValue());
        }
        touched.clear();
        sweepPairs(item);
    }

    @Override
    void clearMore() {
        pairs.clear();
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

    private String queryOf(RowData row) {
        return row.isNullAt(queryIndex) ? null : row.getString(queryIndex).toString();
    }

    /** An item's own state: its window and when its pairs were last swept and its cleanup is due. */
    static final class Item extends KeyState {
        final SlidingCounts.Window counts;
        long sweptAt = Long.MIN_VALUE;

        Item(long itemWindowMs) {
            this(new SlidingCounts.Window());
            counts.setShape(KINDS, new long[]{itemWindowMs});
        }

        Item(SlidingCounts.Window counts) {
            this.counts = counts;
        }

        @Override
        long latest() {
            return counts.latest;
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
            readVersion(in, VERSION, "item window: unknown state format");
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
