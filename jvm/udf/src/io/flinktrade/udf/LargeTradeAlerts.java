package io.flinktrade.udf;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * A {@code large_trade} alert for each trade of {@link ParseTrades}' {@link ParseTrades#LARGE}
 * output ({@code ts, trade_id, symbol, price} with its six decimals as text, {@code size}): an
 * {@code operator.OUTPUT_ROW_TYPE} row ({@code (topic, k, payload, ts)}, keyed by symbol like the
 * Python operator's alerts) holding {@code events.Alert}'s JSON. Decided per trade in the source's
 * task, so the alert leaves as soon as the trade is read, without waiting for a watermark. Chained
 * behind the parse; this replaced a SQL insert into a table sink of its own.
 *
 * <p>The id is {@code events.stable_id("alert", "large_trade", symbol, trade id)} (the first 32 hex
 * digits of SHA-256 over the parts joined by {@code |}): a re-read trade repeats it, two trades in
 * the same millisecond do not share it. Critical from twice the threshold, like {@code price_gap}.
 */
public class LargeTradeAlerts implements MapFunction<Row, Row> {

    private static final long serialVersionUID = 1L;

    /** {@code events.AlertKind.LARGE_TRADE}. */
    public static final String KIND = "large_trade";

    private final String topic;
    private final long threshold;

    public LargeTradeAlerts(String topic, long threshold) {
        this.topic = topic;
        this.threshold = threshold;
    }

    @Override
    public Row map(Row large) {
        long ts = ((Number) large.getField(0)).longValue();
        String symbol = (String) large.getField(2);
        long size = ((Number) large.getField(4)).longValue();
        byte[] json = encode(ts, System.currentTimeMillis(), (String) large.getField(1), symbol,
                (String) large.getField(3), size, threshold);
        return Row.of(topic, symbol.getBytes(StandardCharsets.UTF_8), json, ts);
    }

    /** The alert's JSON (public for the tests, which compare it with Python's). */
    public static byte[] encode(long ts, long ingestTs, String tradeId, String symbol,
            String price, long size, long threshold) {
        String id = stableId("alert", KIND, symbol, tradeId);
        String message = "Large trade: " + size + " at " + plain(price);
        String severity = size >= 2 * threshold ? "critical" : "warning";
        return JsonEvents.encode(json -> {
            json.writeNumberField("ts", ts);
            json.writeNumberField("ingest_ts", ingestTs);
            json.writeStringField("id", id);
            json.writeStringField("kind", KIND);
            json.writeStringField("severity", severity);
            json.writeStringField("symbol", symbol);
            json.writeStringField("message", message);
            json.writeFieldName("value");
            json.writeNumber(size + ".0"); // a float of an integer, as Python writes it
            json.writeFieldName("threshold");
            json.writeNumber(threshold + ".0");
        });
    }

    /** A decimal's text without trailing zeros after its point (nor the point itself). */
    static String plain(String decimal) {
        if (decimal.indexOf('.') < 0) {
            return decimal;
        }
        int end = decimal.length();
        while (decimal.charAt(end - 1) == '0') {
            end--;
        }
        if (decimal.charAt(end - 1) == '.') {
            end--;
        }
        return decimal.substring(0, end);
    }

    /** {@code events.stable_id(parts)}. */
    public static String stableId(String... parts) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256")
                    .digest(String.join("|", parts).getBytes(StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder(32);
            for (int i = 0; i < 16; i++) {
                hex.append(Character.forDigit((digest[i] >> 4) & 0xF, 16))
                        .append(Character.forDigit(digest[i] & 0xF, 16));
            }
            return hex.toString();
        } catch (NoSuchAlgorithmException e) { // every JVM has SHA-256
            throw new IllegalStateException(e);
        }
    }
}
