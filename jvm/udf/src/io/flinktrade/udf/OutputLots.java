package io.flinktrade.udf;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The rows of Python's {@code operator.BundledBarOperator}, which hands them over packed in lots
 * ({@code operator.pack_outputs}): each lot's one field is a byte array of rows, each
 * little-endian {@code topic length (u16), topic (UTF-8), key length (i32, -1 for none), key,
 * payload length (i32), payload, timestamp (i64)}. Out come {@code (topic, k, payload, ts)} rows,
 * {@code operator.OUTPUT_ROW_TYPE}. One crossing from Python per lot instead of one per row.
 */
public class OutputLots implements FlatMapFunction<Row, Row> {

    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(Row lot, Collector<Row> out) {
        byte[] data = (byte[]) lot.getField(0);
        if (data == null) {
            return;
        }
        ByteBuffer in = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        while (in.hasRemaining()) {
            int size = in.getShort() & 0xFFFF;
            String topic = new String(data, in.position(), size, StandardCharsets.UTF_8);
            in.position(in.position() + size);
            byte[] key = bytes(in, in.getInt());
            byte[] payload = bytes(in, in.getInt());
            long ts = in.getLong();
            out.collect(Row.of(topic, key, payload, ts));
        }
    }

    /** The next {@code size} bytes, or null for a size below 0. */
    private static byte[] bytes(ByteBuffer in, int size) {
        if (size < 0) {
            return null;
        }
        byte[] out = new byte[size];
        in.get(out);
        return out;
    }
}
