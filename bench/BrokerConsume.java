// The broker's own consume rate: a plain Java KafkaConsumer reading N records from the earliest
// offset with default settings and doing nothing with them. Run with `java -cp <kafka jars>
// bench/BrokerConsume.java <servers> <topic> <n>`; prints one JSON line.
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;

public class BrokerConsume {
    public static void main(String[] args) {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("group.id", "bench-broker-" + System.nanoTime());
        p.put("auto.offset.reset", "earliest");
        p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        long n = Long.parseLong(args[2]);
        long seen = 0, bytes = 0, first = 0;
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(args[1]));
            while (seen < n) {
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(500));
                if (!recs.isEmpty() && first == 0) first = System.currentTimeMillis();
                for (var r : recs) { seen++; bytes += r.serializedValueSize(); }
            }
        }
        long last = System.currentTimeMillis();
        System.out.printf("{\"records\":%d,\"bytes\":%d,\"first_ms\":%d,\"last_ms\":%d}%n", seen, bytes, first, last);
    }
}
