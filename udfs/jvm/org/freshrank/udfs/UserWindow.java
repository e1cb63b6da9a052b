package org.freshrank.udfs;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.BigIntType;
import org.apache.flink.table.types.logical.DoubleType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.VarCharType;
import org.apache.flink.util.Collector;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The user window: for each of a user's events, as of its millisecond, the user's interaction
 * counts, the impression a click or purchase belongs to, and the latest interaction's category,
 * in event time (an {@link EventTimeWindow} keyed by user).
 *
 * <p>Appended columns, in order:
 * <ul>
 *   <li>{@code u_<kind>_<window>} for each window, then kind (click, cart, purchase: the input's
 *       interaction kind 0, 1, 2; null: not counted): the user's interactions of that kind in
 *       [t - window, t), strictly before the row's millisecond ({@link SlidingCounts});</li>
 *   <li>{@code u_<kind>_at_t}: those at t, so that "as of after t" (the online record) is the sum;</li>
 *   <li>{@code attributed_request_id}, {@code attributed_query}: for a click or purchase with an
 *       item, the impression it belongs to ({@link AttributeLabels}: its own request's, or else the
 *       user's latest, impression of the item, at or before the label and within the click or
 *       purchase window), null when none;</li>
 *   <li>{@code last_category}, {@code last_category_time}: the category and time of the user's
 *       latest row with an interaction category, at or before t (its own millisecond included).</li>
 * </ul>
 * Until 2026-12-01 this was Flink's OVER window with sliding_counts, attribute_labels and two
 * LAST_VALUEs; the user's state goes when the watermark is the longest of the windows past its
 * last event, when none of it can count any more.
 */
public class UserWindow extends EventTimeWindow<UserWindow.User> {
    private static final long serialVersionUID = 1L;

    private static final String[] KIND_NAMES = {"click", "cart", "purchase"};
    private static final StringData IMPRESSION = StringData.fromString("impression");
    private static final StringData CLICK = StringData.fromString("click");
    private static final StringData PURCHASE = StringData.fromString("purchase");

    private final int typeIndex;
    private final int itemIdsIndex;
    private final int itemIdIndex;
    private final int requestIdIndex;
    private final int queryIndex;
    private final int kindIndex;
    private final int categoryIndex;
    private final int categoryTimeIndex;
    private final long[] windowMs;
    private final long clickWindowMs;
    private final long purchaseWindowMs;

    UserWindow(RowType in, String timeColumn, long[] windowMs, long clickWindowMs, long purchaseWindowMs) {
        super(column(in, timeColumn, LogicalTypeRoot.TIMESTAMP_WITH_LOCAL_TIME_ZONE),
              Math.max(Arrays.stream(windowMs).max().orElse(0), Math.max(clickWindowMs, purchaseWindowMs)),
              InternalTypeInfo.of(in));
        if (windowMs.length == 0 || Arrays.stream(windowMs).anyMatch(w -> w <= 0) || clickWindowMs <= 0
                || purchaseWindowMs <= 0) {
            throw new IllegalArgumentException("user window: window lengths must be > 0 ms, got "
                    + Arrays.toString(windowMs) + ", " + clickWindowMs + ", " + purchaseWindowMs);
        }
        this.typeIndex = column(in, "type", LogicalTypeRoot.VARCHAR);
        this.itemIdsIndex = column(in, "item_ids", LogicalTypeRoot.ARRAY);
        this.itemIdIndex = column(in, "item_id", LogicalTypeRoot.VARCHAR);
        this.requestIdIndex = column(in, "request_id", LogicalTypeRoot.VARCHAR);
        this.queryIndex = column(in, "query", LogicalTypeRoot.VARCHAR);
        this.kindIndex = column(in, "interaction_kind", LogicalTypeRoot.INTEGER);
        this.categoryIndex = column(in, "interaction_category", LogicalTypeRoot.VARCHAR);
        this.categoryTimeIndex = column(in, "interaction_time", LogicalTypeRoot.BIGINT);
        this.windowMs = windowMs.clone();
        this.clickWindowMs = clickWindowMs;
        this.purchaseWindowMs = purchaseWindowMs;
    }

    /**
     * {@code rows} (an event with the columns named above, and {@code user_id}) keyed by user, through
     * the user window, with its columns appended; window i's counts are named after windowNames[i].
     */
    public static DataStream<RowData> apply(DataStream<RowData> rows, String timeColumn, long[] windowMs,
                                            String[] windowNames, long clickWindowMs, long purchaseWindowMs) {
        if (windowNames.length != windowMs.length) {
            throw new IllegalArgumentException("user window: " + windowMs.length + " windows, " + windowNames.length + " names");
        }
        RowType in = rowTypeOf(rows.getType());
        List<RowType.RowField> columns = new ArrayList<>();
        for (String window : windowNames) {
            for (String kind : KIND_NAMES) {
                columns.add(new RowType.RowField("u_" + kind + "_" + window, new DoubleType()));
            }
        }
        for (String kind : KIND_NAMES) {
            columns.add(new RowType.RowField("u_" + kind + "_at_t", new DoubleType()));
        }
        columns.add(new RowType.RowField("attributed_request_id", new VarCharType(VarCharType.MAX_LENGTH)));
        columns.add(new RowType.RowField("attributed_query", new VarCharType(VarCharType.MAX_LENGTH)));
        columns.add(new RowType.RowField("last_category", new VarCharType(VarCharType.MAX_LENGTH)));
        columns.add(new RowType.RowField("last_category_time", new BigIntType()));
        UserWindow window = new UserWindow(in, timeColumn, windowMs, clickWindowMs, purchaseWindowMs);
        return keyedThrough(rows, "user_id", window, appended(in, columns), "user window");
    }

    @Override
    User newState() {
        return new User(windowMs);
    }

    @Override
    TypeSerializer<User> stateSerializer() {
        return new UserSerializer();
    }

    @Override
    void count(RowData row, long time, User user) {
        user.counts.add(row.isNullAt(kindIndex) ? -1 : row.getInt(kindIndex), time);
        user.impressions.advance(time, Math.max(clickWindowMs, purchaseWindowMs));
        if (IMPRESSION.equals(row.getString(typeIndex)) && !row.isNullAt(itemIdsIndex)) {
            // A click attributed to an impression without a query counts for the ('', item) pair.
            String query = string(row, queryIndex);
            user.impressions.impressed(time, strings(row.getArray(itemIdsIndex)), string(row, requestIdIndex),
                    query == null ? "" : query);
        }
        if (!row.isNullAt(categoryIndex)) {
            user.lastCategory = row.getString(categoryIndex).toString();
            user.lastCategoryTime = row.isNullAt(categoryTimeIndex) ? null : row.getLong(categoryTimeIndex);
        }
    }

    @Override
    void emit(RowData row, User user, Collector<RowData> out) {
        int kinds = KIND_NAMES.length;
        GenericRowData columns = new GenericRowData(windowMs.length * kinds + kinds + 4);
        int at = 0;
        for (int w = 0; w < windowMs.length; w++) {
            for (int k = 0; k < kinds; k++) {
                columns.setField(at++, (double) user.counts.before(w, k));
            }
        }
        for (int k = 0; k < kinds; k++) {
            columns.setField(at++, (double) user.counts.at(k));
        }
        AttributeLabels.Seen impression = attribution(row, user);
        if (impression != null) {
            columns.setField(at, StringData.fromString(impression.requestId));
            columns.setField(at + 1, impression.query == null ? null : StringData.fromString(impression.query));
        }
        if (user.lastCategory != null) {
            columns.setField(at + 2, StringData.fromString(user.lastCategory));
            columns.setField(at + 3, user.lastCategoryTime);
        }
        out.collect(new JoinedRowData(row.getRowKind(), row, columns));
    }

    /** For a click or purchase with an item, the impression it belongs to; else null. */
    private AttributeLabels.Seen attribution(RowData row, User user) {
        if (row.isNullAt(itemIdIndex)) {
            return null;
        }
        StringData type = row.getString(typeIndex);
        long window = CLICK.equals(type) ? clickWindowMs : PURCHASE.equals(type) ? purchaseWindowMs : -1;
        if (window < 0) {
            return null;
        }
        return user.impressions.attributed(row.getString(itemIdIndex).toString(), string(row, requestIdIndex), window);
    }

    private static String string(RowData row, int index) {
        return row.isNullAt(index) ? null : row.getString(index).toString();
    }

    private static String[] strings(ArrayData array) {
        String[] out = new String[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.isNullAt(i) ? null : array.getString(i).toString();
        }
        return out;
    }

    /** A user's own state: the counts' window, the impressed items, the latest category. */
    static final class User extends KeyState {
        final SlidingCounts.Window counts;
        final AttributeLabels.Impressions impressions;
        String lastCategory;
        Long lastCategoryTime;

        User(long[] windowMs) {
            this(new SlidingCounts.Window(), new AttributeLabels.Impressions());
            counts.setShape(KIND_NAMES.length, windowMs.clone());
        }

        User(SlidingCounts.Window counts, AttributeLabels.Impressions impressions) {
            this.counts = counts;
            this.impressions = impressions;
        }

        @Override
        long latest() {
            return counts.latest;
        }
    }

    /** User's format: the cleanup time, the window and the impressions in their own formats, the category. */
    public static final class UserSerializer extends AccumulatorSerializer<User> {
        private static final int VERSION = 1;
        private final SlidingCounts.WindowSerializer windows = new SlidingCounts.WindowSerializer();
        private final AttributeLabels.ImpressionsSerializer impressions = new AttributeLabels.ImpressionsSerializer();

        @Override
        public User createInstance() {
            return new User(new SlidingCounts.Window(), new AttributeLabels.Impressions());
        }

        @Override
        public User copy(User from) {
            User user = new User(windows.copy(from.counts), impressions.copy(from.impressions));
            user.cleanupAt = from.cleanupAt;
            user.lastCategory = from.lastCategory;
            user.lastCategoryTime = from.lastCategoryTime;
            return user;
        }

        @Override
        public void serialize(User user, DataOutputView out) throws IOException {
            out.writeByte(VERSION);
            out.writeLong(user.cleanupAt);
            windows.serialize(user.counts, out);
            impressions.serialize(user.impressions, out);
            out.writeBoolean(user.lastCategory != null);
            if (user.lastCategory != null) {
                out.writeUTF(user.lastCategory);
            }
            out.writeBoolean(user.lastCategoryTime != null);
            if (user.lastCategoryTime != null) {
                out.writeLong(user.lastCategoryTime);
            }
        }

        @Override
        public User deserialize(DataInputView in) throws IOException {
            readVersion(in, VERSION, "user window: unknown state format");
            long cleanupAt = in.readLong();
            User user = new User(windows.deserialize(in), impressions.deserialize(in));
            user.cleanupAt = cleanupAt;
            user.lastCategory = in.readBoolean() ? in.readUTF() : null;
            user.lastCategoryTime = in.readBoolean() ? in.readLong() : null;
            return user;
        }

        @Override
        public TypeSerializerSnapshot<User> snapshotConfiguration() {
            return new UserSerializerSnapshot();
        }
    }

    /** Restores UserSerializer from a checkpoint (needs a public no-argument constructor). */
    public static final class UserSerializerSnapshot extends SimpleTypeSerializerSnapshot<User> {
        public UserSerializerSnapshot() {
            super(UserSerializer::new);
        }
    }
}
