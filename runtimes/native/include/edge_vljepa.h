/*
 * edge_vljepa.h -- the one C API of the edge-vljepa native core (C ABI, usable from JNI, Swift, ctypes).
 *
 * The core runs the VL-JEPA streaming selective-decoding loop of edge_vljepa/streaming on the
 * ExecuTorch runtime: frames -> resample -> preprocess -> window -> x_encoder -> predictor ->
 * label bank top-k -> decode policy -> y_decoder (when the policy asks) -> JSON-lines events.
 *
 * Usage (a video file; error handling shortened):
 *
 *     evj_session* s = NULL;
 *     if (evj_open("artifacts/default-int8", NULL, &s) != EVJ_OK) {
 *         fprintf(stderr, "error: %s\n", evj_last_error()); return 2;
 *     }
 *     evj_set_query(s, "what is happening?");
 *     evj_set_policy(s, "uniform", "{\"every_s\": 1.0}");      // NULL name/params: manifest defaults
 *     evj_set_event_callback(s, on_event, user);               // or poll with evj_next_event
 *     for (each decoded frame) {                               // RGB, RGBA, BGR(A), NV21, YUV_420_888
 *         evj_frame f = {EVJ_FORMAT_RGB, w, h, t_seconds, {rgb}, {w * 3}, {3}, {w * 3 * h}};
 *         if (evj_process_frame(s, &f) != EVJ_OK) break;       // synchronous: events emitted before return
 *     }
 *     evj_finish(s, NULL);                                     // offline decodes, summary
 *     const char* summary; evj_summary_text(s, &summary); puts(summary);
 *     evj_close(s);
 *
 * A live source (camera) pushes from its own thread with evj_push_frame (copies into a keep-newest
 * slot, never blocks on the model; a frame replaced before it was processed counts as dropped) and
 * the engine thread calls evj_process_pending in a loop.
 *
 * Conventions:
 *  - Every function returns an evj_status (or a value documented otherwise). On failure a one-line,
 *    human-readable UTF-8 message is available from evj_last_error() on the calling thread (and
 *    evj_session_error() for the session) until that thread's next failing call.
 *  - Strings in and out are NUL-terminated UTF-8. Input pointers are only read during the call: the
 *    core copies whatever it keeps. Output `const char**` strings are owned by the session (or, for
 *    evj_last_error/evj_version, by the library) and stay valid as stated per function; never free them.
 *  - A session is used from one engine thread at a time (open, settings, process, finish, close);
 *    only evj_push_frame and evj_dropped_frames may be called concurrently from other threads.
 *  - A call on a closed session returns EVJ_ERR_CLOSED (closed handles are never reused), never crashes.
 *  - Settings (query, labels, top-k, policy, stride, skip) may be changed between streams: before the first
 *    frame or after evj_finish. During a stream they return EVJ_ERR_STATE.
 *  - Event lines are JSON objects with exactly the keys of edge_vljepa/streaming/events.py:
 *      {"time", "window", "start", "end", "topk": [{"label", "score"}], "decode", "text", "span", "ms"}
 *    and "reused": true after them only for a window that reused the last embedding (evj_set_skip)
 *    (no trailing newline).
 */
#ifndef EDGE_VLJEPA_H
#define EDGE_VLJEPA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EVJ_API __declspec(dllexport)
#else
#define EVJ_API __attribute__((visibility("default")))
#endif

#define EVJ_API_VERSION 1

/* Opaque session: one artifact + settings + the state of one stream. */
typedef struct evj_session evj_session;

typedef enum evj_status {
  EVJ_OK = 0,
  EVJ_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad value, bad frame (size, strides, format) */
  EVJ_ERR_ARTIFACT = 2,         /* unusable artifact: manifest not JSON / missing keys / missing or
                                   tampered file (sha256) / unsupported format version */
  EVJ_ERR_VERSION = 3,          /* the .pte files were exported with another ExecuTorch version */
  EVJ_ERR_CONTRACT = 4,         /* contract hash mismatch, or a program whose method does not match it */
  EVJ_ERR_TEXT = 5,             /* a query or label too long for the model, empty labels, tokenizer error */
  EVJ_ERR_BACKEND = 6,          /* ExecuTorch failed to load or execute a method */
  EVJ_ERR_STATE = 7,            /* call not allowed now (e.g. a setting during a stream) */
  EVJ_ERR_CLOSED = 8,           /* the session was closed */
  EVJ_ERR_IO = 9,               /* a file could not be read or written */
  EVJ_ERR_SELF_TEST = 10,       /* evj_self_test: outputs differ from golden.npz beyond tolerance */
  EVJ_ERR_INTERNAL = 11         /* a bug; the message says where */
} evj_status;

/* Pixel formats of evj_frame. */
typedef enum evj_pixel_format {
  EVJ_FORMAT_RGB = 0,        /* plane 0: packed R,G,B bytes */
  EVJ_FORMAT_RGBA = 1,       /* plane 0: packed R,G,B,A (alpha ignored) */
  EVJ_FORMAT_BGR = 2,        /* plane 0: packed B,G,R (OpenCV's order) */
  EVJ_FORMAT_BGRA = 3,       /* plane 0: packed B,G,R,A (iOS kCVPixelFormatType_32BGRA) */
  EVJ_FORMAT_NV21 = 4,       /* plane 0: Y; plane 1: interleaved V,U at half resolution (Android NV21) */
  EVJ_FORMAT_YUV_420_888 = 5 /* planes 0,1,2: Y, U, V at half resolution, each with its own row and
                                pixel stride (Android ImageFormat.YUV_420_888; NV12 = U,V interleaved:
                                pixel_stride 2 and planes[2] == planes[1] + 1) */
} evj_pixel_format;

/* One frame. The core only reads the planes during the call that receives the frame. Width and height
 * are the frame's pixel size (any size; the core resizes and crops). For YUV formats width and height
 * must be even. row_stride: bytes between rows (0 = tightly packed); pixel_stride: bytes between
 * samples of a row (0 = the format's natural one: 3 RGB/BGR, 4 RGBA/BGRA, 1 Y, 2 NV21 VU, 1 U/V);
 * plane_size: bytes readable from planes[i] (validated against the strides: a plane too small for the
 * stated size is EVJ_ERR_INVALID_ARGUMENT, never a read past its end). Unused planes: NULL / 0. */
typedef struct evj_frame {
  int32_t format; /* evj_pixel_format */
  int32_t width;
  int32_t height;
  double timestamp_s; /* stream time in seconds, non-decreasing within a stream */
  const uint8_t* planes[3];
  int32_t row_stride[3];
  int32_t pixel_stride[3];
  size_t plane_size[3];
} evj_frame;

/* Called once per event, on the thread that processes frames (evj_process_frame / evj_process_pending
 * / evj_finish). json_line: one event (see Conventions), owned by the core, valid during the call only. */
typedef void (*evj_event_callback)(const char* json_line, void* user_data);

/* ---- library ------------------------------------------------------------------------------------ */

/* The core's version ("1.0.0"); static storage. */
EVJ_API const char* evj_version(void);
/* The ExecuTorch version the core was built against (e.g. "1.5.1"); static storage. */
EVJ_API const char* evj_executorch_version(void);
/* The last error message of this thread (one line, no newline), "" if none; valid until this thread's
 * next failing evj_* call. Thread-local storage owned by the library. */
EVJ_API const char* evj_last_error(void);
/* A short name for a status ("EVJ_ERR_ARTIFACT"); static storage. */
EVJ_API const char* evj_status_name(evj_status status);

/* ---- session -------------------------------------------------------------------------------------- */

/* Open the artifact directory `artifact_dir` (an executorch artifact: manifest.json + files).
 * Checks, in order: the manifest parses and has the keys the core needs, its format_version is
 * supported, the contract hash recomputed from the stored contract (canonical JSON, as Python's
 * Contract.hash()) equals manifest contract_hash and, when expected_contract_hash is not NULL, equals
 * it too (another model's artifact is refused), every listed file exists with its sha256, and the
 * ExecuTorch version in manifest tools equals evj_executorch_version(). Loads x_encoder and predictor
 * (mmap); the y_encoder is loaded only for custom labels, the y_decoder at the first decode.
 * On success *out_session is a new session the caller closes with evj_close; on failure it is NULL. */
EVJ_API evj_status evj_open(const char* artifact_dir, const char* expected_contract_hash,
                            evj_session** out_session);

/* Close the session and free everything it owns (pending events, strings it returned). The handle
 * stays a closed handle: any later call with it returns EVJ_ERR_CLOSED. Closing twice is EVJ_OK;
 * NULL is EVJ_ERR_INVALID_ARGUMENT. */
EVJ_API evj_status evj_close(evj_session* session);

/* The session's last error message (one line), "" if none; owned by the session, valid until its next
 * failing call or evj_close. Returns "" for NULL or a closed session. */
EVJ_API const char* evj_session_error(const evj_session* session);

/* What was opened and the effective settings, as one JSON object: {"preset", "contract_hash",
 * "executorch_version", "components": {...}, "preprocessing": {...}, "query", "labels": count,
 * "labels_from", "top_k", "policy", "params", "stride", "skip", "threads"}. *out_json is owned by the session,
 * valid until the next evj_info_json call or evj_close. */
EVJ_API evj_status evj_info_json(evj_session* session, const char** out_json);

/* ---- settings (before the first frame of a stream, or after evj_finish) -------------------------- */

/* The predictor's text query (UTF-8). EVJ_ERR_TEXT when it has more tokens than the model accepts.
 * Default: "what is happening?" (edge_vljepa.config.CAPTION_QUERY, the Python CLI's default). */
EVJ_API evj_status evj_set_query(evj_session* session, const char* query_utf8);

/* Custom labels, embedded on the device through the y_encoder (loaded now). n_labels == 0 (labels may
 * then be NULL) restores the artifact's label bank. Empty or duplicate labels, or a label with more
 * tokens than the y_encoder accepts, are EVJ_ERR_TEXT. */
EVJ_API evj_status evj_set_labels(evj_session* session, const char* const* labels_utf8, size_t n_labels);

/* Labels reported per window (>= 1; default 3). */
EVJ_API evj_status evj_set_top_k(evj_session* session, int32_t top_k);

/* The decode policy: "uniform", "online", "changepoint" or "offline_segments"; NULL = the manifest's default
 * policy. params_json: a JSON object of the policy's parameters (names as in edge_vljepa/streaming/policies.py:
 * every_s; threshold, confirm, min_interval_s, max_interval_s; threshold, settle_s, min_interval_s,
 * max_interval_s, lead, recheck; n_segments, rate_hz), NULL or "{}" =
 * defaults (the manifest's for its own policy, else policies.py's). Unknown names, bad values:
 * EVJ_ERR_INVALID_ARGUMENT. */
EVJ_API evj_status evj_set_policy(evj_session* session, const char* policy_name, const char* params_json);

/* Model frames between window starts (>= 1); default: the manifest's decode_policy_defaults.stride. */
EVJ_API evj_status evj_set_stride(evj_session* session, int32_t stride);

/* Selective encoding (edge_vljepa/streaming/skip.py): skip the X-Encoder and Predictor while the scene
 * holds. params_json: a JSON object {"max_skip": windows reused in a row at most (0: every window encoded),
 * "stable": cosine distance between consecutive encoded embeddings under which the scene holds, "pixel":
 * mean absolute change of the newest frame's 8 x 8 thumbnail, in [0, 1], over which a window is encoded
 * anyway}; missing keys, NULL or "{}": the manifest's decode_policy_defaults.skip, else max_skip 0 (off).
 * A reused window's event repeats the last embedding's labels and has "reused": true. Unknown names, bad
 * values: EVJ_ERR_INVALID_ARGUMENT. */
EVJ_API evj_status evj_set_skip(evj_session* session, const char* params_json);

/* Threads of ExecuTorch's CPU thread pool (process-wide; >= 1; 0 = leave the runtime's default). */
EVJ_API evj_status evj_set_threads(evj_session* session, int32_t threads);

/* ---- events ----------------------------------------------------------------------------------------- */

/* Deliver events to `callback` (NULL: queue them for evj_next_event; the queue keeps at most 4096
 * events, older ones are dropped and counted in the summary). */
EVJ_API evj_status evj_set_event_callback(evj_session* session, evj_event_callback callback, void* user_data);

/* The oldest queued event line, or *out_json_line = NULL when none is queued (still EVJ_OK). The line is
 * owned by the session and valid until the next evj_next_event call or evj_close. */
EVJ_API evj_status evj_next_event(evj_session* session, const char** out_json_line);

/* ---- frames ---------------------------------------------------------------------------------------- */

/* Synchronous path (files): run the loop on this frame now; its events are emitted before return. */
EVJ_API evj_status evj_process_frame(evj_session* session, const evj_frame* frame);

/* Live path, any thread: copy the frame into the keep-newest slot and return (validates the frame
 * first). A frame still in the slot is replaced and counted as dropped. */
EVJ_API evj_status evj_push_frame(evj_session* session, const evj_frame* frame);

/* Engine thread: wait up to timeout_ms (0: don't wait, < 0: forever) for a pushed frame and process
 * it. *out_processed (may be NULL) is 1 when a frame was processed, 0 on timeout. */
EVJ_API evj_status evj_process_pending(evj_session* session, int32_t timeout_ms, int32_t* out_processed);

/* Frames replaced in the keep-newest slot before they were processed, this stream. Any thread.
 * Returns -1 for NULL or a closed session. */
EVJ_API int64_t evj_dropped_frames(const evj_session* session);

/* The L2-normalised embedding of the last processed window (valid until the next frame is processed,
 * evj_finish or evj_close; owned by the session). *out_dim = 0 and *out_data = NULL before any window. */
EVJ_API evj_status evj_last_embedding(evj_session* session, const float** out_data, size_t* out_dim);

/* ---- end of stream ---------------------------------------------------------------------------------- */

/* End the stream: offline policies decide now (one decode event each), the summary is computed, and the
 * next frame starts a new stream (window indices from 0). `source_error` (may be NULL): a one-line
 * reason the source broke mid-stream; it is reported in the summary like Python's StreamSummary.error. */
EVJ_API evj_status evj_finish(evj_session* session, const char* source_error);

/* The summary of the last finished stream, formatted exactly as Python's StreamSummary.format()
 * (multi-line, no trailing newline). Owned by the session, valid until the next evj_finish or evj_close.
 * EVJ_ERR_STATE before the first evj_finish. */
EVJ_API evj_status evj_summary_text(evj_session* session, const char** out_text);

/* The same summary as a JSON object: {"windows", "reused" (windows without an X-Encoder call), "decodes", "source_frames", "dropped_frames",
 * "dropped_events", "stream_s", "wall_s", "backend_s", "outside_backend_s", "core_s" (seconds inside the
 * core's frame and finish calls), "stage_ms": {stage: [p50, p90]}, "stage_total_ms": {stage: sum of ms},
 * "error", "interrupted", "peak_rss_mb" (MB of 10^6 bytes)}. Ownership as evj_summary_text. */
EVJ_API evj_status evj_summary_json(evj_session* session, const char** out_json);

/* ---- self-test ---------------------------------------------------------------------------------------- */

/* Run every method of the artifact's golden.npz on its recorded inputs and compare with its recorded
 * outputs (tolerance: the manifest's per-quantization tensor tolerances). *out_report_json (may be NULL):
 * {"passed": bool, "methods": {method: {"max_abs": x, "tolerance": y, "passed": bool}}}, owned by the
 * session, valid until the next evj_self_test or evj_close. EVJ_ERR_SELF_TEST when any method fails. */
EVJ_API evj_status evj_self_test(evj_session* session, const char** out_report_json);

#ifdef __cplusplus
}
#endif

#endif /* EDGE_VLJEPA_H */
