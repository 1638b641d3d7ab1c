package io.flinktrade.udf;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * The trades {@link ParseTrades} refused (its {@link ParseTrades#DEAD} output: {@code ts,
 * partition, offset, reason, payload}) as {@code deadletter} records, an {@code
 * operator.OUTPUT_ROW_TYPE} row each ({@code (topic, k, payload, ts)}, no key) for the job's
 * outputs' sink: {@code events.DeadLetter}'s JSON, with the reason cut to {@link #MAX_REASON_CHARS}
 * characters and the payload bounded ({@link DeadPayload}) as {@code DeadLetter.of} bounds them.
 * Chained behind the parse; this replaced a SQL insert into a table sink of its own.
 */
public class DeadLetters implements MapFunction<Row, Row> {

    private static final long serialVersionUID = 1L;

    /** {@code events.MAX_DEAD_REASON_CHARS}. */
    public static final int MAX_REASON_CHARS = 500;

    private final String topic;
    private final String sourceTopic;

    public DeadLetters(String topic, String sourceTopic) {
        this.topic = topic;
        this.sourceTopic = sourceTopic;
    }

    @Override
    public Row map(Row dead) {
        Number ts = (Number) dead.getField(0);
        Number partition = (Number) dead.getField(1);
        Number offset = (Number) dead.getField(2);
        String reason = (String) dead.getField(3);
        byte[] value = (byte[]) dead.getField(4);
        long now = System.currentTimeMillis();
        long time = ts == null ? now : ts.longValue();
        byte[] json = encode(time, now, sourceTopic,
                partition == null ? null : partition.intValue(),
                offset == null ? null : offset.longValue(),
                reason == null ? "invalid record" : reason, value);
        return Row.of(topic, null, json, time);
    }

    /** A dead letter's JSON (public for the tests, which compare it with Python's). */
    public static byte[] encode(long ts, long ingestTs, String sourceTopic, Integer partition,
            Long offset, String reason, byte[] value) {
        String text = DeadPayload.text(value);
        Long size = DeadPayload.size(value);
        String cut = JsonEvents.cutChars(reason, MAX_REASON_CHARS);
        return JsonEvents.encode(json -> {
            json.writeNumberField("ts", ts);
            json.writeNumberField("ingest_ts", ingestTs);
            json.writeStringField("source_topic", sourceTopic);
            if (partition != null) {
                json.writeNumberField("partition", partition);
            }
            if (offset != null) {
                json.writeNumberField("offset", offset);
            }
            json.writeStringField("reason", cut);
            json.writeStringField("payload", text);
            if (size != null) {
                json.writeNumberField("payload_bytes", size);
            }
        });
    }
}
