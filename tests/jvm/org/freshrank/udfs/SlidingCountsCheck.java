package org.freshrank.udfs;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Property check of SlidingCounts against a brute-force count, run by tests/unit/test_sliding_counts.py.
 * Random streams (few or many events per millisecond, uncounted rows, gaps longer than every
 * window); at random points the accumulator goes through its serializer or its copy, as it does
 * in a checkpoint and under RocksDB, and goes on from the copy. Exits non-zero on the first mismatch.
 */
public final class SlidingCountsCheck {
    public static void main(String[] args) throws Exception {
        int streams = Integer.parseInt(args[0]);
        Random random = new Random(Long.parseLong(args[1]));
        SlidingCounts function = new SlidingCounts();
        SlidingCounts.WindowSerializer serializer = new SlidingCounts.WindowSerializer();
        long checked = 0;
        for (int s = 0; s < streams; s++) {
            int kinds = 1 + random.nextInt(3);
            Long[] windows = randomWindows(random);
            SlidingCounts.Window acc = function.createAccumulator();
            List<long[]> seen = new ArrayList<>();  // (time, kind) of counted events
            long time = random.nextInt(1000);
            int events = random.nextInt(300);
            for (int e = 0; e < events; e++) {
                time += random.nextInt(4) == 0 ? random.nextInt(120) : random.nextInt(2);
                int group = 1 + random.nextInt(3);
                for (int g = 0; g < group; g++) {
                    Integer kind = random.nextInt(5) == 0 ? null : random.nextInt(kinds);
                    function.accumulate(acc, kind, java.time.Instant.ofEpochMilli(time), kinds, windows);
                    if (kind != null) {
                        seen.add(new long[] {time, kind});
                    }
                }
                Double[] expected = bruteForce(seen, time, kinds, windows);
                Double[] actual = function.getValue(acc);
                if (!Arrays.equals(expected, actual)) {
                    throw new AssertionError("stream " + s + " at " + time + ": expected " + Arrays.toString(expected)
                            + ", got " + Arrays.toString(actual));
                }
                checked++;
                acc = Checkpoints.maybeRestore(acc, serializer, random, 10);
            }
        }
        System.out.println("checked " + checked);
    }

    /** One to three window lengths of 1 to 50 ms, the shapes every sliding_counts check draws. */
    static Long[] randomWindows(Random random) {
        Long[] windows = new Long[1 + random.nextInt(3)];
        for (int w = 0; w < windows.length; w++) {
            windows[w] = 1L + random.nextInt(50);
        }
        return windows;
    }

    /** The counts sliding_counts must return at `now` for the counted events `seen` (time, kind). */
    static Double[] bruteForce(List<long[]> seen, long now, int kinds, Long[] windows) {
        Double[] out = new Double[windows.length * kinds + kinds];
        Arrays.fill(out, 0.0);
        for (long[] event : seen) {
            int kind = (int) event[1];
            for (int w = 0; w < windows.length; w++) {
                if (event[0] >= now - windows[w] && event[0] < now) {
                    out[w * kinds + kind] += 1.0;
                }
            }
            if (event[0] == now) {
                out[windows.length * kinds + kind] += 1.0;
            }
        }
        return out;
    }
}
