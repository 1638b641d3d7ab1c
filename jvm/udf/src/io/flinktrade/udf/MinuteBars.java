package io.flinktrade.udf;

import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeHint;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple5;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * One-minute OHLCV+VWAP bars of the trades of {@link ParseTrades}, keyed by bar bucket: each
 * minute's bars leave together once the watermark passes the minute's end (an event-time timer per
 * minute and bucket), in one of two shapes.
 *
 * <ul>
 *   <li>{@code bundled}: one row {@code (bucket INT, lines STRING)} per minute and bucket, the
 *       bundle {@code operator.BundledBarOperator} reads: one line per symbol, in the order of the
 *       symbols' first trades, each {@code symbol, ts, open, high, low, close, volume, vwap,
 *       trades} separated by tabs, the lines by newlines.
 *   <li>otherwise: one row per bar with the fields of Python's {@code operator.BAR_ROW_TYPE}
 *       ({@code "bar", symbol, ts, open, high, low, close, volume, vwap, trades, 60000, null}).
 * </ul>
 *
 * <p>Values: prices exact (a {@code DECIMAL(18, 6)}'s unscaled long, written with its six
 * decimals), the open and close the first and last trades taken, the volume and trade count
 * exact, the VWAP the double sum of {@code price * size} over the volume, summed in the order
 * taken. {@code ts} is the minute's start (epoch ms); each row's timestamp is the minute's last
 * millisecond, as an event-time window's.
 *
 * <p>The open bars are keyed state (a map from minute start to that minute's bars), written back
 * after every trade, so any state backend holds them and a checkpoint has them.
 *
 * <p>Bundled, it runs in {@link Marked}, which also sends one checkpoint marker per bucket, {@code
 * (bucket, null)}, ahead of each checkpoint's barrier and when the input ends: the Python operator
 * keeps its symbols' states live and writes those changed since the last marker to Flink state
 * when it reads one, so each checkpoint has them.
 */
public class MinuteBars
        extends KeyedProcessFunction<Integer, Tuple5<Integer, Long, String, Long, Long>, Row> {

    private static final long serialVersionUID = 1L;
    private static final long SCALE = 1_000_000L;
    private static final long MINUTE_MS = ParseTrades.MINUTE_MS;

    /** One symbol's bar so far: prices as unscaled longs (six decimals). */
    public static final class Bar {
        public long open;
        public long high;
        public long low;
        public long close;
        public long volume;
        public long trades;
        public double notional;
    }

    /** A minute's bars of one bucket, by symbol, in the order of their first trades. */
    public static final class Bars {
        public LinkedHashMap<String, Bar> bars = new LinkedHashMap<>();
    }

    /** The type of the bundled rows. */
    public static final TypeInformation<Row> BUNDLE_TYPE =
            Types.ROW_NAMED(new String[] {"bucket", "lines"}, Types.INT, Types.STRING);

    private final boolean bundled;
    private transient MapState<Long, Bars> open;

    public MinuteBars(boolean bundled) {
        this.bundled = bundled;
    }

    @Override
    public void open(OpenContext context) {
        open =
                getRuntimeContext()
                        .getMapState(
                                new MapStateDescriptor<>(
                                        "open-bars",
                                        Types.LONG,
                                        TypeInformation.of(new TypeHint<Bars>() {})));
    }

    @Override
    public void processElement(
            Tuple5<Integer, Long, String, Long, Long> trade, Context ctx, Collector<Row> out)
            throws Exception {
        long minute = trade.f1;
        long price = trade.f3;
        long size = trade.f4;
        Bars bars = open.get(minute);
        if (bars == null) {
            bars = new Bars();
            ctx.timerService().registerEventTimeTimer(minute + MINUTE_MS - 1);
        }
        Bar bar = bars.bars.get(trade.f2);
        if (bar == null) {
            bar = new Bar();
            bar.open = price;
            bar.high = price;
            bar.low = price;
            bars.bars.put(trade.f2, bar);
        } else if (price > bar.high) {
            bar.high = price;
        } else if (price < bar.low) {
            bar.low = price;
        }
        bar.close = price;
        bar.volume += size;
        bar.trades += 1;
        bar.notional += ((double) price / SCALE) * (double) size;
        open.put(minute, bars);
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
        long minute = timestamp - (MINUTE_MS - 1);
        Bars bars = open.get(minute);
        if (bars == null) {
            return;
        }
        open.remove(minute);
        if (bundled) {
            out.collect(Row.of(ctx.getCurrentKey(), lines(minute, bars)));
            return;
        }
        for (Map.Entry<String, Bar> entry : bars.bars.entrySet()) {
            Bar bar = entry.getValue();
            out.collect(
                    Row.of(
                            "bar",
                            entry.getKey(),
                            minute,
                            price(new StringBuilder(24), bar.open).toString(),
                            price(new StringBuilder(24), bar.high).toString(),
                            price(new StringBuilder(24), bar.low).toString(),
                            price(new StringBuilder(24), bar.close).toString(),
                            bar.volume,
                            bar.notional / (double) bar.volume,
                            bar.trades,
                            MINUTE_MS,
                            null));
        }
    }

    /** A minute's bundle: one tab-separated line per bar. */
    static String lines(long minute, Bars bars) {
        StringBuilder out = new StringBuilder(bars.bars.size() * 96);
        String start = Long.toString(minute);
        for (Map.Entry<String, Bar> entry : bars.bars.entrySet()) {
            Bar bar = entry.getValue();
            if (out.length() > 0) {
                out.append('\n');
            }
            out.append(entry.getKey()).append('\t').append(start).append('\t');
            price(out, bar.open).append('\t');
            price(out, bar.high).append('\t');
            price(out, bar.low).append('\t');
            price(out, bar.close).append('\t');
            out.append(bar.volume).append('\t');
            out.append(bar.notional / (double) bar.volume).append('\t');
            out.append(bar.trades);
        }
        return out.toString();
    }

    /** The operator to run: {@link Marked} with {@code buckets} buckets when bundled. */
    public static OneInputStreamOperator<Tuple5<Integer, Long, String, Long, Long>, Row> operator(
            boolean bundled, int buckets) {
        MinuteBars bars = new MinuteBars(bundled);
        return bundled ? new Marked(bars, buckets) : new KeyedProcessOperator<>(bars);
    }

    /**
     * The bundled bars' operator: before each checkpoint's barrier leaves it (and once more when its
     * input ends, before the final checkpoint), one marker row {@code (bucket, null)} per bucket
     * goes out, so every bucket's Python operator reads one ahead of the barrier (a bundle always
     * has lines: a null is never a bundle). That holds for aligned checkpoints, Flink's default,
     * which the job sets: an unaligned barrier could overtake the markers.
     */
    public static final class Marked
            extends KeyedProcessOperator<Integer, Tuple5<Integer, Long, String, Long, Long>, Row> {

        private static final long serialVersionUID = 1L;
        private final int buckets;

        Marked(MinuteBars bars, int buckets) {
            super(bars);
            this.buckets = Math.max(buckets, 1);
        }

        @Override
        public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
            super.prepareSnapshotPreBarrier(checkpointId);
            mark();
        }

        @Override
        public void finish() throws Exception {
            super.finish();
            mark();
        }

        private void mark() {
            for (int bucket = 0; bucket < buckets; bucket++) {
                output.collect(new StreamRecord<>(Row.of(bucket, null)));
            }
        }
    }

    /** {@code unscaled} / 10^6 with its six decimals (a price is positive). */
    static StringBuilder price(StringBuilder out, long unscaled) {
        out.append(unscaled / SCALE).append('.');
        return out.append(Long.toString(SCALE + unscaled % SCALE), 1, 7); // "1dddddd" less its 1
    }
}
