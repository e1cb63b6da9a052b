package org.freshrank.udfs;

import org.apache.flink.types.Row;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;

/**
 * Property check of AttributeLabels against a brute-force search, run by
 * tests/unit/test_sliding_counts.py. Random streams of one user, fed as Flink's RANGE operator
 * does (every row of a millisecond, then one value): impressions of a few items in a few requests,
 * clicks and purchases with and without a request, in the same millisecond as an impression or
 * not, older than their window or not. At random points the accumulator goes through its
 * serializer or its copy. Exits non-zero on the first mismatch.
 */
public final class AttributeLabelsCheck {
    private static final long CLICK_WINDOW = 30;
    private static final long PURCHASE_WINDOW = 200;

    public static void main(String[] args) throws Exception {
        int streams = Integer.parseInt(args[0]);
        Random random = new Random(Long.parseLong(args[1]));
        AttributeLabels function = new AttributeLabels();
        AttributeLabels.ImpressionsSerializer serializer = new AttributeLabels.ImpressionsSerializer();
        long checked = 0;
        for (int s = 0; s < streams; s++) {
            AttributeLabels.Impressions acc = function.createAccumulator();
            List<Object[]> impressions = new ArrayList<>();  // (time, item, request, query)
            long time = random.nextInt(1000);
            int groups = random.nextInt(120);
            for (int g = 0; g < groups; g++) {
                // One group is one millisecond, as Flink's RANGE operator sees it.
                time += 1 + (random.nextInt(3) == 0 ? 0 : random.nextInt(60));
                List<String[]> labels = new ArrayList<>();
                int rows = 1 + random.nextInt(3);
                for (int r = 0; r < rows; r++) {
                    Instant at = Instant.ofEpochMilli(time);
                    if (random.nextBoolean()) {
                        String request = "r" + random.nextInt(4);
                        String query = random.nextInt(4) == 0 ? null : "q" + random.nextInt(3);
                        String[] items = new String[1 + random.nextInt(3)];
                        for (int i = 0; i < items.length; i++) {
                            items[i] = "i" + random.nextInt(5);
                            impressions.add(new Object[] {time, items[i], request, query});
                        }
                        function.accumulate(acc, "impression", items, null, request, query, at, CLICK_WINDOW, PURCHASE_WINDOW);
                    } else {
                        String type = random.nextBoolean() ? "click" : "purchase";
                        String request = random.nextInt(3) == 0 ? "r" + random.nextInt(4) : null;
                        String item = "i" + random.nextInt(5);
                        labels.add(new String[] {type, request, item});
                        function.accumulate(acc, type, null, item, request, null, at, CLICK_WINDOW, PURCHASE_WINDOW);
                    }
                }
                Map<String, Row> value = function.getValue(acc);
                if (labels.isEmpty() != (value == null)) {
                    throw new AssertionError("stream " + s + " at " + time + ": a value exactly when there are labels, got " + value);
                }
                for (String[] label : labels) {
                    Object[] expected = bruteForce(impressions, time, label);
                    Row actual = value.get(AttributeLabels.labelKey(label[0], label[1], label[2]));
                    boolean same = expected == null ? actual == null
                            : actual != null && Objects.equals(expected[2], actual.getField(0))
                              && Objects.equals(expected[3], actual.getField(1)) && Objects.equals(expected[0], actual.getField(2));
                    if (!same) {
                        throw new AssertionError("stream " + s + " at " + time + " label " + String.join("/", String.valueOf(label[0]),
                                String.valueOf(label[1]), label[2]) + ": expected "
                                + (expected == null ? "none" : expected[2] + "/" + expected[3] + "@" + expected[0]) + ", got " + actual);
                    }
                    checked++;
                }
                acc = Checkpoints.maybeRestore(acc, serializer, random, 8);
            }
        }
        System.out.println("checked " + checked);
    }

    /** The latest impression of the label's item (in its request, if it has one) at or before now, within its window. */
    private static Object[] bruteForce(List<Object[]> impressions, long now, String[] label) {
        Object[] latest = null;
        for (Object[] seen : impressions) {  // in time order: the last match is the latest
            if ((long) seen[0] <= now && seen[1].equals(label[2]) && (label[1] == null || label[1].equals(seen[2]))) {
                latest = seen;
            }
        }
        long window = label[0].equals("click") ? CLICK_WINDOW : PURCHASE_WINDOW;
        return latest != null && now - (long) latest[0] <= window ? latest : null;
    }
}
