package io.flinktrade.udf;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.api.java.typeutils.TupleTypeInfo;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.util.Collector;

/**
 * The trades topic's records as {@link ParseTrades} takes them, straight from the Kafka source's
 * reader: {@code (value, partition, offset, record timestamp)}, the value's bytes as the consumer
 * read them (null for a record without one). No copy and no row conversion: the job's Kafka
 * table, which this replaced, turned each record into an internal row, appended its metadata and
 * evaluated the watermark expression on it (~0.4 us a trade of the source task's ~2.3,
 * docs/benchmarks.md, session 24).
 */
public class TradeRecords implements KafkaRecordDeserializationSchema<Tuple4<byte[], Integer, Long, Long>> {

    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Tuple4<byte[], Integer, Long, Long>> TYPE =
            new TupleTypeInfo<>(Types.PRIMITIVE_ARRAY(Types.BYTE), Types.INT, Types.LONG, Types.LONG);

    @Override
    public void deserialize(
            ConsumerRecord<byte[], byte[]> record, Collector<Tuple4<byte[], Integer, Long, Long>> out) {
        out.collect(Tuple4.of(record.value(), record.partition(), record.offset(), record.timestamp()));
    }

    @Override
    public TypeInformation<Tuple4<byte[], Integer, Long, Long>> getProducedType() {
        return TYPE;
    }
}
