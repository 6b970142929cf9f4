package org.edgevljepa.demo

import java.io.File
import java.util.Locale
import org.json.JSONObject

/** One ranked label of a window. */
data class RankedLabel(val label: String, val score: Double)

/**
 * What the overlay shows, folded from the core's events: the top-3 labels of the last window, the last decoded
 * caption and its stream time, the last window's per-stage milliseconds, decodes per minute of stream time, the
 * process's resident memory and the frames the keep-newest slot dropped.
 */
data class OverlayState(
    val topLabels: List<RankedLabel> = emptyList(),
    val caption: String? = null,
    val captionTime: Double? = null,
    val stageMs: Map<String, Double> = emptyMap(),
    val windows: Int = 0,
    val decodes: Int = 0,
    val firstTime: Double? = null,
    val lastTime: Double? = null,
    val residentMb: Double = 0.0,
    val droppedFrames: Long = 0,
) {
    /** Decodes per minute of stream time so far (0 before a minute's worth of windows is meaningful). */
    fun decodesPerMinute(): Double {
        val first = firstTime ?: return 0.0
        val last = lastTime ?: return 0.0
        val minutes = (last - first) / 60.0
        return if (minutes > 0) decodes / minutes else 0.0
    }

    /** Fold one event line into the state. */
    fun withEvent(jsonLine: String, residentMb: Double, droppedFrames: Long): OverlayState {
        val e = JSONObject(jsonLine)
        val time = e.getDouble("time")
        val topk = e.getJSONArray("topk")
        val labels = (0 until minOf(3, topk.length())).map {
            val item = topk.getJSONObject(it)
            RankedLabel(item.getString("label"), item.getDouble("score"))
        }
        val ms = e.getJSONObject("ms")
        val stages = ms.keys().asSequence().associateWith { ms.getDouble(it) }
        val decode = e.getBoolean("decode")
        val text = if (decode && !e.isNull("text")) e.getString("text") else null
        return copy(
            topLabels = if (labels.isEmpty()) topLabels else labels,
            caption = if (decode) text.orEmpty() else caption,
            captionTime = if (decode) time else captionTime,
            stageMs = stages,
            windows = maxOf(windows, e.getInt("window") + 1),
            decodes = decodes + if (decode) 1 else 0,
            firstTime = firstTime ?: time,
            lastTime = time,
            residentMb = residentMb,
            droppedFrames = droppedFrames,
        )
    }

    /** The overlay's text, one item per line. */
    fun format(): String {
        val lines = mutableListOf<String>()
        if (topLabels.isEmpty()) {
            lines += "waiting for the first window"
        } else {
            topLabels.forEachIndexed { i, l -> lines += String.format(Locale.US, "%d. %s  %.2f", i + 1, l.label, l.score) }
        }
        val c = caption
        val ct = captionTime
        if (c != null && ct != null) {
            lines += String.format(Locale.US, "caption @ %.1f s: %s", ct, if (c.isEmpty()) "(empty)" else c)
        }
        if (stageMs.isNotEmpty()) {
            lines += stageMs.entries.joinToString("  ") { String.format(Locale.US, "%s %.1f ms", it.key, it.value) }
        }
        lines += String.format(
            Locale.US, "windows %d  decodes %d (%.1f/min)  dropped %d  memory %.0f MB",
            windows, decodes, decodesPerMinute(), droppedFrames, residentMb,
        )
        return lines.joinToString("\n")
    }

    companion object {
        /** Resident memory of this process (VmRSS in /proc/self/status), in MB. */
        fun residentMb(): Double {
            val status = File("/proc/self/status")
            if (!status.canRead()) {
                return 0.0
            }
            val line = status.readLines().firstOrNull { it.startsWith("VmRSS:") } ?: return 0.0
            val kb = line.filter { it.isDigit() }.toLongOrNull() ?: return 0.0
            return kb / 1024.0
        }
    }
}
