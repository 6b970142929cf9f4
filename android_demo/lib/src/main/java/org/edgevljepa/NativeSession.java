package org.edgevljepa;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * One edge-vljepa native session: an exported ExecuTorch artifact plus its settings and the state of
 * one stream, over the C API of runtimes/native/include/edge_vljepa.h through a plain JNI bridge
 * (lib/src/main/cpp/edge_vljepa_jni.c). No android.* import: the same class runs in a host JVM
 * (android_demo/host) and on a phone.
 *
 * <p>Threads, as in the C API: one engine thread owns the session (open, settings, processFrame,
 * processPending, finish, selfTest, close); a camera thread may call {@link #pushFrame} and
 * {@link #droppedFrames} concurrently. A pushed frame is copied into the core's keep-newest slot and the
 * call returns at once; a frame replaced before the engine thread processed it is counted as dropped.
 *
 * <p>Errors: every failing core call throws {@link NativeException} carrying the core's status name and
 * its one-line message. Java-side misuse (a null argument, an offset outside an array, a heap buffer where
 * a direct one is needed) throws the usual NullPointerException / IndexOutOfBoundsException /
 * IllegalArgumentException before the core is called. After {@link #close()} every call reaches the core
 * with the closed handle and throws NativeException with status {@code EVJ_ERR_CLOSED} (the core keeps
 * closed handles known, so this never touches freed memory); close itself is idempotent.
 *
 * <p>Strings cross the bridge as UTF-8 byte arrays (JNI's own string functions use modified UTF-8,
 * which differs for characters outside the BMP and for NUL).
 */
public final class NativeSession implements AutoCloseable {

    /** Pixel formats (evj_pixel_format). */
    public static final int FORMAT_RGB = 0;
    public static final int FORMAT_RGBA = 1;
    public static final int FORMAT_BGR = 2;
    public static final int FORMAT_BGRA = 3;
    public static final int FORMAT_NV21 = 4;
    public static final int FORMAT_YUV_420_888 = 5;

    /** The JNI library's name for System.loadLibrary (libedge_vljepa_jni.so). */
    public static final String LIBRARY_NAME = "edge_vljepa_jni";

    /** Receives each event line (one JSON object, the keys of edge_vljepa/streaming/events.py). */
    public interface EventListener {
        /** Called on the engine thread, inside processFrame / processPending / finish. */
        void onEvent(String jsonLine);
    }

    private static volatile boolean loaded;

    /** The core's evj_session handle; stays the same after close (the core answers EVJ_ERR_CLOSED). */
    private final long handle;
    private final Object lifeLock = new Object();
    /** The bridge's listener record (a global reference to this object); 0 when events are queued. */
    private long listenerBridge;
    private volatile EventListener listener;
    private boolean closed;

    private NativeSession(long handle) {
        this.handle = handle;
    }

    // ---- library ------------------------------------------------------------------------------------

    /** Load the JNI library from an absolute path (host JVM, tests); afterwards no loadLibrary is tried. */
    public static synchronized void loadLibrary(String absolutePath) {
        System.load(absolutePath);
        loaded = true;
    }

    private static void ensureLoaded() {
        if (loaded) {
            return;
        }
        synchronized (NativeSession.class) {
            if (!loaded) {
                System.loadLibrary(LIBRARY_NAME);
                loaded = true;
            }
        }
    }

    /** The native core's version (evj_version). */
    public static String version() {
        ensureLoaded();
        return nativeVersion();
    }

    /** The ExecuTorch version the core was built against; artifacts from another version are refused. */
    public static String executorchVersion() {
        ensureLoaded();
        return nativeExecutorchVersion();
    }

    // ---- session ------------------------------------------------------------------------------------

    /** Open an artifact directory (manifest.json + .pte files); see evj_open for the checks, in order. */
    public static NativeSession open(String artifactDir) {
        return open(artifactDir, null);
    }

    /**
     * Open an artifact directory, refusing it unless its contract hash equals {@code expectedContractHash}
     * (null: any contract whose stored hash is consistent).
     */
    public static NativeSession open(String artifactDir, String expectedContractHash) {
        if (artifactDir == null) {
            throw new NullPointerException("artifactDir");
        }
        ensureLoaded();
        return new NativeSession(nativeOpen(cString(artifactDir), expectedContractHash == null ? null : cString(expectedContractHash)));
    }

    /**
     * Close the session and free what it owns (idempotent). Waits for a call in progress on another thread
     * to return; a thread blocked in processPending is woken.
     */
    @Override
    public void close() {
        synchronized (lifeLock) {
            if (closed) {
                return;
            }
            closed = true;
            long bridge = listenerBridge;
            listenerBridge = 0;
            listener = null;
            nativeClose(handle, bridge);
        }
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        synchronized (lifeLock) {
            return closed;
        }
    }

    /** What was opened and the effective settings, as JSON (evj_info_json). */
    public String info() {
        return string(nativeInfo(handle));
    }

    // ---- settings (before the first frame of a stream or after finish) -----------------------------

    /** The predictor's text query. */
    public void setQuery(String query) {
        nativeSetQuery(handle, cString(requireNonNull(query, "query")));
    }

    /** Custom labels, embedded on the device by the y_encoder; an empty list restores the artifact's bank. */
    public void setLabels(List<String> labels) {
        setLabels(requireNonNull(labels, "labels").toArray(new String[0]));
    }

    /** Custom labels; an empty array restores the artifact's label bank. */
    public void setLabels(String[] labels) {
        requireNonNull(labels, "labels");
        byte[][] bytes = new byte[labels.length][];
        for (int i = 0; i < labels.length; i++) {
            bytes[i] = cString(requireNonNull(labels[i], "labels[" + i + "]"));
        }
        nativeSetLabels(handle, bytes);
    }

    /** Labels reported per window (>= 1). */
    public void setTopK(int topK) {
        nativeSetTopK(handle, topK);
    }

    /**
     * The decode policy ("uniform", "online", "offline_segments"; null = the artifact's default) and its
     * parameters as a JSON object (e.g. {@code {"threshold": 0.1}}; null or "{}" = defaults).
     */
    public void setPolicy(String name, String paramsJson) {
        nativeSetPolicy(handle, name == null ? null : cString(name), paramsJson == null ? null : cString(paramsJson));
    }

    /** Model frames between window starts (>= 1). */
    public void setStride(int stride) {
        nativeSetStride(handle, stride);
    }

    /** Threads of ExecuTorch's CPU thread pool (process-wide; 0 = the runtime's default). */
    public void setThreads(int threads) {
        nativeSetThreads(handle, threads);
    }

    // ---- events -------------------------------------------------------------------------------------

    /**
     * Deliver events to {@code listener} on the engine thread (null: queue them for {@link #nextEvent()}).
     * An exception thrown by the listener ends the native call with that exception; the events after it
     * within the same call are not delivered.
     */
    public void setEventListener(EventListener listener) {
        synchronized (lifeLock) {
            listenerBridge = nativeSetEventListener(handle, listenerBridge, listener == null ? null : this);
            this.listener = listener;
        }
    }

    /** Called by the bridge for each event (the line as UTF-8 bytes). */
    private void dispatchEvent(byte[] jsonLine) {
        EventListener l = listener;
        if (l != null) {
            l.onEvent(new String(jsonLine, StandardCharsets.UTF_8));
        }
    }

    /** The oldest queued event line, or null when none is queued (only without a listener). */
    public String nextEvent() {
        byte[] line = nativeNextEvent(handle);
        return line == null ? null : string(line);
    }

    // ---- frames: synchronous (files, tests) ------------------------------------------------------------

    /** Run the loop on one tightly packed frame now (RGB, RGBA, BGR, BGRA or NV21 in {@code data}). */
    public void processFrame(int format, byte[] data, int width, int height, double timestampS) {
        processFrame(format, data, 0, requireNonNull(data, "data").length, width, height, 0, timestampS);
    }

    /**
     * Run the loop on one frame held in {@code data[offset, offset + length)} with {@code rowStride} bytes
     * per row (0: tightly packed). NV21: the Y rows followed by the interleaved V,U rows, same row stride.
     */
    public void processFrame(int format, byte[] data, int offset, int length, int width, int height, int rowStride, double timestampS) {
        checkRange(data, offset, length);
        nativeArrayFrame(handle, false, format, data, offset, length, width, height, rowStride, timestampS);
    }

    /** Run the loop on a packed or NV21 frame in a direct buffer (from its position, remaining bytes). */
    public void processFrame(int format, ByteBuffer direct, int width, int height, int rowStride, double timestampS) {
        bufferFrame(false, format, direct, width, height, rowStride, timestampS);
    }

    /**
     * Run the loop on an Android YUV_420_888 image given as its three plane buffers (direct, e.g.
     * ImageProxy.getPlanes()[i].getBuffer()) with their row and pixel strides. No pixel is copied in Java.
     */
    public void processYuv420888(ByteBuffer y, ByteBuffer u, ByteBuffer v, int yRowStride, int uvRowStride, int uvPixelStride,
                                 int width, int height, double timestampS) {
        yuvFrame(false, y, u, v, yRowStride, uvRowStride, uvPixelStride, width, height, timestampS);
    }

    // ---- frames: live (camera thread pushes, engine thread processes) -------------------------------

    /** Copy a frame in a byte array into the keep-newest slot (any thread); see processFrame for the layout. */
    public void pushFrame(int format, byte[] data, int offset, int length, int width, int height, int rowStride, double timestampS) {
        checkRange(data, offset, length);
        nativeArrayFrame(handle, true, format, data, offset, length, width, height, rowStride, timestampS);
    }

    /** Copy a tightly packed frame into the keep-newest slot (any thread). */
    public void pushFrame(int format, byte[] data, int width, int height, double timestampS) {
        pushFrame(format, data, 0, requireNonNull(data, "data").length, width, height, 0, timestampS);
    }

    /** Copy a packed or NV21 frame in a direct buffer into the keep-newest slot (any thread). */
    public void pushFrame(int format, ByteBuffer direct, int width, int height, int rowStride, double timestampS) {
        bufferFrame(true, format, direct, width, height, rowStride, timestampS);
    }

    /** Copy a YUV_420_888 image's planes into the keep-newest slot (any thread, e.g. CameraX's analyzer). */
    public void pushYuv420888(ByteBuffer y, ByteBuffer u, ByteBuffer v, int yRowStride, int uvRowStride, int uvPixelStride,
                              int width, int height, double timestampS) {
        yuvFrame(true, y, u, v, yRowStride, uvRowStride, uvPixelStride, width, height, timestampS);
    }

    /**
     * Engine thread: wait up to {@code timeoutMs} (0: don't wait, negative: until a frame or close) for a
     * pushed frame and process it; true when one was processed.
     */
    public boolean processPending(int timeoutMs) {
        return nativeProcessPending(handle, timeoutMs);
    }

    /** Frames replaced in the keep-newest slot before they were processed, this stream (-1 once closed). */
    public long droppedFrames() {
        return nativeDroppedFrames(handle);
    }

    // ---- end of stream, summary, self-test ------------------------------------------------------------

    /** End the stream (offline policies decide now; the summary is computed). */
    public void finish() {
        finish(null);
    }

    /** End the stream, recording why the source broke (null: it did not). */
    public void finish(String sourceError) {
        nativeFinish(handle, sourceError == null ? null : cString(sourceError));
    }

    /** The summary of the last finished stream, formatted as Python's StreamSummary.format(). */
    public String summary() {
        return string(nativeSummary(handle, false));
    }

    /** The same summary as a JSON object (windows, decodes, stage_ms, peak_rss_mb, ...). */
    public String summaryJson() {
        return string(nativeSummary(handle, true));
    }

    /**
     * Run the artifact's golden inputs and compare with its golden outputs; returns the report JSON. A
     * failed comparison throws NativeException (EVJ_ERR_SELF_TEST) whose detailJson() is the report.
     */
    public String selfTest() {
        return string(nativeSelfTest(handle));
    }

    // ---- helpers ----------------------------------------------------------------------------------------

    private void bufferFrame(boolean push, int format, ByteBuffer direct, int width, int height, int rowStride, double t) {
        requireDirect(direct, "buffer");
        nativeBufferFrame(handle, push, format, width, height, t,
                direct, direct.position(), direct.remaining(), rowStride, 0,
                null, 0, 0, 0, 0,
                null, 0, 0, 0, 0);
    }

    private void yuvFrame(boolean push, ByteBuffer y, ByteBuffer u, ByteBuffer v, int yRowStride, int uvRowStride,
                          int uvPixelStride, int width, int height, double t) {
        requireDirect(y, "y");
        requireDirect(u, "u");
        requireDirect(v, "v");
        nativeBufferFrame(handle, push, FORMAT_YUV_420_888, width, height, t,
                y, y.position(), y.remaining(), yRowStride, 1,
                u, u.position(), u.remaining(), uvRowStride, uvPixelStride,
                v, v.position(), v.remaining(), uvRowStride, uvPixelStride);
    }

    private static void requireDirect(ByteBuffer b, String name) {
        requireNonNull(b, name);
        if (!b.isDirect()) {
            throw new IllegalArgumentException(name + ": a direct ByteBuffer is needed (the core reads it in place)");
        }
    }

    private static void checkRange(byte[] data, int offset, int length) {
        requireNonNull(data, "data");
        if (offset < 0 || length < 0 || offset > data.length - length) {
            throw new IndexOutOfBoundsException("offset " + offset + ", length " + length + " outside an array of " + data.length);
        }
    }

    private static <T> T requireNonNull(T value, String name) {
        if (value == null) {
            throw new NullPointerException(name);
        }
        return value;
    }

    /** UTF-8 bytes; the bridge adds the terminating NUL. An embedded NUL is refused (C strings end there). */
    private static byte[] cString(String s) {
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("a string passed to the native core cannot contain NUL");
        }
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String string(byte[] utf8) {
        return new String(utf8, StandardCharsets.UTF_8);
    }

    // ---- native methods (edge_vljepa_jni.c; one Java_org_edgevljepa_NativeSession_* symbol each) -----

    private static native String nativeVersion();

    private static native String nativeExecutorchVersion();

    private static native long nativeOpen(byte[] artifactDir, byte[] expectedContractHash);

    private static native void nativeClose(long handle, long listenerBridge);

    private static native long nativeSetEventListener(long handle, long oldBridge, NativeSession target);

    private static native byte[] nativeInfo(long handle);

    private static native void nativeSetQuery(long handle, byte[] query);

    private static native void nativeSetLabels(long handle, byte[][] labels);

    private static native void nativeSetTopK(long handle, int topK);

    private static native void nativeSetPolicy(long handle, byte[] name, byte[] paramsJson);

    private static native void nativeSetStride(long handle, int stride);

    private static native void nativeSetThreads(long handle, int threads);

    private static native byte[] nativeNextEvent(long handle);

    private static native void nativeArrayFrame(long handle, boolean push, int format, byte[] data, int offset, int length,
                                                int width, int height, int rowStride, double timestampS);

    private static native void nativeBufferFrame(long handle, boolean push, int format, int width, int height, double timestampS,
                                                 ByteBuffer b0, int offset0, int length0, int rowStride0, int pixelStride0,
                                                 ByteBuffer b1, int offset1, int length1, int rowStride1, int pixelStride1,
                                                 ByteBuffer b2, int offset2, int length2, int rowStride2, int pixelStride2);

    private static native boolean nativeProcessPending(long handle, int timeoutMs);

    private static native long nativeDroppedFrames(long handle);

    private static native void nativeFinish(long handle, byte[] sourceError);

    private static native byte[] nativeSummary(long handle, boolean json);

    private static native byte[] nativeSelfTest(long handle);
}
