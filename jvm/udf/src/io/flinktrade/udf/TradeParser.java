package io.flinktrade.udf;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;

/**
 * Parses and validates one {@code market.trades} record in a single streaming pass.
 *
 * <p>Every record gives a result: {@code ok} with the typed fields, or not {@code ok} with a short
 * human-readable {@code reason}, which the job routes to the dead-letter topic together with the
 * original bytes ({@link ParseTrades}). A bad record never throws, so it can never fail the job.
 * One parser (and its one reusable result) per task: it is not thread-safe.
 *
 * <p>The record's Kafka timestamp is its event time (flinktrade producers set it to {@code ts}); a
 * payload whose {@code ts} disagrees is rejected rather than silently windowed at the wrong time.
 *
 * <p>The bounds are those of flinktrade's Python event models ({@code flinktrade.events}), so the
 * two sides accept the same trades: a symbol is 1-16 printable ASCII characters; a price lies in
 * [0.000001, 999999999999.999999] with at most six decimals (it fits {@code DECIMAL(18, 6)}
 * exactly, never rounded to 0); a size in [1, 10^12]; {@code ts} in [0, 2100-01-01]. Reasons are
 * short: a value is quoted by at most 40 characters.
 */
public final class TradeParser {

    private static final JsonFactory JSON = new JsonFactory();
    private static final BigDecimal MIN_PRICE = new BigDecimal("0.000001");
    private static final BigDecimal MAX_PRICE = new BigDecimal("999999999999.999999");
    private static final int PRICE_DECIMALS = 6;
    private static final long MAX_SIZE = 1_000_000_000_000L;
    private static final long MAX_TS = 4_102_444_800_000L; // 2100-01-01T00:00:00Z, inclusive
    private static final int MAX_SYMBOL_LENGTH = 16;
    private static final int MAX_QUOTED = 40;

    /** Whether the last record parsed is a valid trade; if not, {@link #reason} says why. */
    public boolean ok;

    /** Why the last record is not a valid trade (null when it is). */
    public String reason;

    /** The last valid trade's symbol. */
    public String symbol;

    /** The last valid trade's price as a {@code DECIMAL(18, 6)}'s unscaled long (price * 10^6). */
    public long unscaledPrice;

    public long size;
    public long ts;

    private String id;
    private byte[] idBytes;
    private int idStart;
    private int idLength;

    /** The last valid trade's id (made from the record's bytes only when asked for). */
    public String id() {
        if (id == null && idBytes != null) {
            id = new String(idBytes, idStart, idLength, StandardCharsets.ISO_8859_1);
        }
        return id;
    }

    /**
     * Parses {@code value} (a record's bytes, null for an empty record) whose Kafka timestamp is
     * {@code recordTs} (null: not checked) into this parser's fields; returns {@link #ok}.
     *
     * <p>A record of the shape flinktrade's producers write (a flat object of plain ASCII strings
     * and plain numbers, every field valid) is read by a byte scanner ({@link #fast}); anything
     * else, and anything the scanner would have to refuse, is read again by the full parser
     * ({@link #parseFully}), which alone decides a refusal and its reason. The scanner only
     * accepts records the full parser accepts with the same values (a test checks the two on
     * every hostile record and on random mutations of valid ones).
     */
    public boolean parse(byte[] value, Long recordTs) {
        return (value != null && fast(value, recordTs)) || parseFully(value, recordTs);
    }

    /** {@link #parse} by Jackson's streaming parser alone. */
    public boolean parseFully(byte[] value, Long recordTs) {
        ok = false;
        reason = null;
        String id = null;
        String symbol = null;
        BigDecimal price = null;
        Long size = null;
        Long ts = null;
        if (value == null) {
            return reject("empty record (null value)");
        }
        try (JsonParser p = JSON.createParser(value)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return reject("not a JSON object");
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken v = p.nextToken();
                switch (name) {
                    case "id":
                        id = v == JsonToken.VALUE_STRING || v.isNumeric() ? p.getText() : null;
                        p.skipChildren(); // an object or array is no id: skip all of it
                        break;
                    case "symbol":
                        symbol = v == JsonToken.VALUE_STRING ? p.getText() : null;
                        p.skipChildren();
                        break;
                    case "price":
                        price = decimal(p, v);
                        if (price == null) {
                            return reject("price is not a number");
                        }
                        break;
                    case "size":
                        if (v != JsonToken.VALUE_NUMBER_INT) {
                            return reject("size is not an integer");
                        }
                        if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                            return reject("size out of range: " + quoted(p.getText()));
                        }
                        size = p.getLongValue();
                        break;
                    case "ts":
                        if (v != JsonToken.VALUE_NUMBER_INT) {
                            return reject("ts is not an integer (epoch milliseconds)");
                        }
                        if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                            return reject("ts out of range: " + quoted(p.getText()));
                        }
                        ts = p.getLongValue();
                        break;
                    default:
                        p.skipChildren();
                }
            }
            if (t != JsonToken.END_OBJECT || p.nextToken() != null) {
                return reject("malformed JSON object");
            }
        } catch (IOException | RuntimeException e) {
            return reject("malformed JSON: " + firstLine(e.getMessage()));
        }
        String problem = problem(id, symbol, price, size, ts, recordTs);
        if (problem != null) {
            return reject(problem);
        }
        this.id = id;
        this.idBytes = null;
        this.symbol = symbol;
        this.unscaledPrice = price.setScale(PRICE_DECIMALS).unscaledValue().longValueExact();
        this.size = size;
        this.ts = ts;
        ok = true;
        return true;
    }

    private static final long MAX_UNSCALED = 999_999_999_999_999_999L; // MAX_PRICE * 10^6
    private static final int MAX_INTEGER_DIGITS = 12; // of a price below MAX_PRICE + 1
    private static final long[] TENS = {1, 10, 100, 1_000, 10_000, 100_000, 1_000_000};

    private static final int OTHER = 0;
    private static final int ID = 1;
    private static final int SYMBOL = 2;
    private static final int PRICE = 3;
    private static final int SIZE = 4;
    private static final int TS = 5;

    /**
     * The scanner of {@link #parse}: true (and the fields set) for a valid trade in the plain
     * shape, false for anything else (nothing decided: the full parser reads it). It gives up on
     * an escape, a control or non-ASCII byte in a string, a nested value, a literal, a negative
     * number, an exponent, more than six decimals (trailing zeros included), a number of more
     * than 18 digits, an id that is not a string, a price or size or ts written as a string, and
     * on any field missing or out of bounds.
     */
    public boolean fast(byte[] b, Long recordTs) {
        int n = b.length;
        int i = skipSpace(b, 0);
        if (i >= n || b[i] != '{') {
            return false;
        }
        String symbol = null;
        int idAt = -1;
        int idLength = 0;
        long price = -1;
        long size = -1;
        long ts = -1;
        i++;
        while (true) {
            i = skipSpace(b, i);
            if (i >= n || b[i] != '"') {
                return false;
            }
            int keyAt = ++i;
            i = stringEnd(b, i);
            if (i < 0) {
                return false;
            }
            int field = field(b, keyAt, i - keyAt);
            i = skipSpace(b, i + 1);
            if (i >= n || b[i] != ':') {
                return false;
            }
            i = skipSpace(b, i + 1);
            if (i >= n) {
                return false;
            }
            byte c = b[i];
            if (c == '"') {
                int at = i + 1;
                i = stringEnd(b, at);
                if (i < 0) {
                    return false;
                }
                if (field == ID) {
                    idAt = at;
                    idLength = i - at;
                } else if (field == SYMBOL) {
                    symbol = new String(b, at, i - at, StandardCharsets.ISO_8859_1);
                } else if (field != OTHER) {
                    return false; // a number written as a string: the full parser decides
                }
                i++;
            } else if (c >= '0' && c <= '9') {
                long whole = 0;
                int digits = 0;
                if (c == '0') {
                    i++;
                    digits = 1;
                } else {
                    while (i < n && b[i] >= '0' && b[i] <= '9') {
                        if (++digits > 18) {
                            return false;
                        }
                        whole = whole * 10 + (b[i++] - '0');
                    }
                }
                long fraction = 0;
                int decimals = -1;
                if (i < n && b[i] == '.') {
                    decimals = 0;
                    i++;
                    while (i < n && b[i] >= '0' && b[i] <= '9') {
                        if (++decimals > PRICE_DECIMALS) {
                            return false;
                        }
                        fraction = fraction * 10 + (b[i++] - '0');
                    }
                    if (decimals == 0) {
                        return false;
                    }
                }
                if (i < n && ((b[i] >= '0' && b[i] <= '9') || b[i] == 'e' || b[i] == 'E')) {
                    return false; // a leading zero's next digit, or an exponent
                }
                if (field == PRICE) {
                    if (digits > MAX_INTEGER_DIGITS) {
                        return false;
                    }
                    price = whole * TENS[PRICE_DECIMALS]
                            + (decimals < 0 ? 0 : fraction * TENS[PRICE_DECIMALS - decimals]);
                } else if (field == SIZE || field == TS) {
                    if (decimals >= 0) {
                        return false;
                    }
                    if (field == SIZE) {
                        size = whole;
                    } else {
                        ts = whole;
                    }
                } else if (field != OTHER) {
                    return false; // a numeric id or symbol: the full parser decides
                }
            } else {
                return false; // a literal, an object, an array, a negative number
            }
            i = skipSpace(b, i);
            if (i >= n) {
                return false;
            }
            if (b[i] == ',') {
                i++;
            } else if (b[i] == '}') {
                i++;
                break;
            } else {
                return false;
            }
        }
        if (skipSpace(b, i) != n || idAt < 0 || idLength == 0 || symbol == null) {
            return false;
        }
        if (symbol.isEmpty() || symbol.length() > MAX_SYMBOL_LENGTH || !printableAscii(symbol)) {
            return false;
        }
        if (price < 1 || price > MAX_UNSCALED || size < 1 || size > MAX_SIZE) {
            return false;
        }
        if (ts < 0 || ts > MAX_TS || (recordTs != null && ts != recordTs)) {
            return false;
        }
        this.ok = true;
        this.reason = null;
        this.id = null;
        this.idBytes = b;
        this.idStart = idAt;
        this.idLength = idLength;
        this.symbol = symbol;
        this.unscaledPrice = price;
        this.size = size;
        this.ts = ts;
        return true;
    }

    /** The first index from {@code i} that is not JSON whitespace. */
    private static int skipSpace(byte[] b, int i) {
        while (i < b.length && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) {
            i++;
        }
        return i;
    }

    /**
     * The index of the quote that ends the string starting at {@code i}; -1 at an escape, a
     * control or non-ASCII byte, or the end of the input.
     */
    private static int stringEnd(byte[] b, int i) {
        while (i < b.length) {
            byte c = b[i];
            if (c == '"') {
                return i;
            }
            if (c == '\\' || c < 0x20) { // bytes are signed: non-ASCII is negative
                return -1;
            }
            i++;
        }
        return -1;
    }

    /** Which of the trade's fields the key at {@code at} (of {@code length} bytes) names. */
    private static int field(byte[] b, int at, int length) {
        switch (length) {
            case 2:
                if (b[at] == 'i' && b[at + 1] == 'd') {
                    return ID;
                }
                if (b[at] == 't' && b[at + 1] == 's') {
                    return TS;
                }
                return OTHER;
            case 4:
                return b[at] == 's' && b[at + 1] == 'i' && b[at + 2] == 'z' && b[at + 3] == 'e'
                        ? SIZE
                        : OTHER;
            case 5:
                return b[at] == 'p' && b[at + 1] == 'r' && b[at + 2] == 'i' && b[at + 3] == 'c'
                                && b[at + 4] == 'e'
                        ? PRICE
                        : OTHER;
            case 6:
                return b[at] == 's' && b[at + 1] == 'y' && b[at + 2] == 'm' && b[at + 3] == 'b'
                                && b[at + 4] == 'o' && b[at + 5] == 'l'
                        ? SYMBOL
                        : OTHER;
            default:
                return OTHER;
        }
    }

    private static String problem(
            String id, String symbol, BigDecimal price, Long size, Long ts, Long recordTs) {
        if (id == null || id.isEmpty()) {
            return "missing field: id";
        }
        if (symbol == null || symbol.isEmpty()) {
            return "missing field: symbol";
        }
        if (symbol.length() > MAX_SYMBOL_LENGTH || !printableAscii(symbol)) {
            return "invalid symbol (1-16 printable ASCII characters): " + quoted(symbol);
        }
        if (price == null) {
            return "missing field: price";
        }
        if (price.compareTo(MIN_PRICE) < 0 || price.compareTo(MAX_PRICE) > 0) {
            return "price out of range [" + MIN_PRICE.toPlainString() + ", "
                    + MAX_PRICE.toPlainString() + "]: " + quoted(price.toString());
        }
        if (price.stripTrailingZeros().scale() > PRICE_DECIMALS) {
            return "price has more than " + PRICE_DECIMALS + " decimals: "
                    + quoted(price.toPlainString());
        }
        if (size == null) {
            return "missing field: size";
        }
        if (size <= 0) {
            return "size must be positive: " + size;
        }
        if (size > MAX_SIZE) {
            return "size out of range: " + size + " is above " + MAX_SIZE;
        }
        if (ts == null) {
            return "missing field: ts";
        }
        if (ts < 0 || ts > MAX_TS) {
            return "ts out of range: " + ts + " is not between 1970 and 2100";
        }
        if (recordTs != null && !ts.equals(recordTs)) {
            return "ts " + ts + " differs from the record timestamp " + recordTs;
        }
        return null;
    }

    private static BigDecimal decimal(JsonParser p, JsonToken v) throws IOException {
        try {
            if (v.isNumeric()) {
                return p.getDecimalValue();
            }
            if (v == JsonToken.VALUE_STRING) {
                return new BigDecimal(p.getText().trim());
            }
        } catch (NumberFormatException e) {
            return null;
        }
        return null;
    }

    /** True if every character is printable ASCII ('!' to '~': no space, no control). */
    static boolean printableAscii(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c < '!' || c > '~') {
                return false;
            }
        }
        return true;
    }

    /** {@code text} in quotes, cut to {@link #MAX_QUOTED} characters (a reason stays short). */
    static String quoted(String text) {
        return text.length() <= MAX_QUOTED
                ? "'" + text + "'"
                : "'" + text.substring(0, MAX_QUOTED) + "...' (" + text.length() + " chars)";
    }

    private boolean reject(String why) {
        reason = why;
        id = null;
        idBytes = null;
        symbol = null;
        return false;
    }

    private static String firstLine(String message) {
        if (message == null) {
            return "unreadable input";
        }
        int nl = message.indexOf('\n');
        String line = nl < 0 ? message : message.substring(0, nl);
        return line.length() <= 200 ? line : line.substring(0, 200) + "...";
    }
}
