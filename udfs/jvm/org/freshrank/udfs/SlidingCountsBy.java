package org.freshrank.udfs;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.AggregateFunction;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link SlidingCounts} for each value of a sub-key inside an OVER partition.
 *
 * <p>{@code sliding_counts_by(sub_key, kind, rowtime, kinds, window_1_ms, ...) OVER w} keeps one
 * sliding_counts window per sub-key of the partition, and returns a map from each sub-key with
 * rows at the current row's millisecond to the array sliding_counts returns for that sub-key
 * alone: the current row reads its own with {@code m[sub_key]}. A null sub-key is not counted.
 *
 * <p>Why: the (query, item) counts used to come from a window of their own, partitioned by
 * (query, item). Nearly every impressed (query, item) pair is a new key there, and each key costs
 * Flink's OVER operator its own buffer, accumulator, timer and cleanup time, and the rows a
 * shuffle of their own. Partitioned by item, the pairs become entries of a state-backed map inside
 * the item window: one map entry read and written per row, no shuffle. The map is a {@link MapView}, so RocksDB reads
 * and writes only the row's own pair, not every pair of the item.
 *
 * <p>A sub-key whose window has emptied is dropped when the partition's time has moved one longest
 * window past the last sweep, so a busy partition does not keep pairs it no longer sees; an idle
 * partition goes with Flink's state TTL, as sliding_counts' does.
 */
public class SlidingCountsBy extends AggregateFunction<Map<String, Double[]>, SlidingCountsBy.Acc> {

    /** The accumulator: the sub-keys' windows in state, the partition's time, the sub-keys at that time. */
    public static class Acc {
        public MapView<String, SlidingCounts.Window> windows = new MapView<>();
        public long latest = Long.MIN_VALUE;
        public long sweptAt = Long.MIN_VALUE;
        public String[] atLatest = new String[0];
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, String subKey, Integer kind, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant time,
                           Integer kinds, Long... windowMs) throws Exception {
        long now = time.toEpochMilli();
        if (now < acc.latest) {
            throw new IllegalStateException("sliding_counts_by: time went back from " + acc.latest + " to " + now);
        }
        if (now > acc.latest) {
            acc.latest = now;
            acc.atLatest = new String[0];
            sweep(acc, now, windowMs);
        }
        if (subKey == null) {
            return;
        }
        SlidingCounts.Window window = acc.windows.get(subKey);
        if (window == null) {
            window = new SlidingCounts.Window();
            window.configure(kinds, windowMs);
        }
        window.add(kind == null ? -1 : kind, now);
        acc.windows.put(subKey, window);
        if (!Arrays.asList(acc.atLatest).contains(subKey)) {
            acc.atLatest = Arrays.copyOf(acc.atLatest, acc.atLatest.length + 1);
            acc.atLatest[acc.atLatest.length - 1] = subKey;
        }
    }

    public Map<String, Double[]> getValue(Acc acc) {
        Map<String, Double[]> out = new HashMap<>();
        try {
            for (String subKey : acc.atLatest) {
                out.put(subKey, acc.windows.get(subKey).counts());
            }
        } catch (Exception e) {
            throw new RuntimeException("sliding_counts_by: cannot read the state of " + Arrays.toString(acc.atLatest), e);
        }
        return out;
    }

    /** Drops the sub-keys whose every event left the longest window, once per longest window of time. */
    private static void sweep(Acc acc, long now, Long[] windowMs) throws Exception {
        long longest = 0;
        for (Long length : windowMs) {
            longest = Math.max(longest, length == null ? 0 : length);
        }
        if (acc.sweptAt == Long.MIN_VALUE) {
            acc.sweptAt = now;
            return;
        }
        if (now - acc.sweptAt < longest) {
            return;
        }
        acc.sweptAt = now;
        List<String> idle = new ArrayList<>();
        for (Map.Entry<String, SlidingCounts.Window> entry : acc.windows.entries()) {
            if (entry.getValue().latest < now - longest) {
                idle.add(entry.getKey());
            }
        }
        for (String subKey : idle) {
            acc.windows.remove(subKey);
        }
    }
}
