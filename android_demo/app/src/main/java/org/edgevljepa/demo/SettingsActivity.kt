package org.edgevljepa.demo

import android.os.Bundle
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.Spinner
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity

/**
 * Settings: the artifact folder (with the adb commands that put an artifact there), the query, a labels file,
 * the decode policy and its parameter. Saved to SharedPreferences; MainActivity reloads the session when they
 * changed.
 */
class SettingsActivity : AppCompatActivity() {

    private lateinit var artifactDir: EditText
    private lateinit var query: EditText
    private lateinit var labelsFile: EditText
    private lateinit var policy: Spinner
    private lateinit var parameter: EditText
    private lateinit var parameterLabel: TextView
    private lateinit var adbHint: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_settings)
        artifactDir = findViewById(R.id.artifact_dir)
        query = findViewById(R.id.query)
        labelsFile = findViewById(R.id.labels_file)
        policy = findViewById(R.id.policy)
        parameter = findViewById(R.id.policy_parameter)
        parameterLabel = findViewById(R.id.policy_parameter_label)
        adbHint = findViewById(R.id.adb_hint)

        val current = DemoSettings.load(this)
        artifactDir.setText(current.artifactDir)
        query.setText(current.query)
        labelsFile.setText(current.labelsFile)
        parameter.setText(current.policyParameter)
        adbHint.text = getString(R.string.settings_adb_hint, DemoSettings.defaultArtifactDir(this), packageName)

        val names = resources.getStringArray(R.array.policy_names)
        policy.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, names)
        policy.setSelection(DemoSettings.POLICIES.indexOf(current.policy).coerceAtLeast(0))
        policy.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) {
                showParameterName(DemoSettings.POLICIES[position])
            }

            override fun onNothingSelected(parent: AdapterView<*>?) {
                showParameterName("")
            }
        }
        showParameterName(current.policy)

        findViewById<Button>(R.id.save).setOnClickListener { save() }
    }

    private fun showParameterName(policyName: String) {
        val probe = DemoSettings("", "", "", policyName, "")
        val name = probe.parameterName()
        parameterLabel.text = if (name == null) getString(R.string.settings_parameter_none) else getString(R.string.settings_parameter, name)
        parameter.isEnabled = name != null
    }

    private fun save() {
        val settings = DemoSettings(
            artifactDir = artifactDir.text.toString().trim(),
            query = query.text.toString(),
            labelsFile = labelsFile.text.toString().trim(),
            policy = DemoSettings.POLICIES[policy.selectedItemPosition.coerceAtLeast(0)],
            policyParameter = parameter.text.toString().trim(),
        )
        try {
            settings.policyParamsJson()
        } catch (e: IllegalArgumentException) {
            parameter.error = e.message
            return
        }
        settings.save(this)
        finish()
    }
}
