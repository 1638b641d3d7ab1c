package io.flinktrade.udf;

import java.io.IOException;
import java.math.BigDecimal;

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

    /** The last valid trade's fields ({@code price} exact, at most six decimals). */
    public String id;

    public String symbol;
    public BigDecimal price;
    public long size;
    public long ts;

    /**
     * Parses {@code value} (a record's bytes, null for an empty record) whose Kafka timestamp is
     * {@code recordTs} (null: not checked) into this parser's fields; returns {@link #ok}.
     */
    public boolean parse(byte[] value, Long recordTs) {
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
        this.symbol = symbol;
        this.price = price;
        this.size = size;
        this.ts = ts;
        ok = true;
        return true;
    }

    /** The last valid trade's price as a {@code DECIMAL(18, 6)}'s unscaled long (price * 10^6). */
    public long unscaledPrice() {
        return price.setScale(PRICE_DECIMALS).unscaledValue().longValueExact();
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
        symbol = null;
        price = null;
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
