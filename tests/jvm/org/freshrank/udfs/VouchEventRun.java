package org.freshrank.udfs;

import org.apache.flink.table.data.RowData;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * Runs vouch_event on records from stdin, for tests/unit/test_vouch_event.py: one line per record,
 * {@code base64(value) TAB watermark_ms} (empty: no watermark), one line out per record,
 * {@code event_time TAB record}, or {@code -} when not vouched for. The arguments are the limits,
 * in the function's order.
 */
public final class VouchEventRun {
    private VouchEventRun() {
    }

    public static void main(String[] args) throws Exception {
        Long[] limits = new Long[9];
        for (int i = 0; i < limits.length; i++) {
            limits[i] = Long.parseLong(args[i]);
        }
        VouchEvent function = new VouchEvent();
        BufferedReader lines = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        String line;
        while ((line = lines.readLine()) != null) {
            int tab = line.indexOf('\t');
            byte[] value = Base64.getDecoder().decode(line.substring(0, tab));
            String watermark = line.substring(tab + 1);
            RowData row = function.eval(value, watermark.isEmpty() ? null : Long.valueOf(watermark),
                limits[0], limits[1], limits[2], limits[3], limits[4], limits[5], limits[6], limits[7], limits[8]);
            out.write(row == null ? "-" : row.getLong(1) + "\t" + row.getString(0).toString());
            out.write('\n');
        }
        out.flush();
    }
}
