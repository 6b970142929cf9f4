package org.edgevljepa.demo

import android.graphics.ImageFormat
import androidx.camera.core.ImageProxy
import java.io.File
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicLong
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.launch
import org.edgevljepa.NativeException
import org.edgevljepa.NativeSession

/**
 * The one engine thread that owns the NativeSession (after llama.cpp's examples/llama.android: a single-thread
 * dispatcher, a state enum, results as flows). Every session call except pushYuv420888/droppedFrames runs on
 * that thread; CameraX's analyzer thread only pushes frames into the core's keep-newest slot, so a busy model
 * drops frames (counted by the core) instead of queueing them.
 *
 * States: Idle (nothing loaded) -> Loading (open, self-test, settings) -> Ready -> Running (processPending loop)
 * -> Ready on stop; any failure -> Error with a [Failure] holding the core's own message.
 */
class VljepaEngine(private val filesDir: File) : AutoCloseable {

    enum class State { Idle, Loading, Ready, Running, Error }

    /** Why the engine is in State.Error; each kind has its own screen in MainActivity. */
    enum class FailureKind { Missing, Refused, SelfTestFailed, Failed }

    data class Failure(val kind: FailureKind, val message: String, val detail: String? = null)

    private val executor = Executors.newSingleThreadExecutor { r -> Thread(r, "vljepa-engine") }
    private val scope = CoroutineScope(SupervisorJob() + executor.asCoroutineDispatcher())

    private val _state = MutableStateFlow(State.Idle)
    val state: StateFlow<State> = _state.asStateFlow()
    private val _failure = MutableStateFlow<Failure?>(null)
    val failure: StateFlow<Failure?> = _failure.asStateFlow()
    private val _overlay = MutableStateFlow(OverlayState())
    val overlay: StateFlow<OverlayState> = _overlay.asStateFlow()
    private val _summary = MutableStateFlow<String?>(null)
    val summary: StateFlow<String?> = _summary.asStateFlow()
    private val _eventsFile = MutableStateFlow<File?>(null)
    val eventsFile: StateFlow<File?> = _eventsFile.asStateFlow()

    // engine thread only
    private var session: NativeSession? = null
    private var log: EventLog? = null

    // shared with the camera thread
    @Volatile private var live: NativeSession? = null
    @Volatile private var running = false
    @Volatile private var pushFailure: String? = null
    private val streamStartNs = AtomicLong(NO_START)

    /** Open the artifact, run its self-test and apply the settings (replaces a loaded session). */
    fun load(settings: DemoSettings) {
        running = false
        scope.launch { loadOnEngine(settings) }
    }

    /** Start a stream: frames offered from now on are processed until [stop]. */
    fun start() {
        scope.launch { runOnEngine() }
    }

    /** End the stream (the engine finishes it, writes the summary and returns to Ready). */
    fun stop() {
        running = false
    }

    /**
     * CameraX analyzer thread: hand the image's three YUV_420_888 planes (direct buffers, with their row and pixel
     * strides) to the core, which copies them into its keep-newest slot and converts them itself. Always closes
     * the image, so CameraX can deliver the next one.
     */
    fun offer(image: ImageProxy) {
        image.use {
            val s = live
            if (!running || s == null || image.format != ImageFormat.YUV_420_888 || image.planes.size < 3) {
                return
            }
            val ns = image.imageInfo.timestamp
            streamStartNs.compareAndSet(NO_START, ns)
            val t = (ns - streamStartNs.get()) / 1e9
            val planes = image.planes
            try {
                s.pushYuv420888(
                    planes[0].buffer, planes[1].buffer, planes[2].buffer,
                    planes[0].rowStride, planes[1].rowStride, planes[1].pixelStride,
                    image.width, image.height, t,
                )
            } catch (e: NativeException) {
                if (running) {
                    pushFailure = e.statusName() + ": " + e.coreMessage()
                    running = false
                }
            }
        }
    }

    override fun close() {
        running = false
        scope.launch { closeSession() }
        executor.shutdown()
        scope.cancel()
    }

    // ---- engine thread ----------------------------------------------------------------------------------

    private fun loadOnEngine(settings: DemoSettings) {
        closeSession()
        _failure.value = null
        _summary.value = null
        _state.value = State.Loading
        val dir = File(settings.artifactDir)
        val missing = !File(dir, "manifest.json").isFile
        val s = try {
            NativeSession.open(dir.absolutePath)
        } catch (e: NativeException) {
            // the core's message either way; the screen differs for an empty folder and a refused artifact
            fail(if (missing) FailureKind.Missing else FailureKind.Refused, e.coreMessage(), e.statusName())
            return
        }
        try {
            s.selfTest()
            s.setThreads(Runtime.getRuntime().availableProcessors().coerceIn(1, 4))
            s.setQuery(settings.query)
            settings.labelsPath()?.let { s.setLabels(DemoSettings.readLabels(it)) }
            s.setPolicy(settings.policy.ifEmpty { null }, settings.policyParamsJson())
            s.setTopK(settings.topK)
        } catch (e: NativeException) {
            s.close()
            val kind = if (e.status() == NativeException.SELF_TEST) FailureKind.SelfTestFailed else FailureKind.Failed
            fail(kind, e.coreMessage(), e.detailJson() ?: e.statusName())
            return
        } catch (e: IllegalArgumentException) {
            s.close()
            fail(FailureKind.Failed, e.message ?: e.toString())
            return
        }
        session = s
        live = s
        _state.value = State.Ready
    }

    private fun runOnEngine() {
        val s = session
        if (s == null || _state.value != State.Ready) {
            return
        }
        val eventLog = try {
            EventLog.open(filesDir)
        } catch (e: Exception) {
            fail(FailureKind.Failed, "cannot write the event log: ${e.message}")
            return
        }
        log = eventLog
        _eventsFile.value = eventLog.file
        _overlay.value = OverlayState()
        _summary.value = null
        pushFailure = null
        streamStartNs.set(NO_START)
        var error: String? = null
        try {
            s.setEventListener { line -> onEvent(s, line) }
            running = true
            _state.value = State.Running
            while (running) {
                s.processPending(100)
            }
            val broken = pushFailure
            s.finish(broken)
            _summary.value = s.summary()
            error = broken
        } catch (e: NativeException) {
            running = false
            error = e.statusName() + ": " + e.coreMessage()
        } finally {
            running = false
            eventLog.close()
            log = null
        }
        if (error != null) {
            closeSession()
            fail(FailureKind.Failed, error)
        } else {
            s.setEventListener(null)
            _state.value = State.Ready
        }
    }

    private fun onEvent(s: NativeSession, line: String) {
        log?.append(line)
        _overlay.value = _overlay.value.withEvent(line, OverlayState.residentMb(), s.droppedFrames())
    }

    private fun fail(kind: FailureKind, message: String, detail: String? = null) {
        _failure.value = Failure(kind, message, detail)
        _state.value = State.Error
    }

    private fun closeSession() {
        live = null
        session?.close()
        session = null
    }

    private companion object {
        const val NO_START = Long.MIN_VALUE
    }
}
