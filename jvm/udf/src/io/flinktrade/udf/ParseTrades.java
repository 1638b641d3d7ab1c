package io.flinktrade.udf;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.api.java.tuple.Tuple5;
import org.apache.flink.api.java.typeutils.TupleTypeInfo;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * The job's trade path up to the bars, one record at a time, in the source's task: parse and
 * validate ({@link TradeParser}), the late check against the watermark, the bar bucket, and the
 * per-trade {@code large_trade} alert.
 *
 * <p>Input: a {@code market.trades} record as {@link TradeRecords} reads it ({@code (value,
 * partition, offset, record timestamp)}; the timestamp is the trade's event time). Output: each valid, on-time
 * trade as {@code (bucket, minute start, symbol, price as a DECIMAL(18, 6)'s unscaled long,
 * size)} for {@link MinuteBars}. Every other record leaves through {@link #DEAD} with a reason and
 * its bytes: invalid ones, and valid ones whose minute has already closed (the watermark has passed
 * the minute's end, so its bars have left: such a trade never silently disappears). A valid,
 * on-time trade of at least {@code largeTradeSize} shares (0: none) also leaves through {@link
 * #LARGE}.
 *
 * <p>The bucket is {@code floorMod(symbol.hashCode(), buckets)}: Java's {@code String.hashCode}
 * is specified, so a symbol keeps its bucket across runs, restarts and restores (the bucketed
 * analytics state depends on it; Python's {@code operator.java_bucket} computes the same).
 */
public class ParseTrades
        extends ProcessFunction<Tuple4<byte[], Integer, Long, Long>, Tuple5<Integer, Long, String, Long, Long>> {

    private static final long serialVersionUID = 1L;

    /** A minute of event time, the bars' interval. */
    public static final long MINUTE_MS = 60_000L;

    /** What {@link #DEAD} carries: a dead letter's fields before the sink bounds them. */
    public static final TypeInformation<Row> DEAD_TYPE =
            Types.ROW_NAMED(
                    new String[] {"ts", "partition", "offset", "reason", "payload"},
                    Types.LONG,
                    Types.INT,
                    Types.LONG,
                    Types.STRING,
                    Types.PRIMITIVE_ARRAY(Types.BYTE));

    /** What {@link #LARGE} carries: a large trade (its price with six decimals, as text). */
    public static final TypeInformation<Row> LARGE_TYPE =
            Types.ROW_NAMED(
                    new String[] {"ts", "trade_id", "symbol", "price", "size"},
                    Types.LONG,
                    Types.STRING,
                    Types.STRING,
                    Types.STRING,
                    Types.LONG);

    /** The trades of {@link MinuteBars}' input. */
    public static final TypeInformation<Tuple5<Integer, Long, String, Long, Long>> TRADE_TYPE =
            new TupleTypeInfo<>(Types.INT, Types.LONG, Types.STRING, Types.LONG, Types.LONG);

    public static final OutputTag<Row> DEAD = new OutputTag<>("trade-dead-letters", DEAD_TYPE);
    public static final OutputTag<Row> LARGE = new OutputTag<>("large-trades", LARGE_TYPE);

    private final int buckets;
    private final long largeTradeSize;
    private transient TradeParser parser;
    private transient Tuple5<Integer, Long, String, Long, Long> out;

    public ParseTrades(int buckets, long largeTradeSize) {
        this.buckets = Math.max(1, buckets);
        this.largeTradeSize = largeTradeSize;
    }

    /** The bar bucket of {@code symbol} among {@code buckets} (0 for a count below 1). */
    public static int bucket(String symbol, int buckets) {
        return buckets < 1 ? 0 : Math.floorMod(symbol.hashCode(), buckets);
    }

    @Override
    public void processElement(
            Tuple4<byte[], Integer, Long, Long> record,
            Context ctx,
            Collector<Tuple5<Integer, Long, String, Long, Long>> trades) {
        if (parser == null) {
            parser = new TradeParser();
            out = new Tuple5<>();
        }
        byte[] value = record.f0;
        Long recordTs = record.f3;
        if (!parser.parse(value, recordTs)) {
            dead(ctx, record, recordTs, parser.reason, value);
            return;
        }
        long minute = parser.ts - Math.floorMod(parser.ts, MINUTE_MS);
        long watermark = ctx.timerService().currentWatermark();
        if (watermark != Long.MIN_VALUE && minute + MINUTE_MS - 1 <= watermark) {
            dead(ctx, record, recordTs,
                    "late: the minute of event time " + parser.ts + " had closed (watermark "
                            + watermark + ")",
                    value);
            return;
        }
        long price = parser.unscaledPrice;
        if (largeTradeSize > 0 && parser.size >= largeTradeSize) {
            StringBuilder text = MinuteBars.price(new StringBuilder(24), price);
            ctx.output(LARGE, Row.of(parser.ts, parser.id(), parser.symbol, text.toString(), parser.size));
        }
        out.f0 = bucket(parser.symbol, buckets);
        out.f1 = minute;
        out.f2 = parser.symbol;
        out.f3 = price;
        out.f4 = parser.size;
        trades.collect(out);
    }

    private static void dead(
            Context ctx, Tuple4<byte[], Integer, Long, Long> record, Long ts, String reason, byte[] value) {
        ctx.output(DEAD, Row.of(ts, record.f1, record.f2, reason, value));
    }
}
