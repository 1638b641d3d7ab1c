package io.flinktrade.udf;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * A dead letter's {@code payload_bytes}: the record's size in bytes when {@link DeadPayload} cut
 * it, else null (as flinktrade's Python {@code DeadLetter.of} sets it).
 */
public class PayloadBytes extends ScalarFunction {
    public Long eval(byte[] value) {
        if (value == null || value.length <= DeadPayload.MAX_BYTES) {
            return null;
        }
        return (long) value.length;
    }
}
