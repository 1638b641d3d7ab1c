package io.flinktrade.udf;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * A row with its key in front, {@code (key, row)}, which is what PyFlink's {@code key_by} makes in
 * a Python function ahead of a keyed Python operator (its {@code KeyByKeySelector} then keys by
 * field 0): the same rows without a crossing into Python and back for each one. The key is the
 * row's field {@code index}. The job keys its bars by symbol with it ({@code job.keyed_in_java}).
 */
public class KeyedRows implements MapFunction<Row, Row> {

    private static final long serialVersionUID = 1L;

    private final int index;

    public KeyedRows(int index) {
        this.index = index;
    }

    @Override
    public Row map(Row row) {
        return Row.of(row.getField(index), row);
    }
}
