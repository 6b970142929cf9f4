package org.edgevljepa.demo

import java.io.BufferedWriter
import java.io.File
import java.io.FileOutputStream
import java.io.OutputStreamWriter
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale

/**
 * Appends the core's event lines (one JSON object each, edge_vljepa/streaming/events.py's keys) to
 * <files dir>/events/events-<start time>.jsonl, one file per stream, flushed per event so a crash loses nothing.
 * Events only: no frame is ever written anywhere.
 */
class EventLog private constructor(val file: File, private val writer: BufferedWriter) : AutoCloseable {

    fun append(jsonLine: String) {
        writer.write(jsonLine)
        writer.newLine()
        writer.flush()
    }

    override fun close() {
        writer.close()
    }

    companion object {
        fun open(filesDir: File): EventLog {
            val dir = File(filesDir, "events")
            if (!dir.isDirectory && !dir.mkdirs()) {
                throw IllegalStateException("cannot create ${dir.absolutePath}")
            }
            val stamp = SimpleDateFormat("yyyyMMdd-HHmmss", Locale.US).format(Date())
            val file = File(dir, "events-$stamp.jsonl")
            val writer = BufferedWriter(OutputStreamWriter(FileOutputStream(file, true), Charsets.UTF_8))
            return EventLog(file, writer)
        }
    }
}
