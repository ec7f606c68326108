package ackcheck.streams;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * ackcheck's pipeline stage as a Kafka Streams application: reads the source topic, writes one
 * output per input to the sink topic, and lets Kafka Streams' processing guarantee decide what
 * a crash does to that.
 *
 * <p>Bodies are ackcheck's ({@code ackcheck <id> <from or ->}, a newline, padding). An input
 * {@code ackcheck p3-17 -} at source partition 2, offset 40 becomes {@code ackcheck ks-2-40
 * p3-17}: the output's id names the source record it was derived from, so reprocessing one
 * record after a crash writes the same id again (ackcheck's checker then sees one id at two
 * sink positions), while an input that was itself written twice yields two different ids.
 *
 * <p>Usage: {@code java -cp ackcheck-kafka-streams.jar:lib/* ackcheck.streams.Processor
 * FILE.properties}. The file holds Kafka Streams' own settings (passed through unchanged) and
 * three of ackcheck's: {@code ackcheck.source}, {@code ackcheck.sink} and {@code
 * ackcheck.stateful} (true: keep a count per key in a changelog-backed state store and append
 * it to each output, so that a restarted instance must restore the store).
 */
public final class Processor {
    static final String STORE = "counts-per-key";

    public static void main(String[] args) throws IOException, InterruptedException {
        if (args.length != 1) {
            System.err.println("usage: ackcheck.streams.Processor FILE.properties");
            System.exit(2);
        }
        Properties props = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            props.load(in);
        }
        String source = required(props, "ackcheck.source");
        String sink = required(props, "ackcheck.sink");
        boolean stateful = Boolean.parseBoolean((String) props.remove("ackcheck.stateful"));
        props.remove("ackcheck.source");
        props.remove("ackcheck.sink");

        StreamsBuilder builder = new StreamsBuilder();
        if (stateful) {
            builder.addStateStore(Stores.keyValueStoreBuilder(
                    Stores.persistentKeyValueStore(STORE), Serdes.ByteArray(), Serdes.Long()));
        }
        KStream<byte[], byte[]> in = builder.stream(source, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()));
        KStream<byte[], byte[]> out = stateful ? in.processValues(() -> new Derive(true), STORE)
                : in.processValues(() -> new Derive(false));
        out.to(sink, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        // ackcheck reads these lines from the instance's log: the state it reached, and when.
        streams.setStateListener((now, before) -> System.out.println("ackcheck-streams state " + before + " -> " + now));
        // A stream thread that dies is replaced, as a long-running application would do; the
        // error is in the log.
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("ackcheck-streams stream thread failed: " + e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        CountDownLatch closed = new CountDownLatch(1);
        // SIGTERM (ackcheck's clean stop at the end of a run) closes cleanly; SIGKILL (its crash
        // fault) does not run this.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            closed.countDown();
        }));
        System.out.println("ackcheck-streams starting: " + source + " -> " + sink + (stateful ? " (stateful)" : "")
                + ", processing.guarantee=" + props.getProperty(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, "at_least_once"));
        streams.start();
        closed.await();
    }

    private static String required(Properties props, String key) {
        String value = props.getProperty(key);
        if (value == null || value.isEmpty()) {
            System.err.println("the properties file has no " + key + "; ackcheck writes it, so rerun through ackcheck");
            System.exit(2);
        }
        return value;
    }

    /** One output per input: the same key, a body naming the input as {@code from}. */
    static final class Derive implements FixedKeyProcessor<byte[], byte[], byte[]> {
        private final boolean stateful;
        private FixedKeyProcessorContext<byte[], byte[]> context;
        private KeyValueStore<byte[], Long> counts;

        Derive(boolean stateful) {
            this.stateful = stateful;
        }

        @Override
        public void init(FixedKeyProcessorContext<byte[], byte[]> context) {
            this.context = context;
            if (stateful) {
                this.counts = context.getStateStore(STORE);
            }
        }

        @Override
        public void process(FixedKeyRecord<byte[], byte[]> record) {
            byte[] body = record.value();
            String upstream = idOf(body);
            if (upstream == null) {
                System.out.println("ackcheck-streams skipped a record that is not ackcheck's");
                return;
            }
            // ackcheck reads these lines when it kills this instance: what it had processed and
            // whose output was not yet seen downstream is what the crash held.
            System.out.println("ackcheck-streams processed " + upstream);
            RecordMetadata where = context.recordMetadata().orElseThrow();
            StringBuilder line = new StringBuilder("ackcheck ks-").append(where.partition()).append('-')
                    .append(where.offset()).append(' ').append(upstream);
            if (stateful && record.key() != null) {
                Long seen = counts.get(record.key());
                long count = (seen == null ? 0 : seen) + 1;
                counts.put(record.key(), count);
                line.append(" count=").append(count);
            }
            line.append('\n');
            byte[] head = line.toString().getBytes(StandardCharsets.UTF_8);
            byte[] out = head.length >= body.length ? head : Arrays.copyOf(head, body.length);
            Arrays.fill(out, head.length, out.length, (byte) '.');
            context.forward(record.withValue(out));
        }

        /** The id in an ackcheck body's first line, or null. */
        static String idOf(byte[] body) {
            if (body == null) {
                return null;
            }
            int end = 0;
            while (end < body.length && body[end] != '\n') {
                end++;
            }
            String[] parts = new String(body, 0, end, StandardCharsets.UTF_8).split(" ");
            return parts.length >= 3 && parts[0].equals("ackcheck") ? parts[1] : null;
        }
    }
}
