package io.flinktrade.udf;

import java.util.HashSet;
import java.util.Set;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.flink.types.Row;

/**
 * The job's outputs ({@code operator.OUTPUT_ROW_TYPE} rows: {@code (topic, k, payload, ts)},
 * already encoded by the Python operator or by {@link OutputLots}) as Kafka records for a
 * DataStream {@code KafkaSink}: the row's topic, key (null for none), value and timestamp, the
 * partition left to the producer's partitioner (the key's hash, as the SQL sink did).
 *
 * <p>This replaced a SQL table sink fed through {@code fromDataStream}: each row became an
 * internal row, a projection converted its timestamp, and the table's formats copied key and
 * value out again. A topic the job was not built with fails the job, as the SQL sink's topic list
 * did: it is a bug, not a bad record.
 */
public class OutputRecords implements KafkaRecordSerializationSchema<Row> {

    private static final long serialVersionUID = 1L;

    private final HashSet<String> topics;

    public OutputRecords(Set<String> topics) {
        this.topics = new HashSet<>(topics);
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Row row, KafkaSinkContext context, Long timestamp) {
        String topic = (String) row.getField(0);
        if (!topics.contains(topic)) {
            throw new IllegalArgumentException("an output row names topic " + topic
                    + ", not one of the job's output topics " + topics);
        }
        Long ts = (Long) row.getField(3);
        return new ProducerRecord<>(topic, null, ts, (byte[]) row.getField(1), (byte[]) row.getField(2));
    }
}
