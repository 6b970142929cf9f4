package org.edgevljepa.demo

import android.app.Application
import androidx.lifecycle.AndroidViewModel

/** Keeps the engine (and its thread and session) across activity re-creation; closes it with the activity's scope. */
class EngineViewModel(application: Application) : AndroidViewModel(application) {
    val engine = VljepaEngine(application.filesDir)

    /** The settings the current session was loaded with (null: nothing loaded yet). */
    var loadedSettings: DemoSettings? = null

    override fun onCleared() {
        engine.close()
    }
}
