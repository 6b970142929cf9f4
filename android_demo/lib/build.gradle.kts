// lib/: the Java class the app talks to (org.edgevljepa.NativeSession, no android.* import) and
// libedge_vljepa_jni.so = the JNI bridge + the native core (runtimes/native/src) + ExecuTorch v1.5.1's C++
// runtime (XNNPACK backend, optimized and quantized kernels), all built from source by the NDK through
// src/main/cpp/CMakeLists.txt, linked for 16 KB pages.
plugins {
    id("com.android.library")
}

val evjExecutorchDir = (findProperty("evj.executorchDir") as String?).orEmpty()
val evjPython = (findProperty("evj.python") as String?).orEmpty()

android {
    namespace = "org.edgevljepa"
    compileSdk = rootProject.extra["evjCompileSdk"] as Int
    ndkVersion = rootProject.extra["evjNdkVersion"] as String

    defaultConfig {
        minSdk = rootProject.extra["evjMinSdk"] as Int
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            @Suppress("UNCHECKED_CAST")
            abiFilters += rootProject.extra["evjAbis"] as List<String>
        }
        externalNativeBuild {
            cmake {
                targets += "edge_vljepa_jni"
                arguments += listOf("-DANDROID_STL=c++_static", "-DCMAKE_BUILD_TYPE=Release")
                if (evjExecutorchDir.isNotEmpty()) {
                    arguments += "-DEXECUTORCH_SOURCE_DIR=$evjExecutorchDir"
                }
                if (evjPython.isNotEmpty()) {
                    arguments += "-DPYTHON_EXECUTABLE=$evjPython"
                }
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = rootProject.extra["evjCmakeVersion"] as String
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}
