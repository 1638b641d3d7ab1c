package io.flinktrade.udf;

import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * The one-minute bars of every symbol of a bucket, as the bundle the Python operator reads: one
 * line per symbol, in the order of the symbols' first trades, each {@code symbol, ts, open, high,
 * low, close, volume, vwap, trades} separated by tabs, the lines by newlines.
 *
 * <p>It is the job's {@code bars} window and its bundle window in one aggregate (grouped by
 * minute and bucket): a minute's bundle leaves as soon as the watermark passes the minute,
 * without each bar first leaving a window of its own and being gathered by a second one. The
 * values are those of that SQL: prices exact (a {@code DECIMAL(18, 6)} as its unscaled long,
 * written with its six decimals as {@code CAST(... AS STRING)} writes them), the open and close
 * the first and last trades taken, the volume and trade count exact, and the VWAP the double sum
 * of {@code CAST(price AS DOUBLE) * size} over the volume, summed in the order taken.
 *
 * <p>{@code ts} is the minute's start (epoch ms), the same for every line. A row with a null
 * argument is skipped (the job passes only valid trades).
 */
@FunctionHint(
        input = {
            @DataTypeHint("STRING"),
            @DataTypeHint(value = "DECIMAL(18, 6)", bridgedTo = DecimalData.class),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("BIGINT")
        },
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = BarBundle.Bars.class),
        output = @DataTypeHint("STRING"))
public class BarBundle extends AggregateFunction<String, BarBundle.Bars> {

    private static final long SCALE = 1_000_000L;

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
        public long start;
        public LinkedHashMap<String, Bar> bars = new LinkedHashMap<>();
    }

    @Override
    public Bars createAccumulator() {
        return new Bars();
    }

    public void accumulate(Bars acc, String symbol, DecimalData price, Long size, Long start) {
        if (symbol == null || price == null || size == null || start == null) {
            return;
        }
        long unscaled = price.toUnscaledLong();
        acc.start = start;
        Bar bar = acc.bars.get(symbol);
        if (bar == null) {
            bar = new Bar();
            bar.open = unscaled;
            bar.high = unscaled;
            bar.low = unscaled;
            acc.bars.put(symbol, bar);
        } else if (unscaled > bar.high) {
            bar.high = unscaled;
        } else if (unscaled < bar.low) {
            bar.low = unscaled;
        }
        bar.close = unscaled;
        bar.volume += size;
        bar.trades += 1;
        bar.notional += ((double) unscaled / SCALE) * (double) size;
    }

    @Override
    public String getValue(Bars acc) {
        StringBuilder out = new StringBuilder(acc.bars.size() * 96);
        String start = Long.toString(acc.start);
        for (Map.Entry<String, Bar> entry : acc.bars.entrySet()) {
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

    /** {@code unscaled} / 10^6 with its six decimals (a price is positive). */
    static StringBuilder price(StringBuilder out, long unscaled) {
        out.append(unscaled / SCALE).append('.');
        return out.append(Long.toString(SCALE + unscaled % SCALE), 1, 7); // "1dddddd" less its 1
    }
}
