/*
 * edge_vljepa_jni.c -- the plain JNI bridge (C, no fbjni) between org.edgevljepa.NativeSession and the
 * native core's C API (runtimes/native/include/edge_vljepa.h).
 *
 * Shape after whisper.cpp's examples/whisper.android (lib/src/main/jni/whisper/jni.c): one C file, one
 * static native method per C call, the session handle passed as a jlong.
 *
 * Rules this file keeps:
 *  - The jlong handle is the core's evj_session pointer. The core keeps closed handles registered, so a
 *    call after close reaches evj_* and comes back as EVJ_ERR_CLOSED with the core's message; nothing
 *    here dereferences the handle.
 *  - Every failing evj_* call throws org.edgevljepa.NativeException(status, status name, the core's one-
 *    line message); every path frees what it allocated (C strings, label arrays, pinned arrays, global
 *    references) before returning, thrown or not.
 *  - Strings cross as UTF-8 byte arrays in both directions (NewStringUTF/GetStringUTFChars use modified
 *    UTF-8, which is not what the core speaks for characters outside the BMP).
 *  - Frames in direct ByteBuffers (CameraX's YUV_420_888 planes) are read in place: the core gets the
 *    buffers' addresses, no copy is made here. Frames in byte[] are accessed with Get/ReleaseByteArray-
 *    Elements (JNI_ABORT: nothing is written back); a critical region is not used because the core calls
 *    the event listener (Java) from inside evj_process_frame.
 *  - The event listener: a small record holding the JavaVM and a global reference to the NativeSession,
 *    passed as the core's callback user data; freed when the listener is replaced or the session closed.
 */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge_vljepa.h"

#define JNI_FN(name) Java_org_edgevljepa_NativeSession_##name

typedef struct listener_bridge {
  JavaVM* vm;
  jobject target; /* global reference to the NativeSession */
} listener_bridge;

/* Cached in JNI_OnLoad (class loader of NativeSession; also valid on threads the core calls back on). */
static jclass g_exception_class;        /* org.edgevljepa.NativeException (global ref) */
static jmethodID g_exception_from;      /* static NativeException fromNative(int, byte[], byte[], byte[]) */
static jclass g_session_class;          /* org.edgevljepa.NativeSession (global ref) */
static jmethodID g_session_dispatch;    /* void dispatchEvent(byte[]) */

static evj_session* session_of(jlong handle) { return (evj_session*)(intptr_t)handle; }

/* ---- exceptions ------------------------------------------------------------------------------------ */

static void throw_java(JNIEnv* env, const char* class_name, const char* message) {
  jclass cls = (*env)->FindClass(env, class_name);
  if (cls == NULL) return; /* NoClassDefFoundError is pending */
  (*env)->ThrowNew(env, cls, message);
  (*env)->DeleteLocalRef(env, cls);
}

static void throw_oom(JNIEnv* env) { throw_java(env, "java/lang/OutOfMemoryError", "edge_vljepa_jni: out of native memory"); }

/* A new byte[] with the bytes of the NUL-terminated `s`; NULL with an exception pending on failure. */
static jbyteArray bytes_of(JNIEnv* env, const char* s) {
  size_t n = strlen(s);
  if (n > (size_t)INT32_MAX) {
    throw_java(env, "java/lang/IllegalStateException", "edge_vljepa_jni: a string from the core is larger than 2 GiB");
    return NULL;
  }
  jbyteArray out = (*env)->NewByteArray(env, (jsize)n);
  if (out == NULL) return NULL;
  (*env)->SetByteArrayRegion(env, out, 0, (jsize)n, (const jbyte*)s);
  return out;
}

/*
 * Throw NativeException for `status` with the core's message of this thread (evj_last_error) and an optional
 * detail (the self-test report). An exception already pending (e.g. thrown by the event listener inside the
 * call) is kept: it is the first thing that went wrong.
 */
static void throw_status(JNIEnv* env, evj_status status, const char* detail) {
  if ((*env)->ExceptionCheck(env)) return;
  jbyteArray name = NULL, message = NULL, detail_bytes = NULL;
  jthrowable ex = NULL;
  name = bytes_of(env, evj_status_name(status));
  if (name == NULL) goto done;
  message = bytes_of(env, evj_last_error());
  if (message == NULL) goto done;
  if (detail != NULL) {
    detail_bytes = bytes_of(env, detail);
    if (detail_bytes == NULL) goto done;
  }
  ex = (jthrowable)(*env)->CallStaticObjectMethod(env, g_exception_class, g_exception_from, (jint)status, name, message,
                                                  detail_bytes);
  if (ex != NULL && !(*env)->ExceptionCheck(env)) (*env)->Throw(env, ex);
done:
  if (ex != NULL) (*env)->DeleteLocalRef(env, ex);
  if (detail_bytes != NULL) (*env)->DeleteLocalRef(env, detail_bytes);
  if (message != NULL) (*env)->DeleteLocalRef(env, message);
  if (name != NULL) (*env)->DeleteLocalRef(env, name);
}

/* ---- strings in ------------------------------------------------------------------------------------ */

/* *out = a malloc'ed NUL-terminated copy of the UTF-8 bytes (NULL for a null array). 0 with an exception
 * pending on failure. */
static int c_string(JNIEnv* env, jbyteArray bytes, char** out) {
  *out = NULL;
  if (bytes == NULL) return 1;
  jsize n = (*env)->GetArrayLength(env, bytes);
  char* s = (char*)malloc((size_t)n + 1);
  if (s == NULL) {
    throw_oom(env);
    return 0;
  }
  (*env)->GetByteArrayRegion(env, bytes, 0, n, (jbyte*)s);
  s[n] = '\0';
  *out = s;
  return 1;
}

/* ---- events ------------------------------------------------------------------------------------------ */

static void on_event(const char* json_line, void* user_data) {
  listener_bridge* bridge = (listener_bridge*)user_data;
  JNIEnv* env = NULL;
  if ((*bridge->vm)->GetEnv(bridge->vm, (void**)&env, JNI_VERSION_1_6) != JNI_OK) return; /* not a Java thread */
  if ((*env)->ExceptionCheck(env)) return; /* the listener threw earlier in this call: rethrown on return */
  jbyteArray line = bytes_of(env, json_line);
  if (line == NULL) return;
  (*env)->CallVoidMethod(env, bridge->target, g_session_dispatch, line);
  (*env)->DeleteLocalRef(env, line);
}

static void free_bridge(JNIEnv* env, listener_bridge* bridge) {
  if (bridge == NULL) return;
  if (bridge->target != NULL) (*env)->DeleteGlobalRef(env, bridge->target);
  free(bridge);
}

/* ---- library ----------------------------------------------------------------------------------------- */

JNIEXPORT jint JNI_OnLoad(JavaVM* vm, void* reserved) {
  (void)reserved;
  JNIEnv* env = NULL;
  if ((*vm)->GetEnv(vm, (void**)&env, JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  jclass ex = (*env)->FindClass(env, "org/edgevljepa/NativeException");
  if (ex == NULL) return JNI_ERR;
  jclass session = (*env)->FindClass(env, "org/edgevljepa/NativeSession");
  if (session == NULL) {
    (*env)->DeleteLocalRef(env, ex);
    return JNI_ERR;
  }
  g_exception_from = (*env)->GetStaticMethodID(env, ex, "fromNative", "(I[B[B[B)Lorg/edgevljepa/NativeException;");
  g_session_dispatch = (*env)->GetMethodID(env, session, "dispatchEvent", "([B)V");
  if (g_exception_from != NULL && g_session_dispatch != NULL) {
    g_exception_class = (jclass)(*env)->NewGlobalRef(env, ex);
    g_session_class = (jclass)(*env)->NewGlobalRef(env, session);
  }
  (*env)->DeleteLocalRef(env, session);
  (*env)->DeleteLocalRef(env, ex);
  if (g_exception_class == NULL || g_session_class == NULL) return JNI_ERR; /* an error is pending */
  return JNI_VERSION_1_6;
}

JNIEXPORT void JNI_OnUnload(JavaVM* vm, void* reserved) {
  (void)reserved;
  JNIEnv* env = NULL;
  if ((*vm)->GetEnv(vm, (void**)&env, JNI_VERSION_1_6) != JNI_OK) return;
  if (g_exception_class != NULL) (*env)->DeleteGlobalRef(env, g_exception_class);
  if (g_session_class != NULL) (*env)->DeleteGlobalRef(env, g_session_class);
  g_exception_class = NULL;
  g_session_class = NULL;
}

JNIEXPORT jstring JNICALL JNI_FN(nativeVersion)(JNIEnv* env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, evj_version()); /* ASCII */
}

JNIEXPORT jstring JNICALL JNI_FN(nativeExecutorchVersion)(JNIEnv* env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, evj_executorch_version()); /* ASCII */
}

/* ---- session ------------------------------------------------------------------------------------------ */

JNIEXPORT jlong JNICALL JNI_FN(nativeOpen)(JNIEnv* env, jclass cls, jbyteArray jdir, jbyteArray jhash) {
  (void)cls;
  char *dir = NULL, *hash = NULL;
  evj_session* session = NULL;
  if (!c_string(env, jdir, &dir)) return 0;
  if (!c_string(env, jhash, &hash)) {
    free(dir);
    return 0;
  }
  evj_status status = evj_open(dir, hash, &session);
  free(hash);
  free(dir);
  if (status != EVJ_OK) {
    throw_status(env, status, NULL);
    return 0;
  }
  return (jlong)(intptr_t)session;
}

JNIEXPORT void JNICALL JNI_FN(nativeClose)(JNIEnv* env, jclass cls, jlong handle, jlong jbridge) {
  (void)cls;
  /* evj_close waits for a call in progress; only then is the listener record unused and freed. */
  evj_status status = evj_close(session_of(handle));
  free_bridge(env, (listener_bridge*)(intptr_t)jbridge);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

JNIEXPORT jlong JNICALL JNI_FN(nativeSetEventListener)(JNIEnv* env, jclass cls, jlong handle, jlong old_bridge, jobject target) {
  (void)cls;
  listener_bridge* bridge = NULL;
  if (target != NULL) {
    bridge = (listener_bridge*)calloc(1, sizeof *bridge);
    if (bridge == NULL) {
      throw_oom(env);
      return old_bridge;
    }
    if ((*env)->GetJavaVM(env, &bridge->vm) != JNI_OK) {
      free(bridge);
      throw_java(env, "java/lang/IllegalStateException", "edge_vljepa_jni: GetJavaVM failed");
      return old_bridge;
    }
    bridge->target = (*env)->NewGlobalRef(env, target);
    if (bridge->target == NULL) {
      free(bridge);
      throw_oom(env);
      return old_bridge;
    }
  }
  evj_status status = evj_set_event_callback(session_of(handle), bridge != NULL ? on_event : NULL, bridge);
  if (status != EVJ_OK) {
    free_bridge(env, bridge); /* the core did not take it; the old listener stays installed */
    throw_status(env, status, NULL);
    return old_bridge;
  }
  free_bridge(env, (listener_bridge*)(intptr_t)old_bridge);
  return (jlong)(intptr_t)bridge;
}

JNIEXPORT jbyteArray JNICALL JNI_FN(nativeInfo)(JNIEnv* env, jclass cls, jlong handle) {
  (void)cls;
  const char* json = NULL;
  evj_status status = evj_info_json(session_of(handle), &json);
  if (status != EVJ_OK) {
    throw_status(env, status, NULL);
    return NULL;
  }
  return bytes_of(env, json);
}

/* ---- settings ----------------------------------------------------------------------------------------- */

JNIEXPORT void JNICALL JNI_FN(nativeSetQuery)(JNIEnv* env, jclass cls, jlong handle, jbyteArray jquery) {
  (void)cls;
  char* query = NULL;
  if (!c_string(env, jquery, &query)) return;
  evj_status status = evj_set_query(session_of(handle), query);
  free(query);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

JNIEXPORT void JNICALL JNI_FN(nativeSetLabels)(JNIEnv* env, jclass cls, jlong handle, jobjectArray jlabels) {
  (void)cls;
  jsize n = jlabels != NULL ? (*env)->GetArrayLength(env, jlabels) : 0;
  char** labels = NULL;
  jsize filled = 0;
  evj_status status = EVJ_OK;
  if (n > 0) {
    labels = (char**)calloc((size_t)n, sizeof *labels);
    if (labels == NULL) {
      throw_oom(env);
      return;
    }
    for (; filled < n; ++filled) {
      jbyteArray item = (jbyteArray)(*env)->GetObjectArrayElement(env, jlabels, filled);
      if ((*env)->ExceptionCheck(env)) goto done;
      if (item == NULL) {
        throw_java(env, "java/lang/NullPointerException", "labels: a null entry");
        goto done;
      }
      int ok = c_string(env, item, &labels[filled]);
      (*env)->DeleteLocalRef(env, item);
      if (!ok) goto done;
    }
  }
  status = evj_set_labels(session_of(handle), (const char* const*)labels, (size_t)n);
  if (status != EVJ_OK) throw_status(env, status, NULL);
done:
  for (jsize i = 0; i < filled; ++i) free(labels[i]);
  free(labels);
}

JNIEXPORT void JNICALL JNI_FN(nativeSetTopK)(JNIEnv* env, jclass cls, jlong handle, jint top_k) {
  (void)cls;
  evj_status status = evj_set_top_k(session_of(handle), top_k);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

JNIEXPORT void JNICALL JNI_FN(nativeSetPolicy)(JNIEnv* env, jclass cls, jlong handle, jbyteArray jname, jbyteArray jparams) {
  (void)cls;
  char *name = NULL, *params = NULL;
  if (!c_string(env, jname, &name)) return;
  if (!c_string(env, jparams, &params)) {
    free(name);
    return;
  }
  evj_status status = evj_set_policy(session_of(handle), name, params);
  free(params);
  free(name);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

JNIEXPORT void JNICALL JNI_FN(nativeSetStride)(JNIEnv* env, jclass cls, jlong handle, jint stride) {
  (void)cls;
  evj_status status = evj_set_stride(session_of(handle), stride);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

JNIEXPORT void JNICALL JNI_FN(nativeSetThreads)(JNIEnv* env, jclass cls, jlong handle, jint threads) {
  (void)cls;
  evj_status status = evj_set_threads(session_of(handle), threads);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

/* ---- events (queued) ---------------------------------------------------------------------------------- */

JNIEXPORT jbyteArray JNICALL JNI_FN(nativeNextEvent)(JNIEnv* env, jclass cls, jlong handle) {
  (void)cls;
  const char* line = NULL;
  evj_status status = evj_next_event(session_of(handle), &line);
  if (status != EVJ_OK) {
    throw_status(env, status, NULL);
    return NULL;
  }
  return line != NULL ? bytes_of(env, line) : NULL;
}

/* ---- frames ------------------------------------------------------------------------------------------- */

/* A frame in one buffer: packed RGB/RGBA/BGR/BGRA, or NV21 (Y rows, then interleaved V,U rows with the same
 * row stride). The core validates sizes and strides against plane_size; this only splits NV21's planes. */
static void single_buffer_frame(evj_frame* f, jint format, const uint8_t* base, size_t length, jint width, jint height,
                                jint row_stride, jdouble t) {
  memset(f, 0, sizeof *f);
  f->format = format;
  f->width = width;
  f->height = height;
  f->timestamp_s = t;
  f->planes[0] = base;
  f->row_stride[0] = row_stride;
  f->plane_size[0] = length;
  if (format == EVJ_FORMAT_NV21) {
    size_t stride = row_stride > 0 ? (size_t)row_stride : (width > 0 ? (size_t)width : 0);
    size_t y_size = height > 0 ? stride * (size_t)height : 0;
    if (y_size > length) y_size = length;
    f->plane_size[0] = y_size;
    f->planes[1] = base + y_size;
    f->row_stride[1] = row_stride;
    f->plane_size[1] = length - y_size;
  }
}

static evj_status submit(evj_session* session, jboolean push, const evj_frame* f) {
  return push ? evj_push_frame(session, f) : evj_process_frame(session, f);
}

JNIEXPORT void JNICALL JNI_FN(nativeArrayFrame)(JNIEnv* env, jclass cls, jlong handle, jboolean push, jint format,
                                                jbyteArray data, jint offset, jint length, jint width, jint height,
                                                jint row_stride, jdouble t) {
  (void)cls;
  if (data == NULL) {
    throw_java(env, "java/lang/NullPointerException", "data");
    return;
  }
  jsize n = (*env)->GetArrayLength(env, data);
  if (offset < 0 || length < 0 || offset > n - length) {
    throw_java(env, "java/lang/IndexOutOfBoundsException", "frame range outside the array");
    return;
  }
  jbyte* bytes = (*env)->GetByteArrayElements(env, data, NULL);
  if (bytes == NULL) return; /* OutOfMemoryError pending */
  evj_frame f;
  single_buffer_frame(&f, format, (const uint8_t*)bytes + offset, (size_t)length, width, height, row_stride, t);
  evj_status status = submit(session_of(handle), push, &f);
  (*env)->ReleaseByteArrayElements(env, data, bytes, JNI_ABORT);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

/* The readable window [offset, offset + length) of a direct buffer; 0 with an exception pending if the buffer is
 * not direct or the window is outside it. */
static int direct_window(JNIEnv* env, jobject buffer, jint offset, jint length, int plane, const uint8_t** out) {
  *out = NULL;
  uint8_t* base = (uint8_t*)(*env)->GetDirectBufferAddress(env, buffer);
  jlong capacity = (*env)->GetDirectBufferCapacity(env, buffer);
  if (base == NULL || capacity < 0) {
    throw_java(env, "java/lang/IllegalArgumentException",
               plane == 0 ? "plane 0: not a direct ByteBuffer" : plane == 1 ? "plane 1: not a direct ByteBuffer"
                                                                            : "plane 2: not a direct ByteBuffer");
    return 0;
  }
  if (offset < 0 || length < 0 || (jlong)offset + (jlong)length > capacity) {
    throw_java(env, "java/lang/IndexOutOfBoundsException", "plane window outside its ByteBuffer");
    return 0;
  }
  *out = base + offset;
  return 1;
}

JNIEXPORT void JNICALL JNI_FN(nativeBufferFrame)(JNIEnv* env, jclass cls, jlong handle, jboolean push, jint format, jint width,
                                                 jint height, jdouble t, jobject b0, jint offset0, jint length0, jint row0,
                                                 jint pixel0, jobject b1, jint offset1, jint length1, jint row1, jint pixel1,
                                                 jobject b2, jint offset2, jint length2, jint row2, jint pixel2) {
  (void)cls;
  jobject buffers[3] = {b0, b1, b2};
  const jint offsets[3] = {offset0, offset1, offset2}, lengths[3] = {length0, length1, length2};
  const jint rows[3] = {row0, row1, row2}, pixels[3] = {pixel0, pixel1, pixel2};
  const uint8_t* planes[3] = {NULL, NULL, NULL};
  if (b0 == NULL) {
    throw_java(env, "java/lang/NullPointerException", "plane 0");
    return;
  }
  for (int i = 0; i < 3; ++i) {
    if (buffers[i] != NULL && !direct_window(env, buffers[i], offsets[i], lengths[i], i, &planes[i])) return;
  }
  evj_frame f;
  if (b1 == NULL && b2 == NULL) {
    single_buffer_frame(&f, format, planes[0], (size_t)lengths[0], width, height, rows[0], t);
    f.pixel_stride[0] = pixels[0];
  } else {
    memset(&f, 0, sizeof f);
    f.format = format;
    f.width = width;
    f.height = height;
    f.timestamp_s = t;
    for (int i = 0; i < 3; ++i) {
      f.planes[i] = planes[i];
      f.row_stride[i] = rows[i];
      f.pixel_stride[i] = pixels[i];
      f.plane_size[i] = planes[i] != NULL ? (size_t)lengths[i] : 0;
    }
  }
  evj_status status = submit(session_of(handle), push, &f);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

JNIEXPORT jboolean JNICALL JNI_FN(nativeProcessPending)(JNIEnv* env, jclass cls, jlong handle, jint timeout_ms) {
  (void)cls;
  int32_t processed = 0;
  evj_status status = evj_process_pending(session_of(handle), timeout_ms, &processed);
  if (status != EVJ_OK) {
    throw_status(env, status, NULL);
    return JNI_FALSE;
  }
  return processed ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jlong JNICALL JNI_FN(nativeDroppedFrames)(JNIEnv* env, jclass cls, jlong handle) {
  (void)env;
  (void)cls;
  return (jlong)evj_dropped_frames(session_of(handle));
}

/* ---- end of stream, summary, self-test ----------------------------------------------------------------- */

JNIEXPORT void JNICALL JNI_FN(nativeFinish)(JNIEnv* env, jclass cls, jlong handle, jbyteArray jerror) {
  (void)cls;
  char* source_error = NULL;
  if (!c_string(env, jerror, &source_error)) return;
  evj_status status = evj_finish(session_of(handle), source_error);
  free(source_error);
  if (status != EVJ_OK) throw_status(env, status, NULL);
}

JNIEXPORT jbyteArray JNICALL JNI_FN(nativeSummary)(JNIEnv* env, jclass cls, jlong handle, jboolean json) {
  (void)cls;
  const char* text = NULL;
  evj_status status = json ? evj_summary_json(session_of(handle), &text) : evj_summary_text(session_of(handle), &text);
  if (status != EVJ_OK) {
    throw_status(env, status, NULL);
    return NULL;
  }
  return bytes_of(env, text);
}

JNIEXPORT jbyteArray JNICALL JNI_FN(nativeSelfTest)(JNIEnv* env, jclass cls, jlong handle) {
  (void)cls;
  const char* report = NULL;
  evj_status status = evj_self_test(session_of(handle), &report);
  if (status != EVJ_OK) {
    /* EVJ_ERR_SELF_TEST comes with the report (which methods, by how much); other failures without one. */
    throw_status(env, status, status == EVJ_ERR_SELF_TEST ? report : NULL);
    return NULL;
  }
  return bytes_of(env, report != NULL ? report : "{}");
}
