package org.edgevljepa.demo

import android.content.Context
import android.content.SharedPreferences
import java.io.File
import org.json.JSONObject

/**
 * What the user chooses in SettingsActivity, kept in SharedPreferences.
 *
 * artifactDir: an exported ExecuTorch artifact folder (manifest.json + .pte files), pushed with adb; by default
 * <external files dir>/artifacts/default, i.e. /sdcard/Android/data/org.edgevljepa.demo/files/artifacts/default
 * (README.md gives the adb commands, also for the internal files dir). labelsFile: one label per line, or empty
 * for the artifact's own label bank; a relative path is taken inside the artifact folder. policy: the core's
 * decode policy name, or empty for the artifact's default. policyParameter: the policy's main parameter (changepoint,
 * online: threshold; uniform: every_s; offline_segments: rate_hz); empty for its default.
 */
data class DemoSettings(
    val artifactDir: String,
    val query: String,
    val labelsFile: String,
    val policy: String,
    val policyParameter: String,
    val topK: Int = 3,
) {
    /** The parameter's name for the chosen policy, as edge_vljepa/streaming/policies.py names it. */
    fun parameterName(): String? = when (policy) {
        "changepoint", "online" -> "threshold"
        "uniform" -> "every_s"
        "offline_segments" -> "rate_hz"
        else -> null
    }

    /** The policy parameters as the JSON object evj_set_policy takes ("{}" = defaults). */
    fun policyParamsJson(): String {
        val name = parameterName()
        val value = policyParameter.trim()
        if (name == null || value.isEmpty()) {
            return "{}"
        }
        val number = value.toDoubleOrNull()
            ?: throw IllegalArgumentException("the $policy parameter $name must be a number, got '$value'")
        return JSONObject().put(name, number).toString()
    }

    /** The labels file's path, or null for the artifact's label bank. */
    fun labelsPath(): File? {
        val path = labelsFile.trim()
        if (path.isEmpty()) {
            return null
        }
        val file = File(path)
        return if (file.isAbsolute) file else File(artifactDir, path)
    }

    fun save(context: Context) {
        prefs(context).edit()
            .putString(KEY_ARTIFACT, artifactDir)
            .putString(KEY_QUERY, query)
            .putString(KEY_LABELS, labelsFile)
            .putString(KEY_POLICY, policy)
            .putString(KEY_PARAMETER, policyParameter)
            .putInt(KEY_TOP_K, topK)
            .apply()
    }

    companion object {
        const val DEFAULT_QUERY = "what is happening?"
        private const val PREFS = "edge_vljepa_settings"
        private const val KEY_ARTIFACT = "artifact_dir"
        private const val KEY_QUERY = "query"
        private const val KEY_LABELS = "labels_file"
        private const val KEY_POLICY = "policy"
        private const val KEY_PARAMETER = "policy_parameter"
        private const val KEY_TOP_K = "top_k"

        /** The policies the core knows; "" = the artifact's default. */
        val POLICIES = listOf("", "changepoint", "online", "uniform", "offline_segments")

        fun defaultArtifactDir(context: Context): String {
            val base = context.getExternalFilesDir(null) ?: context.filesDir
            return File(base, "artifacts/default").absolutePath
        }

        fun load(context: Context): DemoSettings {
            val p = prefs(context)
            return DemoSettings(
                artifactDir = p.getString(KEY_ARTIFACT, null) ?: defaultArtifactDir(context),
                query = p.getString(KEY_QUERY, null) ?: DEFAULT_QUERY,
                labelsFile = p.getString(KEY_LABELS, null).orEmpty(),
                policy = p.getString(KEY_POLICY, null).orEmpty(),
                policyParameter = p.getString(KEY_PARAMETER, null).orEmpty(),
                topK = p.getInt(KEY_TOP_K, 3),
            )
        }

        private fun prefs(context: Context): SharedPreferences =
            context.getSharedPreferences(PREFS, Context.MODE_PRIVATE)

        /** Labels of a file as the native CLI reads them: one per line, trimmed, blank lines skipped. */
        fun readLabels(file: File): List<String> {
            if (!file.isFile) {
                throw IllegalArgumentException("label file not found: ${file.absolutePath}")
            }
            val labels = file.readLines(Charsets.UTF_8).map { it.trim() }.filter { it.isNotEmpty() }
            if (labels.isEmpty()) {
                throw IllegalArgumentException("label file ${file.absolutePath} has no labels (one per line)")
            }
            return labels
        }
    }
}
