package org.freshrank.udfs;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * Runs json_record on argument lists from stdin, for tests/unit/test_json_record.py: one line per
 * call, its arguments separated by tabs, each {@code type:payload}: {@code s:} base64 of UTF-8,
 * {@code l:} a long, {@code i:} an int, {@code d:} a double's IEEE bits as a hex long, {@code b:} true
 * or false, {@code n:} null. One line out per call: the JSON, or {@code !} and the error.
 */
public final class JsonRecordRun {
    private JsonRecordRun() {
    }

    public static void main(String[] args) throws Exception {
        JsonRecord function = new JsonRecord();
        BufferedReader lines = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        String line;
        while ((line = lines.readLine()) != null) {
            String[] fields = line.isEmpty() ? new String[0] : line.split("\t", -1);
            Object[] values = new Object[fields.length];
            for (int i = 0; i < fields.length; i++) {
                values[i] = parse(fields[i]);
            }
            try {
                out.write(function.eval(values));
            } catch (IllegalArgumentException e) {
                out.write("!" + e.getMessage());
            }
            out.write('\n');
        }
        out.flush();
    }

    private static Object parse(String field) {
        String payload = field.substring(2);
        switch (field.charAt(0)) {
            case 's': return new String(Base64.getDecoder().decode(payload), StandardCharsets.UTF_8);
            case 'l': return Long.valueOf(payload);
            case 'i': return Integer.valueOf(payload);
            case 'd': return Double.longBitsToDouble(Long.parseUnsignedLong(payload, 16));
            case 'b': return Boolean.valueOf(payload);
            case 'n': return null;
            default: throw new IllegalArgumentException("unknown type in " + field);
        }
    }
}
