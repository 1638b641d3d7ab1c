package io.flinktrade.udf;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * The bar bucket of a symbol: {@code floorMod(symbol.hashCode(), buckets)}, 0 for a null symbol
 * or a bucket count below 1. Java's {@code String.hashCode} is specified, so a symbol keeps its
 * bucket across runs, restarts and restores (the bucketed analytics state depends on it).
 */
public class Bucket extends ScalarFunction {
    public Integer eval(String symbol, Integer buckets) {
        if (symbol == null || buckets == null || buckets < 1) {
            return 0;
        }
        return Math.floorMod(symbol.hashCode(), buckets);
    }
}
