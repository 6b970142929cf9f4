// edge-vljepa Android demo: lib/ (NativeSession + plain JNI over runtimes/native/include/edge_vljepa.h, the
// native core and ExecuTorch v1.5.1 built from source with the NDK) and app/ (CameraX live demo).
// Open this folder (android_demo/) in Android Studio; see README.md for the toolchain versions.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "edge-vljepa-android"
include(":lib")
include(":app")
