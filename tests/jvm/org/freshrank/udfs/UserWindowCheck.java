package org.freshrank.udfs;

import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.BigIntType;
import org.apache.flink.table.types.logical.IntType;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.VarCharType;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;

/**
 * Runs UserWindow in a local Flink job (WindowRun: two window subtasks, a failure halfway, a
 * restore from a checkpoint) on a random stream of a few users' impressions, clicks, add-to-carts,
 * purchases and searches, and checks every row it emits against brute force: the counts of each
 * kind in each window strictly before the row's millisecond and at it; for a click or purchase,
 * the impression it belongs to (its own request's, or else the user's latest, impression of the
 * item at or before it, within the click or purchase window); and the latest category up to and
 * including the row's millisecond. Rows of a millisecond, rows out of order by up to the
 * watermark's bound, and pauses longer than every window (the user's state goes in between) all
 * occur. Run by tests/unit/test_sliding_counts.py; exits non-zero on the first mismatch; prints
 * the number of checked rows last. Arguments: rows, seed, state backend (hashmap or rocksdb).
 */
public final class UserWindowCheck {
    static final long[] WINDOWS_MS = {20, 60, 200};
    static final long CLICK_WINDOW_MS = 30;
    static final long PURCHASE_WINDOW_MS = 120;
    static final long MAX_DELAY_MS = 5;
    static final String[] TYPES = {"impression", "impression", "click", "click", "add_to_cart", "purchase", "search"};
    static final RowType ROW = RowType.of(new LogicalType[]{
        new VarCharType(VarCharType.MAX_LENGTH), new VarCharType(VarCharType.MAX_LENGTH),
        new ArrayType(new VarCharType(VarCharType.MAX_LENGTH)), new VarCharType(VarCharType.MAX_LENGTH),
        new VarCharType(VarCharType.MAX_LENGTH), new VarCharType(VarCharType.MAX_LENGTH), new IntType(),
        new VarCharType(VarCharType.MAX_LENGTH), new BigIntType(), new LocalZonedTimestampType(3), new BigIntType(false)},
        new String[]{"user_id", "type", "item_ids", "item_id", "request_id", "query", "interaction_kind",
            "interaction_category", "interaction_time", "upstream_rowtime", "seq"});
    static final int FIRST_COLUMN = ROW.getFieldCount();

    /** One event; items is set for an impression, item for the others. */
    record Event(String user, String type, String[] items, String item, String request, String query,
                 String category, long time, long seq) implements Serializable {
        Integer kind() {
            return switch (type) {
                case "click" -> 0;
                case "add_to_cart" -> 1;
                case "purchase" -> 2;
                default -> null;
            };
        }

        String interactionCategory() {
            return kind() == null ? null : category;
        }

        RowData row() {
            Object[] ids = items == null ? null : Arrays.stream(items).map(StringData::fromString).toArray();
            String interaction = interactionCategory();
            return GenericRowData.of(s(user), s(type), ids == null ? null : new GenericArrayData(ids), s(item),
                    s(request), s(query), kind(), s(interaction), interaction == null ? null : time,
                    TimestampData.fromEpochMillis(time), seq);
        }

        private static StringData s(String value) {
            return value == null ? null : StringData.fromString(value);
        }
    }

    public static void main(String[] args) throws Exception {
        int count = Integer.parseInt(args[0]);
        List<Event> events = stream(count, new Random(Long.parseLong(args[1])));
        GeneratorFunction<Long, RowData> nth = i -> events.get(i.intValue()).row();
        String[] names = {"a", "b", "c"};
        Map<Long, RowData> got = WindowRun.run(nth, count, ROW, 9, MAX_DELAY_MS, 10, args.length > 2 ? args[2] : "hashmap",
                rows -> UserWindow.apply(rows, "upstream_rowtime", WINDOWS_MS, names, CLICK_WINDOW_MS, PURCHASE_WINDOW_MS));
        for (Event e : events) {
            List<Object> actual = columns(got.get(e.seq()), e);
            List<Object> expected = bruteForce(events, e);
            if (!actual.equals(expected)) {
                WindowRun.fail("row " + e + ": got " + actual + ", expected " + expected);
            }
        }
        System.out.println("checked rows: " + events.size());
    }

    static List<Object> columns(RowData row, Event event) {
        List<Object> out = new ArrayList<>();
        for (int c = 0; c < 12; c++) {
            out.add(row.getDouble(FIRST_COLUMN + c));
        }
        for (int c = 12; c < 14; c++) {
            out.add(row.isNullAt(FIRST_COLUMN + c) ? null : row.getString(FIRST_COLUMN + c).toString());
        }
        Long categoryTime = row.isNullAt(FIRST_COLUMN + 15) ? null : row.getLong(FIRST_COLUMN + 15);
        boolean shown = categoryTime != null && event.time() - categoryTime <= WINDOWS_MS[2];
        out.add(shown ? row.getString(FIRST_COLUMN + 14).toString() : null);
        out.add(shown ? categoryTime : null);
        return out;
    }

    /** A few users' sessions: impressions of a few items per request, labels with and without request. */
    static List<Event> stream(int count, Random random) {
        List<Event> events = new ArrayList<>();
        String[] users = {"u0", "u0", "u0", "u1", "u1", "u2"};
        String[] items = {"i0", "i1", "i2", "i3"};
        String[] queries = {"q0", "q1", null};
        String[] categories = {"c0", "c1", null};
        long time = 1_000;
        for (long seq = 0; seq < count; seq++) {
            int step = random.nextInt(100);
            time += step == 0 ? WINDOWS_MS[2] + 1 + random.nextInt(100) : step < 50 ? 0 : random.nextInt(6);
            long jittered = Math.max(1_000, time - random.nextInt((int) MAX_DELAY_MS + 1));
            String user = users[random.nextInt(users.length)];
            String type = TYPES[random.nextInt(TYPES.length)];
            String request = random.nextInt(4) == 0 ? null : "r" + random.nextInt(5);
            String category = categories[random.nextInt(categories.length)];
            String[] shown = null;
            String item = null;
            if (type.equals("impression")) {
                shown = new String[1 + random.nextInt(3)];
                for (int k = 0; k < shown.length; k++) {
                    shown[k] = random.nextInt(10) == 0 ? null : items[random.nextInt(items.length)];
                }
            } else if (!type.equals("search") && random.nextInt(10) != 0) {
                item = items[random.nextInt(items.length)];
            }
            events.add(new Event(user, type, shown, item, request, queries[random.nextInt(queries.length)],
                    category, jittered, seq));
        }
        return events;
    }

    static List<Object> bruteForce(List<Event> events, Event row) {
        double[] counts = new double[12];
        Event attributed = null;
        Event lastCategory = null;
        long window = row.type().equals("click") ? CLICK_WINDOW_MS : row.type().equals("purchase") ? PURCHASE_WINDOW_MS : -1;
        for (Event e : events) {
            if (!e.user().equals(row.user())) {
                continue;
            }
            long age = row.time() - e.time();
            if (e.kind() != null) {
                for (int w = 0; w < WINDOWS_MS.length; w++) {
                    if (age > 0 && age <= WINDOWS_MS[w]) {
                        counts[3 * w + e.kind()]++;
                    }
                }
                if (age == 0) {
                    counts[9 + e.kind()]++;
                }
            }
            // Older than the longest window, the job shows no category (03_user_features.sql), and
            // the user's state may be gone.
            if (age >= 0 && age <= WINDOWS_MS[2] && e.interactionCategory() != null && later(e, lastCategory)) {
                lastCategory = e;
            }
            if (window >= 0 && row.item() != null && age >= 0 && age <= window && e.type().equals("impression")
                    && e.request() != null && Arrays.asList(e.items()).contains(row.item())
                    && (row.request() == null || row.request().equals(e.request())) && later(e, attributed)) {
                attributed = e;
            }
        }
        List<Object> out = new ArrayList<>();
        for (double c : counts) {
            out.add(c);
        }
        out.add(attributed == null ? null : attributed.request());
        out.add(attributed == null ? null : Objects.requireNonNullElse(attributed.query(), ""));
        out.add(lastCategory == null ? null : lastCategory.category());
        out.add(lastCategory == null ? null : lastCategory.time());
        return out;
    }

    /** Whether e comes after best in the window's order: time, then arrival. */
    static boolean later(Event e, Event best) {
        return best == null || e.time() > best.time() || (e.time() == best.time() && e.seq() > best.seq());
    }
}
