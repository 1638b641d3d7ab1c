package io.flinktrade.udf;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

/**
 * The trades' watermarks, as the job's SQL declared them ({@code WATERMARK FOR rt AS rt - bound}):
 * the largest record timestamp seen, less {@code bound} milliseconds, emitted at each periodic
 * emit ({@code pipeline.auto-watermark-interval}) once a record has been seen. Not Flink's
 * {@code forBoundedOutOfOrderness}, which emits one millisecond less: a trade exactly {@code bound}
 * behind the newest is on time here, as it was. The Kafka source runs one generator per partition
 * and emits their minimum; idleness is the caller's ({@code withIdleness}).
 */
public class LaggingWatermarks<T> implements WatermarkStrategy<T> {

    private static final long serialVersionUID = 1L;

    private final long boundMs;

    public LaggingWatermarks(long boundMs) {
        this.boundMs = boundMs;
    }

    @Override
    public WatermarkGenerator<T> createWatermarkGenerator(WatermarkGeneratorSupplier.Context context) {
        return new Generator<>(boundMs);
    }

    private static final class Generator<T> implements WatermarkGenerator<T> {
        private final long boundMs;
        private long newest = Long.MIN_VALUE;

        Generator(long boundMs) {
            this.boundMs = boundMs;
        }

        @Override
        public void onEvent(T event, long timestamp, WatermarkOutput output) {
            if (timestamp > newest) {
                newest = timestamp;
            }
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            if (newest != Long.MIN_VALUE) {
                output.emitWatermark(new Watermark(newest - boundMs));
            }
        }
    }
}
