import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.edgevljepa.NativeException;
import org.edgevljepa.NativeSession;

/**
 * Host-side test program for org.edgevljepa.NativeSession and its JNI bridge (android_demo/host), driven by
 * tests/test_android_demo.py. Java has no video decoder here, so the frames come from Python/OpenCV as one
 * raw file (frames back to back) plus a text file of timestamps (one per line).
 *
 * <pre>
 *   java -cp CLASSES HostStreamTest stream --lib LIB --artifact DIR --frames RAW --times TXT --width W --height H
 *        --format rgb|nv21|yuv420888 [--push] [--query Q] [--policy P] [--params JSON] [--top-k K] --events OUT
 *   java -cp CLASSES HostStreamTest errors --lib LIB --artifact DIR --frames RAW --times TXT --width W --height H
 *        [--bad-golden DIR]
 * </pre>
 *
 * stream: runs the frames through one session (processFrame, or pushFrame + processPending with --push),
 * prints every event line as "event {json}" and writes them to --events, then the summary. The formats:
 * rgb and nv21 as byte[]; yuv420888 as three direct ByteBuffers made from the NV21 bytes the way Android
 * lays out a YUV_420_888 image whose chroma is interleaved (U and V views into one V,U block, pixel stride 2).
 *
 * errors: each wrong use must throw the expected exception; prints "ok CASE STATUS_NAME: message" per
 * case, "FAIL CASE ..." otherwise, and exits 1 if any case failed.
 */
public final class HostStreamTest {

    private HostStreamTest() {
    }

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            usage();
        }
        Map<String, String> a = parse(argv);
        NativeSession.loadLibrary(Paths.get(require(a, "--lib")).toAbsolutePath().toString());
        System.out.println("core " + NativeSession.version() + ", ExecuTorch " + NativeSession.executorchVersion());
        switch (argv[0]) {
            case "stream":
                stream(a);
                break;
            case "errors":
                System.exit(errors(a) ? 0 : 1);
                break;
            default:
                usage();
        }
    }

    private static void usage() {
        System.err.println("usage: HostStreamTest stream|errors --lib LIB --artifact DIR --frames RAW --times TXT --width W --height H ...");
        System.exit(2);
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> a = new HashMap<>();
        for (int i = 1; i < argv.length; i++) {
            if (argv[i].equals("--push")) {
                a.put("--push", "1");
            } else if (argv[i].startsWith("--") && i + 1 < argv.length) {
                a.put(argv[i], argv[++i]);
            } else {
                System.err.println("unexpected argument: " + argv[i]);
                usage();
            }
        }
        return a;
    }

    private static String require(Map<String, String> a, String key) {
        String v = a.get(key);
        if (v == null) {
            System.err.println("missing " + key);
            usage();
        }
        return v;
    }

    /** Frames of one raw file, read one at a time (a short video; the sizes come from the arguments). */
    private static final class Frames {
        final int width;
        final int height;
        final int frameBytes;
        final List<Double> times = new ArrayList<>();
        final Path raw;

        Frames(Map<String, String> a, int bytesPerFrame) throws IOException {
            width = Integer.parseInt(require(a, "--width"));
            height = Integer.parseInt(require(a, "--height"));
            frameBytes = bytesPerFrame;
            raw = Paths.get(require(a, "--frames"));
            for (String line : Files.readAllLines(Paths.get(require(a, "--times")), StandardCharsets.UTF_8)) {
                if (!line.isBlank()) {
                    times.add(Double.parseDouble(line.trim()));
                }
            }
            long expected = (long) frameBytes * times.size();
            if (Files.size(raw) != expected) {
                throw new IOException(raw + " holds " + Files.size(raw) + " bytes, expected " + expected + " (" + times.size()
                        + " frames of " + frameBytes + ")");
            }
        }

        InputStream open() throws IOException {
            return Files.newInputStream(raw);
        }
    }

    private static int bytesPerFrame(String format, int width, int height) {
        return format.equals("rgb") ? width * height * 3 : width * height * 3 / 2;
    }

    // ---- stream ---------------------------------------------------------------------------------------

    private static void stream(Map<String, String> a) throws IOException {
        String format = require(a, "--format");
        if (!format.equals("rgb") && !format.equals("nv21") && !format.equals("yuv420888")) {
            throw new IllegalArgumentException("--format must be rgb, nv21 or yuv420888");
        }
        int width = Integer.parseInt(require(a, "--width"));
        int height = Integer.parseInt(require(a, "--height"));
        Frames frames = new Frames(a, bytesPerFrame(format, width, height));
        boolean push = a.containsKey("--push");
        PrintStream out = System.out;
        List<String> events = new ArrayList<>();
        try (NativeSession session = NativeSession.open(require(a, "--artifact"));
             Writer eventsFile = Files.newBufferedWriter(Paths.get(require(a, "--events")), StandardCharsets.UTF_8)) {
            if (a.containsKey("--query")) {
                session.setQuery(a.get("--query"));
            }
            session.setTopK(Integer.parseInt(a.getOrDefault("--top-k", "3")));
            if (a.containsKey("--policy")) {
                session.setPolicy(a.get("--policy"), a.getOrDefault("--params", "{}"));
            }
            session.setEventListener(line -> {
                events.add(line);
                out.println("event " + line);
            });
            out.println("info " + session.info());
            byte[] frame = new byte[frames.frameBytes];
            ByteBuffer direct = ByteBuffer.allocateDirect(frames.frameBytes);
            int ySize = width * height;
            try (InputStream in = frames.open()) {
                for (double t : frames.times) {
                    if (in.readNBytes(frame, 0, frame.length) != frame.length) {
                        throw new IOException("short read from " + frames.raw);
                    }
                    int nativeFormat = format.equals("rgb") ? NativeSession.FORMAT_RGB : NativeSession.FORMAT_NV21;
                    if (format.equals("yuv420888")) {
                        direct.clear();
                        direct.put(frame).flip();
                        // Android's YUV_420_888 over NV21 memory: Y plane; V plane at the V,U block (pixel stride 2);
                        // U plane one byte later. Views share the memory: nothing is copied.
                        ByteBuffer y = slice(direct, 0, ySize);
                        ByteBuffer v = slice(direct, ySize, frames.frameBytes - ySize - 1);
                        ByteBuffer u = slice(direct, ySize + 1, frames.frameBytes - ySize - 1);
                        if (push) {
                            session.pushYuv420888(y, u, v, width, width, 2, width, height, t);
                        } else {
                            session.processYuv420888(y, u, v, width, width, 2, width, height, t);
                        }
                    } else if (push) {
                        session.pushFrame(nativeFormat, frame, width, height, t);
                    } else {
                        session.processFrame(nativeFormat, frame, width, height, t);
                    }
                    if (push && !session.processPending(-1)) {
                        throw new IllegalStateException("processPending returned without a frame after a push");
                    }
                }
            }
            session.finish();
            for (String line : events) {
                eventsFile.write(line);
                eventsFile.write('\n');
            }
            out.println("dropped " + session.droppedFrames());
            out.println(session.summary());
        }
    }

    private static ByteBuffer slice(ByteBuffer b, int offset, int length) {
        ByteBuffer d = b.duplicate();
        d.position(offset);
        d.limit(offset + length);
        return d.slice();
    }

    // ---- errors ---------------------------------------------------------------------------------------

    private interface Body {
        void run() throws Exception;
    }

    private static int failures;

    /** Run `body`, which must throw NativeException with `status`; print its status name and message. */
    private static void expectNative(String name, int status, Body body) {
        try {
            body.run();
            fail(name, "no exception");
        } catch (NativeException e) {
            if (e.status() != status) {
                fail(name, "status " + e.statusName() + " (" + e.status() + "), expected " + status + ": " + e.coreMessage());
            } else if (e.coreMessage().isEmpty() || e.coreMessage().contains("\n")) {
                fail(name, "the core's message is empty or not one line: '" + e.coreMessage() + "'");
            } else if (!e.getMessage().equals(e.statusName() + ": " + e.coreMessage())) {
                fail(name, "getMessage() is '" + e.getMessage() + "'");
            } else {
                System.out.println("ok " + name + " " + e.statusName() + ": " + e.coreMessage());
            }
        } catch (Throwable t) {
            fail(name, "threw " + t);
        }
    }

    /** Run `body`, which must throw `type` (a Java-side check, before the core is called). */
    private static void expectJava(String name, Class<? extends Throwable> type, Body body) {
        try {
            body.run();
            fail(name, "no exception");
        } catch (Throwable t) {
            if (type.isInstance(t)) {
                System.out.println("ok " + name + " " + t.getClass().getSimpleName() + ": " + t.getMessage());
            } else {
                fail(name, "threw " + t + ", expected " + type.getSimpleName());
            }
        }
    }

    /** A call that must throw NativeException (its details were checked above); anything else is a failure. */
    private static void expectQuiet(Body body) {
        try {
            body.run();
            fail("quiet", "no exception");
        } catch (NativeException e) {
            // expected
        } catch (Throwable t) {
            fail("quiet", "threw " + t);
        }
    }

    /** This process's resident set (VmRSS of /proc/self/status) in kB; 0 where there is no /proc. */
    private static long rssKb() throws IOException {
        Path status = Paths.get("/proc/self/status");
        if (!Files.exists(status)) {
            return 0;
        }
        for (String line : Files.readAllLines(status, StandardCharsets.UTF_8)) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return 0;
    }

    private static void check(String name, boolean condition, String detail) {
        if (condition) {
            System.out.println("ok " + name + " " + detail);
        } else {
            fail(name, detail);
        }
    }

    private static void fail(String name, String why) {
        failures++;
        System.out.println("FAIL " + name + " " + why);
    }

    private static boolean errors(Map<String, String> a) throws Exception {
        String artifact = require(a, "--artifact");
        Frames frames = new Frames(a, bytesPerFrame("rgb", Integer.parseInt(require(a, "--width")), Integer.parseInt(require(a, "--height"))));
        int w = frames.width;
        int h = frames.height;
        Path missing = Paths.get(artifact).resolveSibling("no-such-artifact");

        expectNative("missing_artifact", NativeException.ARTIFACT, () -> NativeSession.open(missing.toString()).close());
        expectNative("foreign_contract", NativeException.CONTRACT,
                () -> NativeSession.open(artifact, "0000000000000000000000000000000000000000000000000000000000000000").close());

        try (NativeSession s = NativeSession.open(artifact)) {
            String report = s.selfTest();
            check("self_test", report.contains("\"passed\":true") || report.contains("\"passed\": true"), report);
            expectNative("bad_frame_size", NativeException.INVALID_ARGUMENT,
                    () -> s.processFrame(NativeSession.FORMAT_RGB, new byte[w * h * 3 - 1], w, h, 0.0));
            expectNative("bad_nv21_size", NativeException.INVALID_ARGUMENT,
                    () -> s.processFrame(NativeSession.FORMAT_NV21, new byte[w * h], w, h, 0.0));
            expectNative("odd_nv21_width", NativeException.INVALID_ARGUMENT,
                    () -> s.processFrame(NativeSession.FORMAT_NV21, new byte[(w + 1) * h * 3 / 2 + 8], w + 1, h, 0.0));
            expectNative("bad_format", NativeException.INVALID_ARGUMENT,
                    () -> s.processFrame(42, new byte[w * h * 3], w, h, 0.0));
            expectNative("bad_yuv_strides", NativeException.INVALID_ARGUMENT, () -> {
                ByteBuffer y = ByteBuffer.allocateDirect(w * h);
                ByteBuffer uv = ByteBuffer.allocateDirect(w * h / 2);
                s.processYuv420888(y, uv, uv, w, w, 2, w, h * 2, 0.0); // twice the height the planes hold
            });
            expectNative("bad_push_size", NativeException.INVALID_ARGUMENT,
                    () -> s.pushFrame(NativeSession.FORMAT_RGBA, new byte[16], w, h, 0.0));
            expectNative("bad_policy", NativeException.INVALID_ARGUMENT, () -> s.setPolicy("sometimes", null));
            expectNative("bad_policy_params", NativeException.INVALID_ARGUMENT, () -> s.setPolicy("uniform", "{\"every_s\": -1}"));
            expectNative("unknown_policy_param", NativeException.INVALID_ARGUMENT, () -> s.setPolicy("online", "{\"nope\": 1}"));
            expectNative("params_not_json", NativeException.INVALID_ARGUMENT, () -> s.setPolicy("uniform", "every 1 s"));
            expectNative("bad_top_k", NativeException.INVALID_ARGUMENT, () -> s.setTopK(0));
            expectNative("bad_stride", NativeException.INVALID_ARGUMENT, () -> s.setStride(0));
            expectNative("empty_label", NativeException.TEXT, () -> s.setLabels(new String[] {"a red circle", ""}));
            expectJava("heap_buffer", IllegalArgumentException.class,
                    () -> s.processFrame(NativeSession.FORMAT_RGB, ByteBuffer.allocate(w * h * 3), w, h, 0, 0.0));
            expectJava("array_range", IndexOutOfBoundsException.class,
                    () -> s.processFrame(NativeSession.FORMAT_RGB, new byte[8], 4, 8, w, h, 0, 0.0));
            expectJava("nul_in_query", IllegalArgumentException.class, () -> s.setQuery("a\0b"));
            // the session is still usable after all of that: settings are accepted, a frame is processed,
            // then a setting during the stream is a state error
            s.setPolicy("uniform", "{\"every_s\": 1.0}");
            s.setQuery("what is happening?");
            byte[] frame = new byte[w * h * 3];
            try (InputStream in = frames.open()) {
                if (in.readNBytes(frame, 0, frame.length) != frame.length) {
                    throw new IOException("short read");
                }
            }
            s.processFrame(NativeSession.FORMAT_RGB, frame, w, h, 0.0);
            expectNative("setting_during_stream", NativeException.STATE, () -> s.setQuery("and now?"));
            s.finish();
            check("summary_after_finish", s.summary().length() > 0, "summary has " + s.summary().split("\n").length + " lines");

            // a listener that throws: its exception comes out of the native call, not a NativeException
            s.setEventListener(line -> {
                throw new IllegalStateException("listener refused " + line.length() + " chars");
            });
            expectJava("listener_exception", IllegalStateException.class, () -> {
                try (InputStream in = frames.open()) {
                    for (double t : frames.times) {
                        in.readNBytes(frame, 0, frame.length);
                        s.processFrame(NativeSession.FORMAT_RGB, frame, w, h, t);
                    }
                }
            });
            s.setEventListener(null);
        }

        // after close: every call throws EVJ_ERR_CLOSED with the core's message; close again is fine
        NativeSession closed = NativeSession.open(artifact);
        closed.close();
        closed.close();
        check("close_twice", closed.isClosed(), "isClosed");
        expectNative("query_after_close", NativeException.CLOSED, () -> closed.setQuery("x"));
        expectNative("frame_after_close", NativeException.CLOSED,
                () -> closed.processFrame(NativeSession.FORMAT_RGB, new byte[w * h * 3], w, h, 0.0));
        expectNative("push_after_close", NativeException.CLOSED,
                () -> closed.pushFrame(NativeSession.FORMAT_RGB, new byte[w * h * 3], w, h, 0.0));
        expectNative("pending_after_close", NativeException.CLOSED, () -> closed.processPending(0));
        expectNative("finish_after_close", NativeException.CLOSED, closed::finish);
        expectNative("listener_after_close", NativeException.CLOSED, () -> closed.setEventListener(line -> { }));
        check("dropped_after_close", closed.droppedFrames() == -1, "droppedFrames() = " + closed.droppedFrames());

        // try-with-resources closes on the exception path too
        NativeSession[] held = new NativeSession[1];
        try (NativeSession s = NativeSession.open(artifact)) {
            held[0] = s;
            s.setTopK(-3);
        } catch (NativeException e) {
            check("closed_on_error_path", held[0].isClosed(), e.statusName());
        }

        // an artifact whose golden outputs were altered (and its manifest re-hashed): the self-test fails
        // with the core's message and the report as the exception's detail
        if (a.containsKey("--bad-golden")) {
            try (NativeSession s = NativeSession.open(a.get("--bad-golden"))) {
                expectNative("self_test_fails", NativeException.SELF_TEST, s::selfTest);
                try {
                    s.selfTest();
                } catch (NativeException e) {
                    String d = e.detailJson();
                    check("self_test_report", d != null && d.contains("\"passed\":false"), String.valueOf(d));
                }
            }
        }

        // many failing calls on fresh sessions: every error path frees what it took. Resident memory after
        // a warm-up must stay flat (a leak of copied frames, label strings or global references would grow).
        long rssBefore = 0;
        byte[] labelsFrame = new byte[w * h * 3];
        for (int i = 0; i < 80; i++) {
            if (i == 20) {
                System.gc();
                rssBefore = rssKb();
            }
            try (NativeSession s = NativeSession.open(artifact)) {
                s.setEventListener(line -> { });
                expectQuiet(() -> s.processFrame(NativeSession.FORMAT_RGB, labelsFrame, 0, 7, w, h, 0, 0.0));
                expectQuiet(() -> s.setLabels(new String[] {"a red circle", ""}));
                expectQuiet(() -> s.setPolicy("uniform", "{\"every_s\": 0}"));
                s.setEventListener(null);
            }
        }
        System.gc();
        long grown = rssKb() - rssBefore;
        check("repeated_open_close", grown < 16 * 1024, "60 sessions opened, failed three calls each, closed; resident memory grew "
                + grown + " kB");
        System.out.println(failures == 0 ? "all error cases passed" : failures + " error case(s) failed");
        return failures == 0;
    }
}
