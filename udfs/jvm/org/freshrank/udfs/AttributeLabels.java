package org.freshrank.udfs;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

import java.io.IOException;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Attributes a user's clicks and purchases to the impression each belongs to, over the user's
 * unbounded RANGE OVER window ordered by rowtime:
 * {@code attribute_labels(type, item_ids, item_id, request_id, query, rowtime, click_window_ms,
 * purchase_window_ms) OVER w}.
 *
 * <p>An impression row ({@code type = 'impression'}) records each of its items with its request,
 * query and time. A click or purchase row with an {@code item_id} asks for the impression it
 * belongs to: with a {@code request_id}, the latest impression of the item in that request; without,
 * the user's latest impression of the item; either at or before the label (its own millisecond
 * included) and at most the click or purchase window older. Because Flink's RANGE operator gives
 * every row of a millisecond the same value, the result is a map for all the labels of the current
 * millisecond, keyed by {@link #labelKey}: type TAB (request_id or '') TAB item_id, to ROW(request_id, query,
 * impression_time); a label without an entry belongs to no impression. Null when the millisecond
 * has no label.
 *
 * <p>Why not an OVER window per (request or user, item), which the job used first: every
 * impressed item then entered it twice as its own row, and each (key, item) held its own state and
 * timers. Here each event is one row of the user's window, which the counts read anyway, and the
 * state is one time-ordered list of the user's impressed items in the longest window.
 *
 * <p>The job's user window (UserWindow) keeps this accumulator, {@link Impressions}, in its state
 * and asks it for each label directly; the aggregate function stays for SQL (as the job used it
 * until 2026-12-01) and for its brute-force check (tests/jvm/AttributeLabelsCheck).
 */
@FunctionHint(
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = AttributeLabels.Impressions.class,
                rawSerializer = AttributeLabels.ImpressionsSerializer.class),
        output = @DataTypeHint("MAP<STRING, ROW<request_id STRING, query STRING, impression_time BIGINT>>"))
public class AttributeLabels extends AggregateFunction<Map<String, Row>, AttributeLabels.Impressions> {

    @Override
    public Impressions createAccumulator() {
        return new Impressions();
    }

    public void accumulate(Impressions acc, String type, String[] itemIds, String itemId, String requestId,
                           String query, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant time,
                           Long clickWindowMs, Long purchaseWindowMs) {
        long now = time.toEpochMilli();
        acc.advance(now, Math.max(clickWindowMs, purchaseWindowMs));
        if ("impression".equals(type)) {
            acc.impressed(now, itemIds, requestId, query);
        } else if (itemId != null && ("click".equals(type) || "purchase".equals(type))) {
            long windowMs = "click".equals(type) ? clickWindowMs : purchaseWindowMs;
            acc.pending.add(new Label(type, requestId, itemId, windowMs));
        }
    }

    @Override
    public Map<String, Row> getValue(Impressions acc) {
        if (acc.pending.isEmpty()) {
            return null;
        }
        Map<String, Row> out = new HashMap<>();
        for (Label label : acc.pending) {
            Seen seen = acc.attributed(label.itemId, label.requestId, label.windowMs);
            if (seen != null) {
                out.put(labelKey(label.type, label.requestId, label.itemId), Row.of(seen.requestId, seen.query, seen.time));
            }
        }
        return out;
    }

    /** The map key of a label: its type, its own request_id (or '') and its item, tab-separated. */
    public static String labelKey(String type, String requestId, String itemId) {
        return type + "\t" + (requestId == null ? "" : requestId) + "\t" + itemId;
    }

    /** A click or purchase of the current millisecond, with its attribution window. */
    record Label(String type, String requestId, String itemId, long windowMs) {
    }

    /** One impressed item. */
    static final class Seen {
        final long time;
        final String item;
        final String requestId;
        final String query;

        Seen(long time, String item, String requestId, String query) {
            this.time = time;
            this.item = item;
            this.requestId = requestId;
            this.query = query;
        }
    }

    /** The accumulator: the user's impressed items in time order, and by item. */
    public static final class Impressions {
        long now = Long.MIN_VALUE;
        final ArrayDeque<Seen> inOrder = new ArrayDeque<>();
        final HashMap<String, ArrayDeque<Seen>> byItem = new HashMap<>();
        final List<Label> pending = new ArrayList<>();

        void advance(long time, long keepMs) {
            if (time < now) {
                throw new IllegalStateException("attribute_labels: time went back from " + now + " to " + time);
            }
            if (time > now) {
                now = time;
                pending.clear();
                // Older than every window: no label at or after now can belong to it.
                while (!inOrder.isEmpty() && now - inOrder.peekFirst().time > keepMs) {
                    Seen old = inOrder.pollFirst();
                    ArrayDeque<Seen> ofItem = byItem.get(old.item);
                    ofItem.pollFirst();
                    if (ofItem.isEmpty()) {
                        byItem.remove(old.item);
                    }
                }
            }
        }

        /** Records an impression's items (an impression without items or request_id has none to attribute to). */
        void impressed(long time, String[] itemIds, String requestId, String query) {
            if (itemIds == null || requestId == null) {
                return;
            }
            for (String item : itemIds) {
                if (item != null) {
                    add(new Seen(time, item, requestId, query));
                }
            }
        }

        /** The impression a label of `item` (in `requestId` when not null) at the current time belongs to, or null. */
        Seen attributed(String item, String requestId, long windowMs) {
            Seen seen = latest(item, requestId);
            return seen != null && now - seen.time <= windowMs ? seen : null;
        }

        void add(Seen seen) {
            inOrder.addLast(seen);
            byItem.computeIfAbsent(seen.item, k -> new ArrayDeque<>(2)).addLast(seen);
        }

        /** The latest impression of item, in requestId when it is not null. */
        Seen latest(String item, String requestId) {
            ArrayDeque<Seen> ofItem = byItem.get(item);
            if (ofItem == null) {
                return null;
            }
            if (requestId == null) {
                return ofItem.peekLast();
            }
            for (Iterator<Seen> it = ofItem.descendingIterator(); it.hasNext(); ) {
                Seen seen = it.next();
                if (requestId.equals(seen.requestId)) {
                    return seen;
                }
            }
            return null;
        }
    }

    /**
     * Writes the current time and the impressed items in time order (time deltas as varints).
     * The labels of the current millisecond are not kept: a millisecond's rows are accumulated and
     * read in one go, before the accumulator is stored.
     */
    public static final class ImpressionsSerializer extends AccumulatorSerializer<Impressions> {
        private static final int VERSION = 1;

        @Override
        public Impressions createInstance() {
            return new Impressions();
        }

        @Override
        public Impressions copy(Impressions from) {
            Impressions to = new Impressions();
            to.now = from.now;
            for (Seen seen : from.inOrder) {
                to.add(seen);  // Seen is immutable
            }
            to.pending.addAll(from.pending);  // Label is immutable
            return to;
        }

        @Override
        public void serialize(Impressions acc, DataOutputView out) throws IOException {
            out.writeByte(VERSION);
            out.writeLong(acc.now);
            out.writeInt(acc.inOrder.size());
            long previous = acc.now;
            boolean first = true;
            for (Seen seen : acc.inOrder) {
                if (first) {
                    out.writeLong(seen.time);
                    first = false;
                } else {
                    writeVarLong(out, seen.time - previous);
                }
                previous = seen.time;
                out.writeUTF(seen.item);
                out.writeUTF(seen.requestId);
                out.writeBoolean(seen.query != null);
                if (seen.query != null) {
                    out.writeUTF(seen.query);
                }
            }
        }

        @Override
        public Impressions deserialize(DataInputView in) throws IOException {
            readVersion(in, VERSION, "attribute_labels: unknown accumulator format");
            Impressions acc = new Impressions();
            acc.now = in.readLong();
            int n = in.readInt();
            long time = 0;
            for (int i = 0; i < n; i++) {
                time = i == 0 ? in.readLong() : time + readVarLong(in);
                String item = in.readUTF();
                String requestId = in.readUTF();
                String query = in.readBoolean() ? in.readUTF() : null;
                acc.add(new Seen(time, item, requestId, query));
            }
            return acc;
        }

        @Override
        public TypeSerializerSnapshot<Impressions> snapshotConfiguration() {
            return new ImpressionsSerializerSnapshot();
        }
    }

    /** Restores ImpressionsSerializer from a checkpoint (needs a public no-argument constructor). */
    public static final class ImpressionsSerializerSnapshot extends SimpleTypeSerializerSnapshot<Impressions> {
        public ImpressionsSerializerSnapshot() {
            super(ImpressionsSerializer::new);
        }
    }
}
