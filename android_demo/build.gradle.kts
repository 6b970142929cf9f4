// Toolchain versions (also in README.md): Android Gradle Plugin 8.7.3, Gradle 8.11.1 (gradle/wrapper),
// Kotlin 2.0.21, NDK 27.2.12479018 (r27c), CMake 3.31.1 (SDK package), compileSdk 35, minSdk 28,
// CameraX 1.4.1, JDK 17.
plugins {
    id("com.android.application") version "8.7.3" apply false
    id("com.android.library") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.0.21" apply false
}

extra["evjCompileSdk"] = 35
extra["evjMinSdk"] = 28
extra["evjTargetSdk"] = 35
extra["evjNdkVersion"] = "27.2.12479018"
extra["evjCmakeVersion"] = "3.31.1"
extra["evjAbis"] = listOf("arm64-v8a", "x86_64")
