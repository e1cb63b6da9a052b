package org.freshrank.udfs;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.AggregateFunction;

import java.io.IOException;
import java.time.Instant;
import java.util.Arrays;

/**
 * Counts events of a few kinds over trailing event-time windows, strictly before the current row.
 *
 * <p>For an unbounded RANGE OVER window ordered by rowtime:
 * {@code sliding_counts(kind, rowtime, kinds, window_1_ms, ..., window_n_ms) OVER w}. {@code kind}
 * is 0 .. kinds-1, or null for a row that is not counted (it still moves the time on). The result
 * holds, for window i and kind k, at index {@code i * kinds + k}, the events of kind k with time in
 * [t - window_i, t), t being the current row's time; then, at {@code n * kinds + k}, the events of
 * kind k at t itself. Flink's unbounded RANGE OVER operator accumulates every row of a timestamp
 * before it asks for the value, so the same millisecond never leaks into a row's features, and
 * "as of after t" (the online features) is the sum of the two parts.
 *
 * <p>Why not a bounded RANGE OVER window with SUM: Flink's bounded RANGE operator keeps every row
 * of the window and walks all of its stored timestamps for each new one, so its cost per event
 * grows with the events a key holds. Here the accumulator holds only (time, kind) of counted
 * events inside the longest window, and each window's start moves forward once per event:
 * constant time per event, 9 bytes per counted event in memory, about 2 in a checkpoint.
 *
 * <p>The job's own windows (UserWindow, ItemWindow) keep this accumulator, {@link Window}, in their
 * state and drive it directly; the aggregate function stays for SQL (as the job used it until
 * 2026-12-01) and for its brute-force check (tests/jvm/SlidingCountsCheck).
 */
public class SlidingCounts extends AggregateFunction<Double[], SlidingCounts.Window> {

    @Override
    public Window createAccumulator() {
        return new Window();
    }

    public void accumulate(Window acc, Integer kind, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant time,
                           Integer kinds, Long... windowMs) {
        if (acc.windowMs == null) {
            acc.configure(kinds, windowMs);
        }
        acc.add(kind == null ? -1 : kind, time.toEpochMilli());
    }

    @Override
    public Double[] getValue(Window acc) {
        return acc.counts();
    }

    /**
     * The accumulator: (time, kind) of counted events in time order, a run per window. The class
     * carries its type (RAW, with WindowSerializer) wherever it is used: as sliding_counts'
     * accumulator, and in the item window's state (ItemWindow).
     */
    @DataTypeHint(value = "RAW", bridgedTo = Window.class, rawSerializer = WindowSerializer.class)
    public static final class Window {
        int kinds;
        long[] windowMs;
        long latest = Long.MIN_VALUE;
        // Entries [head, end) of times/kindOf hold the counted events within the longest window.
        long[] times = new long[4];
        byte[] kindOf = new byte[4];
        int head;
        int end;
        int[] start;          // per window, the first entry inside it
        long[] inWindow;      // [window * kinds + kind], entries from start[window] to end
        long[] atLatest;      // [kind], entries at time == latest

        void configure(Integer kinds, Long[] windowMs) {
            if (kinds == null || kinds < 1 || kinds > Byte.MAX_VALUE) {
                throw new IllegalArgumentException("sliding_counts: kinds must be 1.." + Byte.MAX_VALUE + ", got " + kinds);
            }
            if (windowMs.length == 0) {
                throw new IllegalArgumentException("sliding_counts: give at least one window length in ms");
            }
            long[] lengths = new long[windowMs.length];
            for (int i = 0; i < lengths.length; i++) {
                if (windowMs[i] == null || windowMs[i] <= 0) {
                    throw new IllegalArgumentException("sliding_counts: window lengths must be > 0 ms, got " + Arrays.toString(windowMs));
                }
                lengths[i] = windowMs[i];
            }
            setShape(kinds, lengths);
        }

        void setShape(int kinds, long[] windowMs) {
            this.kinds = kinds;
            this.windowMs = windowMs;
            this.start = new int[windowMs.length];
            this.inWindow = new long[windowMs.length * kinds];
            this.atLatest = new long[kinds];
        }

        void add(int kind, long time) {
            if (kind >= kinds) {
                throw new IllegalArgumentException("sliding_counts: kind " + kind + " is not below kinds = " + kinds);
            }
            if (time < latest) {
                // The OVER operator sorts rows by time, so this is a caller's mistake, not late data.
                throw new IllegalStateException("sliding_counts: time went back from " + latest + " to " + time);
            }
            if (time > latest) {
                latest = time;
                Arrays.fill(atLatest, 0L);
                slide();
            }
            if (kind >= 0) {
                append(kind, time);
            }
        }

        private void append(int kind, long time) {
            if (end == times.length) {
                makeRoom();
            }
            times[end] = time;
            kindOf[end] = (byte) kind;
            end++;
            atLatest[kind]++;
            for (int w = 0; w < windowMs.length; w++) {
                inWindow[w * kinds + kind]++;
            }
        }

        /** Moves each window's start past the entries older than latest - length (its start is inclusive). */
        private void slide() {
            int oldest = end;
            for (int w = 0; w < windowMs.length; w++) {
                long from = latest - windowMs[w];
                int i = start[w];
                while (i < end && times[i] < from) {
                    inWindow[w * kinds + kindOf[i]]--;
                    i++;
                }
                start[w] = i;
                oldest = Math.min(oldest, i);
            }
            head = oldest;
        }

        /** Drops the entries before head, and grows the arrays when they are more than half full. */
        private void makeRoom() {
            int live = end - head;
            long[] newTimes = times;
            byte[] newKinds = kindOf;
            if (live * 2 > times.length) {
                newTimes = new long[times.length * 2];
                newKinds = new byte[times.length * 2];
            }
            System.arraycopy(times, head, newTimes, 0, live);
            System.arraycopy(kindOf, head, newKinds, 0, live);
            times = newTimes;
            kindOf = newKinds;
            for (int w = 0; w < start.length; w++) {
                start[w] -= head;
            }
            end = live;
            head = 0;
        }

        /** Events of `kind` in window `window` strictly before the latest time. */
        long before(int window, int kind) {
            return inWindow[window * kinds + kind] - atLatest[kind];
        }

        /** Events of `kind` at the latest time. */
        long at(int kind) {
            return atLatest[kind];
        }

        Double[] counts() {
            if (windowMs == null) {
                return new Double[0];
            }
            Double[] out = new Double[inWindow.length + kinds];
            for (int w = 0; w < windowMs.length; w++) {
                for (int k = 0; k < kinds; k++) {
                    out[w * kinds + k] = (double) before(w, k);
                }
            }
            for (int k = 0; k < kinds; k++) {
                out[inWindow.length + k] = (double) at(k);
            }
            return out;
        }

        /** Rebuilds the counters from the shape, the latest time and the entries (after a restore). */
        static Window of(int kinds, long[] windowMs, long latest, long[] times, byte[] kindOf) {
            Window acc = new Window();
            if (windowMs == null) {
                return acc;
            }
            acc.setShape(kinds, windowMs);
            for (int i = 0; i < times.length; i++) {
                acc.add(kindOf[i], times[i]);
            }
            if (latest > acc.latest) {
                acc.add(-1, latest);
            }
            return acc;
        }
    }

    /**
     * Writes the shape, the latest time and the live entries, times as varint deltas: a checkpoint
     * holds about 2 bytes per counted event, and RocksDB (which serialises the accumulator on every
     * access) reads and writes no more than the window holds.
     */
    public static final class WindowSerializer extends AccumulatorSerializer<Window> {
        private static final int VERSION = 1;

        @Override
        public Window createInstance() {
            return new Window();
        }

        @Override
        public Window copy(Window from) {
            if (from.windowMs == null) {
                return new Window();
            }
            return Window.of(from.kinds, from.windowMs.clone(), from.latest,
                    Arrays.copyOfRange(from.times, from.head, from.end),
                    Arrays.copyOfRange(from.kindOf, from.head, from.end));
        }

        @Override
        public void serialize(Window acc, DataOutputView out) throws IOException {
            out.writeByte(VERSION);
            if (acc.windowMs == null) {
                out.writeByte(0);
                return;
            }
            out.writeByte(acc.kinds);
            out.writeByte(acc.windowMs.length);
            for (long length : acc.windowMs) {
                out.writeLong(length);
            }
            out.writeLong(acc.latest);
            writeVarLong(out, acc.end - acc.head);
            long previous = acc.end > acc.head ? acc.times[acc.head] : 0L;
            out.writeLong(previous);
            for (int i = acc.head; i < acc.end; i++) {
                writeVarLong(out, acc.times[i] - previous);
                previous = acc.times[i];
                out.writeByte(acc.kindOf[i]);
            }
        }

        @Override
        public Window deserialize(DataInputView in) throws IOException {
            readVersion(in, VERSION, "sliding_counts: unknown accumulator format");
            int kinds = in.readByte();
            if (kinds == 0) {
                return new Window();
            }
            long[] windowMs = new long[in.readByte()];
            for (int i = 0; i < windowMs.length; i++) {
                windowMs[i] = in.readLong();
            }
            long latest = in.readLong();
            int n = (int) readVarLong(in);
            long time = in.readLong();
            long[] times = new long[n];
            byte[] kindOf = new byte[n];
            for (int i = 0; i < n; i++) {
                time += readVarLong(in);
                times[i] = time;
                kindOf[i] = in.readByte();
            }
            return Window.of(kinds, windowMs, latest, times, kindOf);
        }

        @Override
        public TypeSerializerSnapshot<Window> snapshotConfiguration() {
            return new WindowSerializerSnapshot();
        }
    }

    /** Restores WindowSerializer from a checkpoint (needs a public no-argument constructor). */
    public static final class WindowSerializerSnapshot extends SimpleTypeSerializerSnapshot<Window> {
        public WindowSerializerSnapshot() {
            super(WindowSerializer::new);
        }
    }
}
