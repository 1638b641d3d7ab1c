package io.flinktrade.udf;

import java.io.IOException;
import java.math.BigDecimal;
import java.time.Instant;
import java.nio.charset.StandardCharsets;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

/**
 * Parses and validates one {@code market.trades} record in a single streaming pass.
 *
 * <p>Every input row yields exactly one output row: {@code ok = true} with the typed fields, or
 * {@code ok = false} with a human-readable {@code reason}, which the job routes to the dead-letter
 * topic together with the original bytes. A bad record never throws, so it can never fail the job.
 *
 * <p>The record's Kafka timestamp is its event time (flinktrade producers set it to {@code ts}); a
 * payload whose {@code ts} disagrees is rejected rather than silently windowed at the wrong time.
 */
@FunctionHint(
        output =
                @DataTypeHint(
                        "ROW<ok BOOLEAN, reason STRING, id STRING, symbol STRING,"
                                + " price DECIMAL(18, 6), size BIGINT, ts BIGINT>"))
public class ParseTrade extends TableFunction<Row> {

    private static final JsonFactory JSON = new JsonFactory();
    private static final BigDecimal MAX_PRICE = new BigDecimal("999999999999");
    private static final int MAX_SYMBOL_LENGTH = 16;

    public void eval(byte[] value, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant recordTime) {
        Long recordTs = recordTime == null ? null : recordTime.toEpochMilli();
        String id = null;
        String symbol = null;
        BigDecimal price = null;
        Long size = null;
        Long ts = null;
        if (value == null) {
            reject("empty record (null value)");
            return;
        }
        try (JsonParser p = JSON.createParser(value)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                reject("not a JSON object");
                return;
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken v = p.nextToken();
                switch (name) {
                    case "id":
                        id = v == JsonToken.VALUE_STRING || v.isNumeric() ? p.getText() : null;
                        break;
                    case "symbol":
                        symbol = v == JsonToken.VALUE_STRING ? p.getText() : null;
                        break;
                    case "price":
                        price = decimal(p, v);
                        if (price == null) {
                            reject("price is not a number");
                            return;
                        }
                        break;
                    case "size":
                        if (v != JsonToken.VALUE_NUMBER_INT) {
                            reject("size is not an integer");
                            return;
                        }
                        size = p.getLongValue();
                        break;
                    case "ts":
                        if (v != JsonToken.VALUE_NUMBER_INT) {
                            reject("ts is not an integer (epoch milliseconds)");
                            return;
                        }
                        ts = p.getLongValue();
                        break;
                    default:
                        p.skipChildren();
                }
            }
            if (t != JsonToken.END_OBJECT || p.nextToken() != null) {
                reject("malformed JSON object");
                return;
            }
        } catch (IOException | RuntimeException e) {
            reject("malformed JSON: " + firstLine(e.getMessage()));
            return;
        }
        String problem = problem(id, symbol, price, size, ts, recordTs);
        if (problem != null) {
            reject(problem);
        } else {
            collect(Row.of(true, null, id, symbol, price, size, ts));
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
        if (symbol.length() > MAX_SYMBOL_LENGTH || !symbol.equals(symbol.trim())) {
            return "invalid symbol: " + symbol;
        }
        if (price == null) {
            return "missing field: price";
        }
        if (price.signum() <= 0 || price.compareTo(MAX_PRICE) > 0) {
            return "price out of range: " + price.toPlainString();
        }
        if (size == null) {
            return "missing field: size";
        }
        if (size <= 0) {
            return "size must be positive: " + size;
        }
        if (ts == null) {
            return "missing field: ts";
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

    private void reject(String reason) {
        collect(Row.of(false, reason, null, null, null, null, null));
    }

    private static String firstLine(String message) {
        if (message == null) {
            return "unreadable input";
        }
        int nl = message.indexOf('\n');
        return nl < 0 ? message : message.substring(0, nl);
    }
}
