package io.flinktrade.udf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonEncoding;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonGenerator;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.json.JsonWriteFeature;

/**
 * Events the job writes from Java, as JSON bytes the way flinktrade's Python {@code events.encode}
 * writes them: the model's fields in its order, fields without a value left out, text as UTF-8
 * (Jackson's generator, which Flink ships shaded, does the escaping: the same bytes as Python's
 * for every text, {@code test_java_outputs.py}).
 */
final class JsonEvents {

    /** Control characters escaped with lower-case hex digits ({@code \\u001f}) and characters
     * outside the BMP written as their four bytes of UTF-8 (not as two escaped surrogates), as
     * Python's. */
    private static final JsonFactory FACTORY =
            JsonFactory.builder()
                    .disable(JsonWriteFeature.WRITE_HEX_UPPER_CASE)
                    .enable(JsonWriteFeature.COMBINE_UNICODE_SURROGATES_IN_UTF8)
                    .build();

    private JsonEvents() {}

    /** What an event's fields are written with. */
    interface Fields {
        void write(JsonGenerator json) throws IOException;
    }

    static byte[] encode(Fields fields) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(256);
        try (JsonGenerator json = FACTORY.createGenerator(out, JsonEncoding.UTF8)) {
            json.writeStartObject();
            fields.write(json);
            json.writeEndObject();
        } catch (IOException e) { // not thrown into a byte array
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** {@code text} cut like {@code events.DeadLetter.reason}: over {@code max} characters, its
     * first {@code max - 3} and "...". */
    static String cutChars(String text, int max) {
        if (text.codePointCount(0, text.length()) <= max) {
            return text;
        }
        return text.substring(0, text.offsetByCodePoints(0, max - 3)) + "...";
    }
}
