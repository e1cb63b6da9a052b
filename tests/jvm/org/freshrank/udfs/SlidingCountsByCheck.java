package org.freshrank.udfs;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Property check of SlidingCountsBy against a brute-force count per sub-key, run by
 * tests/unit/test_sliding_counts.py. Random streams of a few sub-keys (and null ones), several rows
 * per millisecond, gaps longer than every window (so idle sub-keys are swept); at random points each
 * sub-key's window goes through its serializer or its copy, as Flink's state does. After every
 * millisecond the map must hold exactly the sub-keys of that millisecond, each with the counts of
 * its own events only; and the state must hold no sub-key idle for more than two longest windows.
 * Exits non-zero on the first mismatch; prints the number of checked values last.
 */
public final class SlidingCountsByCheck {
    public static void main(String[] args) throws Exception {
        int streams = Integer.parseInt(args[0]);
        Random random = new Random(Long.parseLong(args[1]));
        SlidingCountsBy function = new SlidingCountsBy();
        SlidingCounts.WindowSerializer serializer = new SlidingCounts.WindowSerializer();
        long checked = 0;
        for (int s = 0; s < streams; s++) {
            int kinds = 1 + random.nextInt(3);
            Long[] windows = SlidingCountsCheck.randomWindows(random);
            long longest = Collections.max(Arrays.asList(windows));
            String[] subKeys = new String[1 + random.nextInt(5)];
            for (int k = 0; k < subKeys.length; k++) {
                subKeys[k] = "q" + k;
            }
            SlidingCountsBy.Acc acc = function.createAccumulator();
            Map<String, List<long[]>> seen = new HashMap<>();  // per sub-key, (time, kind) of counted events
            Map<String, Long> lastRow = new HashMap<>();
            long time = random.nextInt(1000);
            List<String> atTime = new ArrayList<>();  // the sub-keys with rows at `time`
            int steps = random.nextInt(200);
            for (int e = 0; e < steps; e++) {
                long step = random.nextInt(6) == 0 ? random.nextInt(150) : random.nextInt(2);
                if (step > 0) {
                    time += step;
                    atTime.clear();
                }
                int group = 1 + random.nextInt(3);
                for (int g = 0; g < group; g++) {
                    String subKey = random.nextInt(8) == 0 ? null : subKeys[random.nextInt(subKeys.length)];
                    Integer kind = random.nextInt(6) == 0 ? null : random.nextInt(kinds);
                    function.accumulate(acc, subKey, kind, Instant.ofEpochMilli(time), kinds, windows);
                    if (subKey == null) {
                        continue;
                    }
                    if (!atTime.contains(subKey)) {
                        atTime.add(subKey);
                    }
                    lastRow.put(subKey, time);
                    if (kind != null) {
                        seen.computeIfAbsent(subKey, k -> new ArrayList<>()).add(new long[] {time, kind});
                    }
                }
                Map<String, Double[]> actual = function.getValue(acc);
                if (!actual.keySet().equals(new java.util.HashSet<>(atTime))) {
                    throw new AssertionError("stream " + s + " at " + time + ": sub-keys " + actual.keySet()
                            + ", expected " + atTime);
                }
                for (String subKey : atTime) {
                    Double[] expected = SlidingCountsCheck.bruteForce(seen.getOrDefault(subKey, List.of()), time, kinds, windows);
                    if (!Arrays.equals(expected, actual.get(subKey))) {
                        throw new AssertionError("stream " + s + " at " + time + ", " + subKey + ": expected "
                                + Arrays.toString(expected) + ", got " + Arrays.toString(actual.get(subKey)));
                    }
                    checked++;
                }
                for (Map.Entry<String, SlidingCounts.Window> entry : acc.windows.entries()) {
                    if (lastRow.get(entry.getKey()) < time - 2 * longest) {
                        throw new AssertionError("stream " + s + " at " + time + ": " + entry.getKey()
                                + " idle since " + lastRow.get(entry.getKey()) + " is still held");
                    }
                }
                for (String subKey : subKeys) {
                    SlidingCounts.Window window = acc.windows.get(subKey);
                    if (window != null) {
                        acc.windows.put(subKey, Checkpoints.maybeRestore(window, serializer, random, 10));
                    }
                }
            }
        }
        System.out.println("checked " + checked);
    }
}
