package io.flinktrade.udf;

import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple5;

/** {@link MinuteBars}' key: a trade's bar bucket (the first field {@link ParseTrades} gives it). */
public class TradeBucket implements KeySelector<Tuple5<Integer, Long, String, Long, Long>, Integer> {

    private static final long serialVersionUID = 1L;

    @Override
    public Integer getKey(Tuple5<Integer, Long, String, Long, Long> trade) {
        return trade.f0;
    }
}
