package io.flinktrade.udf;

import java.time.Instant;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/** Epoch milliseconds (UTC) of a TIMESTAMP_LTZ, e.g. a window's {@code window_time}. */
public class EpochMillis extends ScalarFunction {
    public Long eval(@DataTypeHint("TIMESTAMP_LTZ(3)") Instant time) {
        return time == null ? null : time.toEpochMilli();
    }
}
