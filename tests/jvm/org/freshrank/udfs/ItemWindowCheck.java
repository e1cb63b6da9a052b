package org.freshrank.udfs;

import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.types.logical.BigIntType;
import org.apache.flink.table.types.logical.IntType;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.VarCharType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;

/**
 * Runs ItemWindow in a local Flink job (a MiniCluster in this JVM) on a random stream and checks
 * every row it emits against a brute-force count; run by tests/unit/test_sliding_counts.py.
 *
 * <p>The stream: a few items and queries (and null queries), impressions and clicks, several rows
 * per millisecond, rows out of order by up to the watermark's bound (so none is late), and pauses
 * between the two window lengths and beyond both, around which an item's state goes (event-time
 * cleanup) and its pairs are swept, neither of which may change a count. Run by WindowRun (two
 * window subtasks, a failure halfway, a restore from a checkpoint), each input row must come out
 * exactly once, with the counts of the rows of its item (and of its pair) in [t - window, t) and
 * at t. Exits non-zero on the first mismatch; prints the number of checked rows last. Arguments: rows, seed, and the state backend (hashmap or rocksdb).
 */
public final class ItemWindowCheck {
    static final long ITEM_WINDOW_MS = 40;
    static final long QUERY_WINDOW_MS = 150;
    static final long MAX_DELAY_MS = 6;
    static final RowType ROW = RowType.of(
            new org.apache.flink.table.types.logical.LogicalType[]{
                new VarCharType(VarCharType.MAX_LENGTH), new IntType(false), new VarCharType(VarCharType.MAX_LENGTH),
                new LocalZonedTimestampType(3), new BigIntType(false)},
            new String[]{"item_id", "item_kind", "query", "upstream_rowtime", "seq"});

    /** One input row: item, kind, query (or null), time, sequence number. */
    record Event(String item, int kind, String query, long time, long seq) implements java.io.Serializable {
        RowData row() {
            return GenericRowData.of(StringData.fromString(item), kind,
                    query == null ? null : StringData.fromString(query),
                    TimestampData.fromEpochMillis(time), seq);
        }
    }

    public static void main(String[] args) throws Exception {
        int count = Integer.parseInt(args[0]);
        List<Event> events = stream(count, new Random(Long.parseLong(args[1])));
        GeneratorFunction<Long, RowData> nth = i -> events.get(i.intValue()).row();
        Map<Long, RowData> got = WindowRun.run(nth, count, ROW, 3, MAX_DELAY_MS, 4, args.length > 2 ? args[2] : "hashmap",
                rows -> ItemWindow.apply(rows, "item_id", "item_kind", "query", "upstream_rowtime",
                        ITEM_WINDOW_MS, QUERY_WINDOW_MS));
        for (Event e : events) {
            RowData row = got.get(e.seq());
            double[] counts = new double[ItemWindow.COUNT_COLUMNS.length];
            for (int c = 0; c < counts.length; c++) {
                counts[c] = row.isNullAt(5 + c) ? Double.NaN : row.getDouble(5 + c);
            }
            double[] expected = bruteForce(events, e);
            if (!Arrays.equals(counts, expected)) {
                WindowRun.fail("row " + e + ": got " + Arrays.toString(counts) + ", expected " + Arrays.toString(expected));
            }
        }
        System.out.println("checked rows: " + events.size());
    }

    /**
     * Rows of a few items (some far rarer than others) and queries, jittered by up to MAX_DELAY_MS;
     * now and then a pause longer than the item window but shorter than the query window, or
     * longer than both.
     */
    static List<Event> stream(int count, Random random) {
        List<Event> events = new ArrayList<>();
        String[] items = {"i0", "i0", "i0", "i0", "i1", "i1", "i1", "i2", "i2", "i3"};
        String[] queries = {"q0", "q1", "q2"};
        long time = 1_000;
        for (long seq = 0; seq < count; seq++) {
            int step = random.nextInt(100);
            if (step == 0) {
                time += QUERY_WINDOW_MS + 1 + random.nextInt(200);
            } else if (step < 4) {
                time += ITEM_WINDOW_MS + 1 + random.nextInt((int) (QUERY_WINDOW_MS - ITEM_WINDOW_MS));
            } else if (step >= 60) {
                time += random.nextInt(4);
            }
            long jittered = time - random.nextInt((int) MAX_DELAY_MS + 1);
            String item = random.nextInt(50) == 0 ? "i4" : items[random.nextInt(items.length)];
            String query = random.nextInt(6) == 0 ? null : queries[random.nextInt(queries.length)];
            events.add(new Event(item, random.nextInt(2), query, Math.max(jittered, 1_000), seq));
        }
        return events;
    }

    static double[] bruteForce(List<Event> events, Event row) {
        double[] counts = new double[8];
        for (Event e : events) {
            if (!e.item().equals(row.item())) {
                continue;
            }
            long age = row.time() - e.time();
            if (age > 0 && age <= ITEM_WINDOW_MS) {
                counts[e.kind()]++;
            } else if (age == 0) {
                counts[2 + e.kind()]++;
            }
        }
        if (row.query() == null) {
            Arrays.fill(counts, 4, 8, Double.NaN);
            return counts;
        }
        for (Event e : events) {
            if (!e.item().equals(row.item()) || !Objects.equals(e.query(), row.query())) {
                continue;
            }
            long age = row.time() - e.time();
            if (age > 0 && age <= QUERY_WINDOW_MS) {
                counts[4 + e.kind()]++;
            } else if (age == 0) {
                counts[6 + e.kind()]++;
            }
        }
        return counts;
    }
}
