package org.edgevljepa.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.Size
import android.view.View
import android.widget.Button
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import kotlinx.coroutines.launch

/**
 * The live demo: CameraX preview with an overlay (top-3 labels, last caption and its time, per-stage ms,
 * decodes per minute, memory), a start/stop button, settings, and one error screen per failure kind that shows
 * the core's own message. Frames go from CameraX's ImageAnalysis (keep only the latest, YUV_420_888) straight
 * to the engine as plane buffers: no pixel is touched in Kotlin.
 */
class MainActivity : AppCompatActivity() {

    private val model: EngineViewModel by viewModels()
    private lateinit var analysisExecutor: ExecutorService

    private lateinit var previewView: PreviewView
    private lateinit var overlayText: TextView
    private lateinit var statusText: TextView
    private lateinit var startStop: Button
    private lateinit var errorPanel: View
    private lateinit var errorTitle: TextView
    private lateinit var errorMessage: TextView
    private lateinit var errorDetail: TextView

    private val cameraPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) {
            bindCamera()
        } else {
            showError(getString(R.string.error_camera_title), getString(R.string.error_camera_message), null)
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        previewView = findViewById(R.id.preview)
        overlayText = findViewById(R.id.overlay_text)
        statusText = findViewById(R.id.status_text)
        startStop = findViewById(R.id.start_stop)
        errorPanel = findViewById(R.id.error_panel)
        errorTitle = findViewById(R.id.error_title)
        errorMessage = findViewById(R.id.error_message)
        errorDetail = findViewById(R.id.error_detail)
        analysisExecutor = Executors.newSingleThreadExecutor { r -> Thread(r, "camera-analysis") }

        startStop.setOnClickListener {
            when (model.engine.state.value) {
                VljepaEngine.State.Running -> model.engine.stop()
                VljepaEngine.State.Ready -> model.engine.start()
                else -> loadIfNeeded(force = true)
            }
        }
        findViewById<Button>(R.id.open_settings).setOnClickListener { openSettings() }
        findViewById<Button>(R.id.error_settings).setOnClickListener { openSettings() }
        findViewById<Button>(R.id.error_retry).setOnClickListener { loadIfNeeded(force = true) }

        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                launch { model.engine.state.collect { renderState(it) } }
                launch { model.engine.failure.collect { renderFailure(it) } }
                launch { model.engine.overlay.collect { overlayText.text = it.format() } }
                launch {
                    model.engine.summary.collect { summary ->
                        if (summary != null) {
                            overlayText.text = summary
                        }
                    }
                }
            }
        }

        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            bindCamera()
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA)
        }
    }

    override fun onStart() {
        super.onStart()
        loadIfNeeded(force = false)
    }

    override fun onStop() {
        // Leaving the screen ends the stream (the camera stops delivering frames with the lifecycle anyway).
        model.engine.stop()
        super.onStop()
    }

    override fun onDestroy() {
        analysisExecutor.shutdown()
        super.onDestroy()
    }

    /** (Re)load the session when the settings changed since the last load, or when forced (retry). */
    private fun loadIfNeeded(force: Boolean) {
        val settings = DemoSettings.load(this)
        if (force || settings != model.loadedSettings || model.engine.state.value == VljepaEngine.State.Idle) {
            model.loadedSettings = settings
            model.engine.load(settings)
        }
    }

    private fun openSettings() {
        model.engine.stop()
        startActivity(Intent(this, SettingsActivity::class.java))
    }

    private fun bindCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val preview = Preview.Builder().build()
            preview.setSurfaceProvider(previewView.surfaceProvider)
            // Small frames are enough (the core resizes to the model's img_size); keep only the newest one.
            val resolution = ResolutionSelector.Builder()
                .setResolutionStrategy(
                    ResolutionStrategy(Size(640, 480), ResolutionStrategy.FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER),
                )
                .build()
            val analysis = ImageAnalysis.Builder()
                .setResolutionSelector(resolution)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_YUV_420_888)
                .build()
            analysis.setAnalyzer(analysisExecutor) { image -> model.engine.offer(image) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun renderState(state: VljepaEngine.State) {
        statusText.text = when (state) {
            VljepaEngine.State.Idle -> getString(R.string.state_idle)
            VljepaEngine.State.Loading -> getString(R.string.state_loading)
            VljepaEngine.State.Ready -> getString(R.string.state_ready)
            VljepaEngine.State.Running -> getString(R.string.state_running)
            VljepaEngine.State.Error -> getString(R.string.state_error)
        }
        startStop.text = getString(if (state == VljepaEngine.State.Running) R.string.stop else R.string.start)
        startStop.isEnabled = state == VljepaEngine.State.Ready || state == VljepaEngine.State.Running
        if (state != VljepaEngine.State.Error) {
            errorPanel.visibility = View.GONE
        }
    }

    private fun renderFailure(failure: VljepaEngine.Failure?) {
        if (failure == null) {
            errorPanel.visibility = View.GONE
            return
        }
        val title = when (failure.kind) {
            VljepaEngine.FailureKind.Missing -> getString(R.string.error_missing_title)
            VljepaEngine.FailureKind.Refused -> getString(R.string.error_refused_title)
            VljepaEngine.FailureKind.SelfTestFailed -> getString(R.string.error_self_test_title)
            VljepaEngine.FailureKind.Failed -> getString(R.string.error_failed_title)
        }
        val hint = if (failure.kind == VljepaEngine.FailureKind.Missing) {
            getString(R.string.error_missing_hint, DemoSettings.load(this).artifactDir)
        } else {
            null
        }
        showError(title, failure.message, listOfNotNull(hint, failure.detail).joinToString("\n\n").ifEmpty { null })
    }

    private fun showError(title: String, message: String, detail: String?) {
        errorTitle.text = title
        errorMessage.text = message
        errorDetail.text = detail.orEmpty()
        errorDetail.visibility = if (detail.isNullOrEmpty()) View.GONE else View.VISIBLE
        errorPanel.visibility = View.VISIBLE
    }
}
