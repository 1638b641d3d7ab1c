package io.flinktrade.udf;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * A dead letter's {@code payload} and {@code payload_bytes}, bounded like flinktrade's Python
 * {@code DeadLetter.of}: at most the first {@link #MAX_BYTES} bytes of the record, invalid UTF-8
 * replaced, the text cut (at a character boundary) to at most {@link #MAX_BYTES} bytes of UTF-8;
 * the record's size only when it was cut.
 */
public final class DeadPayload {

    /** {@code events.MAX_DEAD_PAYLOAD_BYTES}. */
    public static final int MAX_BYTES = 64 * 1024;

    private DeadPayload() {}

    /** The record's bytes as a dead letter's text ("" for none). */
    public static String text(byte[] value) {
        if (value == null) {
            return "";
        }
        int n = Math.min(value.length, MAX_BYTES);
        return cut(decode(ByteBuffer.wrap(value, 0, n)), MAX_BYTES);
    }

    /** The record's size in bytes when {@link #text} cut it, else null. */
    public static Long size(byte[] value) {
        if (value == null || value.length <= MAX_BYTES) {
            return null;
        }
        return (long) value.length;
    }

    private static String decode(ByteBuffer bytes) {
        CharsetDecoder decoder =
                StandardCharsets.UTF_8
                        .newDecoder()
                        .onMalformedInput(CodingErrorAction.REPLACE)
                        .onUnmappableCharacter(CodingErrorAction.REPLACE);
        try {
            CharBuffer chars = decoder.decode(bytes);
            return chars.toString();
        } catch (CharacterCodingException e) { // not thrown with REPLACE
            return "";
        }
    }

    /** {@code text} cut to at most {@code maxBytes} of UTF-8, never inside a character. */
    static String cut(String text, int maxBytes) {
        if (text.length() * 3L <= maxBytes) {
            return text;
        }
        int bytes = 0;
        int i = 0;
        while (i < text.length()) {
            int cp = text.codePointAt(i);
            int size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (Character.isSurrogate((char) cp)) {
                size = 3; // a lone surrogate is written as '?' or U+FFFD; count it generously
            }
            if (bytes + size > maxBytes) {
                break;
            }
            bytes += size;
            i += Character.charCount(cp);
        }
        return text.substring(0, i);
    }
}
