package org.edgevljepa;

import java.nio.charset.StandardCharsets;

/**
 * A failure reported by the native core (include/edge_vljepa.h): its status code, the status's name
 * ({@code "EVJ_ERR_ARTIFACT"}, ...) and the core's one-line message, unchanged. Thrown by every
 * {@link NativeSession} method whose C call did not return {@code EVJ_OK}.
 */
public class NativeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The evj_status values of edge_vljepa.h. */
    public static final int INVALID_ARGUMENT = 1;
    public static final int ARTIFACT = 2;
    public static final int VERSION = 3;
    public static final int CONTRACT = 4;
    public static final int TEXT = 5;
    public static final int BACKEND = 6;
    public static final int STATE = 7;
    public static final int CLOSED = 8;
    public static final int IO = 9;
    public static final int SELF_TEST = 10;
    public static final int INTERNAL = 11;

    private final int status;
    private final String statusName;
    private final String coreMessage;
    private final String detailJson;

    public NativeException(int status, String statusName, String coreMessage, String detailJson) {
        super(statusName + ": " + coreMessage);
        this.status = status;
        this.statusName = statusName;
        this.coreMessage = coreMessage;
        this.detailJson = detailJson;
    }

    /** Called by the JNI bridge: the strings arrive as UTF-8 bytes (JNI's NewStringUTF is modified UTF-8). */
    static NativeException fromNative(int status, byte[] statusName, byte[] message, byte[] detailJson) {
        return new NativeException(status, utf8(statusName), utf8(message), detailJson == null ? null : utf8(detailJson));
    }

    private static String utf8(byte[] bytes) {
        return bytes == null ? "" : new String(bytes, StandardCharsets.UTF_8);
    }

    /** The evj_status code (1..11). */
    public int status() {
        return status;
    }

    /** The status's name as the core spells it, e.g. {@code "EVJ_ERR_ARTIFACT"}. */
    public String statusName() {
        return statusName;
    }

    /** The core's one-line message (evj_last_error()), without the status name. */
    public String coreMessage() {
        return coreMessage;
    }

    /** For EVJ_ERR_SELF_TEST: the self-test report JSON ({"passed", "methods": {...}}); otherwise null. */
    public String detailJson() {
        return detailJson;
    }
}
