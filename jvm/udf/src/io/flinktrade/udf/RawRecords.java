package io.flinktrade.udf;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * A side input's records (news, provider bars) as the job's Python decoders take them, straight
 * from a DataStream Kafka source: {@code (value, partition, offset, ts)} rows ({@link #TYPE}),
 * {@code ts} the record timestamp, epoch milliseconds, and its event time.
 *
 * <p>Provider bars ({@link #bars()}, {@link #BAR_TYPE}) add {@code record_ts}, the record
 * timestamp, and their {@code ts} (and event time, through {@link #eventTime()}) is the bar's end,
 * {@code ts + interval_ms - 1}, so a bar is handled as soon as the watermark says its interval is
 * over: from the JSON's {@code ts} (an integer from 0 to {@link #MAX_AHEAD_MS} past the record
 * timestamp) and {@code interval_ms} (an integer from 1 to {@link #MAX_INTERVAL_MS}, else a
 * minute). A record without such a {@code ts}, or that is not JSON, keeps its record timestamp:
 * it becomes a dead letter in Python anyway, and cannot push the watermark ahead.
 *
 * <p>This replaced the SQL tables these inputs were read through (a table source, its watermark
 * expression, and a conversion of each row to the DataStream API): with them gone the job needs
 * no table planner at all, which cost its start ~3 s (docs/benchmarks.md, session 33).
 */
public class RawRecords implements KafkaRecordDeserializationSchema<Row> {

    private static final long serialVersionUID = 1L;

    /** {@code connectors.BAR_INTERVAL_MS}: a bar's interval when its record names none usable. */
    public static final long BAR_INTERVAL_MS = 60_000L;

    /** {@code connectors.MAX_AHEAD_MS}. */
    public static final long MAX_AHEAD_MS = 5 * 60_000L;

    /** {@code events.MAX_INTERVAL_MS}. */
    public static final long MAX_INTERVAL_MS = 366L * 86_400_000L;

    public static final TypeInformation<Row> TYPE =
            Types.ROW_NAMED(
                    new String[] {"value", "partition", "offset", "ts"},
                    Types.PRIMITIVE_ARRAY(Types.BYTE),
                    Types.INT,
                    Types.LONG,
                    Types.LONG);

    public static final TypeInformation<Row> BAR_TYPE =
            Types.ROW_NAMED(
                    new String[] {"value", "partition", "offset", "ts", "record_ts"},
                    Types.PRIMITIVE_ARRAY(Types.BYTE),
                    Types.INT,
                    Types.LONG,
                    Types.LONG,
                    Types.LONG);

    private final boolean barEnd;
    private transient ObjectMapper json;

    private RawRecords(boolean barEnd) {
        this.barEnd = barEnd;
    }

    /** News records. */
    public static RawRecords news() {
        return new RawRecords(false);
    }

    /** Provider-bar records, their event time the bar's end. */
    public static RawRecords bars() {
        return new RawRecords(true);
    }

    /** The event time of these rows, their field {@code ts} (for a source's watermarks). */
    public static SerializableTimestampAssigner<Row> eventTime() {
        return (row, previous) -> (Long) row.getField(3);
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        long recordTs = record.timestamp();
        if (!barEnd) {
            out.collect(Row.of(record.value(), record.partition(), record.offset(), recordTs));
            return;
        }
        Long end = barEnd(record.value(), recordTs);
        out.collect(Row.of(record.value(), record.partition(), record.offset(),
                end == null ? recordTs : end, recordTs));
    }

    /** A provider bar's end, or null when its record holds no usable {@code ts}. */
    public Long barEnd(byte[] value, long recordTs) {
        if (value == null) {
            return null;
        }
        if (json == null) {
            json = new ObjectMapper();
        }
        JsonNode bar;
        try {
            bar = json.readTree(value);
        } catch (Exception | StackOverflowError e) { // not JSON (or too deep): a dead letter later
            return null;
        }
        if (bar == null || !bar.isObject()) {
            return null;
        }
        Long ts = integer(bar.get("ts"));
        if (ts == null || ts < 0 || ts > recordTs + MAX_AHEAD_MS) {
            return null;
        }
        Long interval = integer(bar.get("interval_ms"));
        long span = interval != null && interval >= 1 && interval <= MAX_INTERVAL_MS
                ? interval : BAR_INTERVAL_MS;
        return ts + span - 1;
    }

    /** A JSON integer, or a string holding one (as SQL's {@code TRY_CAST} read it), else null. */
    private static Long integer(JsonNode node) {
        if (node == null) {
            return null;
        }
        if (node.isIntegralNumber()) {
            return node.canConvertToLong() ? node.longValue() : null;
        }
        if (node.isTextual()) {
            try {
                return Long.parseLong(node.textValue().trim());
            } catch (NumberFormatException e) {
                return null;
            }
        }
        return null;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return barEnd ? BAR_TYPE : TYPE;
    }
}
