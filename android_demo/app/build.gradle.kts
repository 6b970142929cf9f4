// app/: the live-camera demo. CameraX preview + ImageAnalysis (keep only the latest frame, YUV_420_888 planes
// handed to the core as direct buffers), one engine thread owning the NativeSession, an overlay, settings.
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

val cameraxVersion = "1.4.1"

android {
    namespace = "org.edgevljepa.demo"
    compileSdk = rootProject.extra["evjCompileSdk"] as Int
    ndkVersion = rootProject.extra["evjNdkVersion"] as String

    defaultConfig {
        applicationId = "org.edgevljepa.demo"
        minSdk = rootProject.extra["evjMinSdk"] as Int
        targetSdk = rootProject.extra["evjTargetSdk"] as Int
        versionCode = 1
        versionName = "1.0.0"
        ndk {
            @Suppress("UNCHECKED_CAST")
            abiFilters += rootProject.extra["evjAbis"] as List<String>
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"))
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    kotlinOptions {
        jvmTarget = "17"
    }

    packaging {
        // Stored uncompressed and 16 KB-aligned in the APK (AGP >= 8.5.1 aligns them), loaded in place.
        jniLibs {
            useLegacyPackaging = false
        }
    }
}

dependencies {
    implementation(project(":lib"))
    implementation("androidx.core:core-ktx:1.15.0")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    implementation("androidx.camera:camera-core:$cameraxVersion")
    implementation("androidx.camera:camera-camera2:$cameraxVersion")
    implementation("androidx.camera:camera-lifecycle:$cameraxVersion")
    implementation("androidx.camera:camera-view:$cameraxVersion")
}
