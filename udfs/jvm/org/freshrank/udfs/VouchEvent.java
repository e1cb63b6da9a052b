package org.freshrank.udfs;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The validator's fast path in the JVM: vouches for a raw event that is already clean and writes
 * its clean-topic record, so that the Python validator never sees it.
 *
 * <p>{@code vouch_event(value, watermark, max_record_bytes, max_id_len, max_query_len,
 * max_string_len, max_items, max_position, min_ts_ms, max_future_skew_ms, allowed_lateness_ms)}
 * gives {@code ROW(record, event_time)}: the record {@code udfs/clean_record.py} would write for the
 * event, and its event time; or null. Null means "not vouched for", never "invalid": the record then
 * goes to the Python validator ({@code udfs/validation.py}), which alone gives verdicts, repairs and
 * dead-letter reasons. So this function only accepts, and only records the Python validator accepts
 * unchanged (tests/unit/test_vouch_event.py compares the two on generated and mutated records).
 *
 * <p>It accepts a strict subset of event contract v1, where the Python rules reduce to byte checks:
 * ASCII only (Unicode normalisation and case folding are then the identity and {@code lower()}); no
 * escape sequences (so no control characters); each key at most once and no unknown key (so no
 * nesting beyond root, items, item); ids of printable characters without any space; labels already
 * clean (no surrounding or double spaces); integers without fraction or exponent; optional fields
 * absent or null, never empty strings. Anything else, valid or not, returns null.
 */
@FunctionHint(output = @DataTypeHint(value = "ROW<record STRING, event_time BIGINT>", bridgedTo = RowData.class))
public class VouchEvent extends ScalarFunction {

    // Top-level keys, in the clean record's order (udfs/contract.py CLEAN_EVENT_FIELDS).
    private static final String[] EVENT_KEYS = {"event_id", "type", "ts", "user_id", "session_id", "request_id",
        "query", "items", "item_id", "price", "quantity", "category", "brand", "device", "platform"};
    private static final int EVENT_ID = 0, TYPE = 1, TS = 2, USER_ID = 3, SESSION_ID = 4, REQUEST_ID = 5, QUERY = 6,
        ITEMS = 7, ITEM_ID = 8, PRICE = 9, QUANTITY = 10, CATEGORY = 11, BRAND = 12, DEVICE = 13, PLATFORM = 14;
    // Item keys, in the clean record's order (CLEAN_ITEM_FIELDS).
    private static final String[] ITEM_KEYS = {"item_id", "position", "price", "category", "brand"};
    private static final String[] TYPES = {"search", "impression", "click", "add_to_cart", "purchase"};
    private static final int SEARCH = 0, IMPRESSION = 1;
    private static final byte[][] EVENT_KEY_BYTES = ascii(EVENT_KEYS), ITEM_KEY_BYTES = ascii(ITEM_KEYS),
        TYPE_BYTES = ascii(TYPES);
    // Candidate key per (length, first byte): within each key set, no two keys share both.
    private static final int[][] EVENT_KEY_INDEX = index(EVENT_KEY_BYTES), ITEM_KEY_INDEX = index(ITEM_KEY_BYTES);
    private static final double[] POWERS_OF_TEN = new double[23];

    static {
        double power = 1.0;
        for (int i = 0; i < POWERS_OF_TEN.length; i++) {
            POWERS_OF_TEN[i] = power;  // exact up to 1e22
            power *= 10.0;
        }
    }

    /** Thrown (preallocated, no stack trace) when a record cannot be vouched for. */
    private static final class Decline extends RuntimeException {
        Decline() {
            super(null, null, false, false);
        }
    }

    private static final Decline DECLINE = new Decline();

    // The record being read, and the spans of the top-level values found in it (a string's bytes
    // inside its quotes, a number's text; start -1: absent or null).
    private transient byte[] in;
    private int at;
    private final int[] start = new int[EVENT_KEYS.length], end = new int[EVENT_KEYS.length];
    private long ts;
    private int type;
    // Items, as columns: spans of ids, prices and labels (-1: null), positions.
    private int items;
    private int[] itemIdStart = new int[16], itemIdEnd = new int[16], positions = new int[16];
    private int[] categoryStart = new int[16], categoryEnd = new int[16], brandStart = new int[16], brandEnd = new int[16];
    private int[] priceStart = new int[16], priceEnd = new int[16];
    private long[] seenPositions = new long[0];
    // Made on the first call: a function instance is serialized with the job graph.
    private transient Output out;

    // Limits (the config's, literals in the SQL call: constant for one call site).
    private int maxIdLen, maxQueryLen, maxStringLen, maxItems, maxPosition;

    /** The result depends on the wall clock (the future-skew check). */
    @Override
    public boolean isDeterministic() {
        return false;
    }

    public RowData eval(byte[] value, @DataTypeHint(value = "TIMESTAMP_LTZ(3)", bridgedTo = Long.class) Long watermarkMs,
                        Long maxRecordBytes, Long maxIdLen, Long maxQueryLen, Long maxStringLen, Long maxItems,
                        Long maxPosition, Long minTsMs, Long maxFutureSkewMs, Long allowedLatenessMs) {
        if (value == null || value.length == 0 || value.length > maxRecordBytes) {
            return null;
        }
        this.maxIdLen = maxIdLen.intValue();
        this.maxQueryLen = maxQueryLen.intValue();
        this.maxStringLen = maxStringLen.intValue();
        this.maxItems = maxItems.intValue();
        this.maxPosition = maxPosition.intValue();
        try {
            read(value);
            long now = System.currentTimeMillis();
            if (ts < minTsMs || ts > now + maxFutureSkewMs
                    || (watermarkMs != null && ts < watermarkMs - allowedLatenessMs)) {
                return null;
            }
            long eventTime = watermarkMs == null || ts >= watermarkMs ? ts : watermarkMs;
            return GenericRowData.of(StringData.fromBytes(write(eventTime)), eventTime);
        } catch (RuntimeException declined) {
            // Decline; the end of the record reached mid-value (ArrayIndexOutOfBoundsException);
            // or anything unforeseen: the Python validator decides, the job never fails here.
            return null;
        } finally {
            in = null;
        }
    }

    // ---------------------------------------------------------------- reading

    private void read(byte[] value) {
        in = value;
        at = 0;
        Arrays.fill(start, -1);
        items = -1;
        int seen = 0;
        expect('{');
        if (!skipTo('}')) {
            do {
                int key = key(EVENT_KEY_BYTES, EVENT_KEY_INDEX);
                if ((seen & (1 << key)) != 0) {
                    throw DECLINE;  // a repeated key: the JSON parsers keep the last, checked or not
                }
                seen |= 1 << key;
                expect(':');
                value(key);
            } while (comma('}'));
        }
        skipSpace();
        if (at != in.length) {
            throw DECLINE;  // trailing data
        }
        // Required fields, and what each event type needs (udfs/contract.py).
        if (start[EVENT_ID] < 0 || start[USER_ID] < 0 || (seen & (1 << TS)) == 0 || (seen & (1 << TYPE)) == 0) {
            throw DECLINE;
        }
        boolean page = type == SEARCH || type == IMPRESSION;
        if (page && (start[REQUEST_ID] < 0 || start[QUERY] < 0)) {
            throw DECLINE;
        }
        if (!page && start[ITEM_ID] < 0) {
            throw DECLINE;  // click, add_to_cart, purchase: a label for an item
        }
        if ((type == IMPRESSION) != (items >= 0)) {
            throw DECLINE;  // an impression lists its items; other events carry none
        }
    }

    private void value(int key) {
        switch (key) {
            case EVENT_ID: case USER_ID:
                id(key, false);
                break;
            case SESSION_ID: case REQUEST_ID: case ITEM_ID:
                id(key, true);
                break;
            case TYPE:
                type = enumValue();
                break;
            case TS:
                ts = integer();
                break;
            case QUERY:
                if (!nullLiteral()) {
                    field(key);
                    if (end[key] - start[key] > maxQueryLen) {
                        throw DECLINE;
                    }
                }
                break;
            case ITEMS:
                if (!nullLiteral()) {
                    items();
                }
                break;
            case PRICE: case QUANTITY:
                if (!nullLiteral()) {
                    double number = nonNegative();
                    if (key == QUANTITY && !(number > 0.0)) {
                        throw DECLINE;
                    }
                    start[key] = scratchStart;
                    end[key] = scratchEnd;
                }
                break;
            default:  // category, brand, device, platform
                if (!nullLiteral()) {
                    field(key);
                    label(start[key], end[key]);
                }
        }
    }

    /** An id: 1 .. max_id_len printable ASCII characters, no space (nothing the validator trims). */
    private void id(int key, boolean optional) {
        if (optional && nullLiteral()) {
            return;
        }
        field(key);
        idSpan(start[key], end[key]);
    }

    private void idSpan(int from, int to) {
        if (to - from < 1 || to - from > maxIdLen) {
            throw DECLINE;
        }
        for (int i = from; i < to; i++) {
            if (in[i] == ' ') {
                throw DECLINE;
            }
        }
    }

    /** A label clean_label keeps as it is: non-empty, within the limit, no surrounding or double space. */
    private void label(int from, int to) {
        if (to - from < 1 || to - from > maxStringLen || in[from] == ' ' || in[to - 1] == ' ') {
            throw DECLINE;
        }
        for (int i = from + 1; i < to; i++) {
            if (in[i] == ' ' && in[i - 1] == ' ') {
                throw DECLINE;
            }
        }
    }

    private int enumValue() {
        string();
        for (int t = 0; t < TYPE_BYTES.length; t++) {
            if (Arrays.equals(in, scratchStart, scratchEnd, TYPE_BYTES[t], 0, TYPE_BYTES[t].length)) {
                return t;
            }
        }
        throw DECLINE;
    }

    private void items() {
        expect('[');
        items = 0;
        if (skipTo(']')) {
            throw DECLINE;  // an impression shows at least one item
        }
        do {
            if (items == maxItems) {
                throw DECLINE;
            }
            if (items == positions.length) {
                grow();
            }
            item(items++);
        } while (comma(']'));
        // Positions are unique: <event_id>:<position> names a training example.
        if (seenPositions.length < maxPosition / 64 + 1) {
            seenPositions = new long[maxPosition / 64 + 1];
        }
        boolean repeated = false;
        for (int i = 0; i < items; i++) {
            int p = positions[i];
            long bit = 1L << (p & 63);
            repeated |= (seenPositions[p >>> 6] & bit) != 0;
            seenPositions[p >>> 6] |= bit;
        }
        for (int i = 0; i < items; i++) {
            seenPositions[positions[i] >>> 6] = 0;
        }
        if (repeated) {
            throw DECLINE;
        }
    }

    private void item(int i) {
        expect('{');
        int seen = 0;
        categoryStart[i] = -1;
        brandStart[i] = -1;
        if (!skipTo('}')) {
            do {
                int key = key(ITEM_KEY_BYTES, ITEM_KEY_INDEX);
                if ((seen & (1 << key)) != 0) {
                    throw DECLINE;
                }
                seen |= 1 << key;
                expect(':');
                switch (key) {
                    case 0:  // item_id
                        string();
                        idSpan(scratchStart, scratchEnd);
                        itemIdStart[i] = scratchStart;
                        itemIdEnd[i] = scratchEnd;
                        break;
                    case 1:  // position
                        long position = integer();
                        if (position < 1 || position > maxPosition) {
                            throw DECLINE;
                        }
                        positions[i] = (int) position;
                        break;
                    case 2:  // price
                        nonNegative();
                        priceStart[i] = scratchStart;
                        priceEnd[i] = scratchEnd;
                        break;
                    case 3:  // category
                        if (!nullLiteral()) {
                            string();
                            label(scratchStart, scratchEnd);
                            categoryStart[i] = scratchStart;
                            categoryEnd[i] = scratchEnd;
                        }
                        break;
                    default:  // brand
                        if (!nullLiteral()) {
                            string();
                            label(scratchStart, scratchEnd);
                            brandStart[i] = scratchStart;
                            brandEnd[i] = scratchEnd;
                        }
                }
            } while (comma('}'));
        }
        if ((seen & 0b111) != 0b111) {
            throw DECLINE;  // item_id, position and price are needed
        }
    }

    private void grow() {
        int size = positions.length * 2;
        itemIdStart = Arrays.copyOf(itemIdStart, size);
        itemIdEnd = Arrays.copyOf(itemIdEnd, size);
        positions = Arrays.copyOf(positions, size);
        priceStart = Arrays.copyOf(priceStart, size);
        priceEnd = Arrays.copyOf(priceEnd, size);
        categoryStart = Arrays.copyOf(categoryStart, size);
        categoryEnd = Arrays.copyOf(categoryEnd, size);
        brandStart = Arrays.copyOf(brandStart, size);
        brandEnd = Arrays.copyOf(brandEnd, size);
    }

    // The span (inside the quotes) of the last string read.
    private int scratchStart, scratchEnd;

    /** A string of printable ASCII without escapes; its span goes to scratchStart, scratchEnd. */
    private void string() {
        skipSpace();
        if (in[at] != '"') {
            throw DECLINE;  // a number, bool, object... where a string belongs: the validator decides
        }
        int from = ++at;
        while (true) {
            byte c = in[at];
            if (c == '"') {
                break;
            }
            if (c < 0x20 || c > 0x7E || c == '\\') {
                throw DECLINE;  // non-ASCII, a control character (invalid JSON) or an escape
            }
            at++;
        }
        scratchStart = from;
        scratchEnd = at++;
    }

    /** A top-level string field: its span goes to start/end[key]. */
    private void field(int key) {
        string();
        start[key] = scratchStart;
        end[key] = scratchEnd;
    }

    private int key(byte[][] keys, int[][] index) {
        string();
        int from = scratchStart, length = scratchEnd - scratchStart;
        if (length < index.length && length > 0) {
            int k = index[length][in[from]];  // in[from] is printable ASCII (string() checked)
            if (k >= 0 && Arrays.equals(in, from, scratchEnd, keys[k], 0, length)) {
                return k;
            }
        }
        throw DECLINE;  // an unknown key
    }

    /** A JSON integer (no fraction, no exponent) that fits in a long, as Python's int reads it. */
    private long integer() {
        skipSpace();
        boolean negative = in[at] == '-';
        if (negative) {
            at++;
        }
        int from = at;
        long value = 0;
        while (at < in.length && in[at] >= '0' && in[at] <= '9') {
            value = value * 10 + (in[at++] - '0');
        }
        int digits = at - from;
        if (digits == 0 || digits > 18 || (digits > 1 && in[from] == '0')) {
            throw DECLINE;  // no digits, perhaps too many for a long, or a leading zero (not JSON)
        }
        if (at < in.length && (in[at] == '.' || in[at] == 'e' || in[at] == 'E')) {
            throw DECLINE;  // 1.0 or 1e3: the validator decides what an integral float means here
        }
        return negative ? -value : value;
    }

    /**
     * A JSON number as Python's float() reads it (correctly rounded), finite and >= 0 (-0.0
     * included, as in Python). Up to 15 significant digits and no exponent: an exact integer divided
     * by an exact power of ten, one correctly rounded operation; anything else through
     * Double.parseDouble, which is correctly rounded too. Its text goes to scratchStart, scratchEnd.
     */
    private double nonNegative() {
        skipSpace();
        int from = at;
        boolean negative = in[at] == '-';
        if (negative) {
            at++;
        }
        int intFrom = at;
        long mantissa = 0;
        int digits = 0;
        while (at < in.length && in[at] >= '0' && in[at] <= '9') {
            mantissa = mantissa * 10 + (in[at++] - '0');
            digits++;
        }
        if (digits == 0 || (digits > 1 && in[intFrom] == '0')) {
            throw DECLINE;
        }
        int fraction = 0;
        if (at < in.length && in[at] == '.') {
            at++;
            int fractionFrom = at;
            while (at < in.length && in[at] >= '0' && in[at] <= '9') {
                mantissa = mantissa * 10 + (in[at++] - '0');
                digits++;
            }
            fraction = at - fractionFrom;
            if (fraction == 0) {
                throw DECLINE;
            }
        }
        boolean exponent = at < in.length && (in[at] == 'e' || in[at] == 'E');
        double value;
        if (exponent) {
            at++;
            if (at < in.length && (in[at] == '+' || in[at] == '-')) {
                at++;
            }
            int expFrom = at;
            while (at < in.length && in[at] >= '0' && in[at] <= '9') {
                at++;
            }
            if (at == expFrom) {
                throw DECLINE;
            }
            value = Double.parseDouble(new String(in, from, at - from, StandardCharsets.US_ASCII));
        } else if (digits <= 15) {
            value = mantissa / POWERS_OF_TEN[fraction];
            if (negative) {
                value = -value;
            }
        } else {
            value = Double.parseDouble(new String(in, from, at - from, StandardCharsets.US_ASCII));
        }
        if (Double.isInfinite(value) || !(value >= 0.0) || (negative && fraction == 0 && !exponent)) {
            // Too large for a double, negative, or -0: an integer, which Python reads as 0.0.
            throw DECLINE;
        }
        scratchStart = from;
        scratchEnd = at;
        return value;
    }

    private boolean nullLiteral() {
        skipSpace();
        if (in[at] == 'n') {
            if (in[at + 1] == 'u' && in[at + 2] == 'l' && in[at + 3] == 'l') {
                at += 4;
                return true;
            }
            throw DECLINE;
        }
        return false;
    }

    private void expect(char c) {
        skipSpace();
        if (in[at] != c) {
            throw DECLINE;
        }
        at++;
    }

    /** Skips whitespace; if the next byte is {@code close}, consumes it and returns true. */
    private boolean skipTo(char close) {
        skipSpace();
        if (in[at] == close) {
            at++;
            return true;
        }
        return false;
    }

    /** After a member: true at a comma (another member follows), false at {@code close}. */
    private boolean comma(char close) {
        skipSpace();
        byte c = in[at++];
        if (c == ',') {
            return true;
        }
        if (c != close) {
            throw DECLINE;
        }
        return false;
    }

    private void skipSpace() {
        while (at < in.length) {
            byte c = in[at];
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                return;
            }
            at++;
        }
    }

    // ---------------------------------------------------------------- writing

    /** The clean-topic record (udfs/clean_record.py): the fields in contract order, then event_time. */
    private byte[] write(long eventTime) {
        if (out == null) {
            out = new Output();
        }
        Output o = out;
        o.reset();
        o.raw("{\"event_id\":");
        o.span(in, start[EVENT_ID], end[EVENT_ID]);
        o.raw(",\"type\":\"");
        o.raw(TYPES[type]);
        o.raw("\",\"ts\":");
        o.digits(ts);
        o.raw(",\"user_id\":");
        o.span(in, start[USER_ID], end[USER_ID]);
        o.raw(",\"session_id\":");
        optional(SESSION_ID);
        o.raw(",\"request_id\":");
        optional(REQUEST_ID);
        o.raw(",\"query\":");
        if (start[QUERY] < 0) {
            o.raw("null");
        } else {
            o.query(in, start[QUERY], end[QUERY]);
        }
        o.raw(",\"items\":");
        if (items < 0) {
            o.raw("null");
        } else {
            o.raw("{\"item_id\":[");
            stringColumn(itemIdStart, itemIdEnd);
            o.raw("],\"position\":[");
            for (int i = 0; i < items; i++) {
                o.comma(i);
                o.digits(positions[i]);
            }
            o.raw("],\"price\":[");
            for (int i = 0; i < items; i++) {
                o.comma(i);
                o.number(in, priceStart[i], priceEnd[i]);
            }
            o.raw("],\"category\":[");
            stringColumn(categoryStart, categoryEnd);
            o.raw("],\"brand\":[");
            stringColumn(brandStart, brandEnd);
            o.raw("]}");
        }
        o.raw(",\"item_id\":");
        optional(ITEM_ID);
        o.raw(",\"price\":");
        numberOrNull(PRICE);
        o.raw(",\"quantity\":");
        numberOrNull(QUANTITY);
        for (int key = CATEGORY; key <= PLATFORM; key++) {
            o.raw(",\"");
            o.raw(EVENT_KEYS[key]);
            o.raw("\":");
            optional(key);
        }
        o.raw(",\"event_time\":");
        o.digits(eventTime);
        o.raw("}");
        return o.toBytes();
    }

    /** One string per item, from its span (null where the span starts at -1). */
    private void stringColumn(int[] from, int[] to) {
        for (int i = 0; i < items; i++) {
            out.comma(i);
            out.spanOrNull(in, from[i], to[i]);
        }
    }

    private void numberOrNull(int key) {
        if (start[key] < 0) {
            out.raw("null");
        } else {
            out.number(in, start[key], end[key]);
        }
    }

    private void optional(int key) {
        out.spanOrNull(in, start[key], start[key] < 0 ? -1 : end[key]);
    }

    /** A growable byte buffer for ASCII JSON. */
    private static final class Output {
        private byte[] bytes = new byte[1024];
        private int size;

        void reset() {
            size = 0;
        }

        private void room(int n) {
            if (size + n > bytes.length) {
                bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, size + n));
            }
        }

        void raw(String ascii) {
            int n = ascii.length();
            room(n);
            ascii.getBytes(0, n, bytes, size);  // ASCII only: the deprecated byte copy is exact
            size += n;
        }

        void comma(int index) {
            if (index > 0) {
                room(1);
                bytes[size++] = ',';
            }
        }

        /** A string span of the input, quoted: it holds no quote, backslash or control character. */
        void span(byte[] in, int from, int to) {
            room(to - from + 2);
            bytes[size++] = '"';
            System.arraycopy(in, from, bytes, size, to - from);
            size += to - from;
            bytes[size++] = '"';
        }

        /**
         * A number as it was written (checked JSON, so any parser reads the same double from it),
         * with ".0" after an integer: the clean record's prices are floats.
         */
        void number(byte[] in, int from, int to) {
            room(to - from + 2);
            boolean integer = true;
            for (int i = from; i < to; i++) {
                byte c = in[i];
                integer &= c != '.' && c != 'e' && c != 'E';
                bytes[size++] = c;
            }
            if (integer) {
                bytes[size++] = '.';
                bytes[size++] = '0';
            }
        }

        /** A non-negative integer in decimal. */
        void digits(long value) {
            room(20);
            int first = size;
            do {
                bytes[size++] = (byte) ('0' + value % 10);
                value /= 10;
            } while (value > 0);
            for (int i = first, j = size - 1; i < j; i++, j--) {
                byte c = bytes[i];
                bytes[i] = bytes[j];
                bytes[j] = c;
            }
        }

        void spanOrNull(byte[] in, int from, int to) {
            if (from < 0) {
                raw("null");
            } else {
                span(in, from, to);
            }
        }

        /** normalize_query on printable ASCII: lower case, runs of spaces as one, no surrounding space. */
        void query(byte[] in, int from, int to) {
            room(to - from + 2);
            bytes[size++] = '"';
            boolean space = false;
            boolean any = false;
            for (int i = from; i < to; i++) {
                byte c = in[i];
                if (c == ' ') {
                    space = any;
                    continue;
                }
                if (space) {
                    bytes[size++] = ' ';
                    space = false;
                }
                bytes[size++] = c >= 'A' && c <= 'Z' ? (byte) (c + 32) : c;
                any = true;
            }
            bytes[size++] = '"';
        }

        byte[] toBytes() {
            return Arrays.copyOf(bytes, size);
        }
    }

    private static int[][] index(byte[][] keys) {
        int longest = 0;
        for (byte[] key : keys) {
            longest = Math.max(longest, key.length);
        }
        int[][] index = new int[longest + 1][128];
        for (int[] row : index) {
            Arrays.fill(row, -1);
        }
        for (int k = 0; k < keys.length; k++) {
            if (index[keys[k].length][keys[k][0]] >= 0) {
                throw new IllegalStateException("two keys share a length and a first byte");
            }
            index[keys[k].length][keys[k][0]] = k;
        }
        return index;
    }

    private static byte[][] ascii(String[] words) {
        byte[][] bytes = new byte[words.length][];
        for (int i = 0; i < words.length; i++) {
            bytes[i] = words[i].getBytes(StandardCharsets.US_ASCII);
        }
        return bytes;
    }
}
