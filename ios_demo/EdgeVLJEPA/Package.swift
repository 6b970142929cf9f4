// swift-tools-version:5.9
//
// EdgeVLJEPA: the edge-vljepa native core for iOS, as a Swift package.
//
//   CEdgeVLJEPA  C/C++ target: the one C API (include/edge_vljepa.h, exposed to Swift through
//                include/module.modulemap) and the native core's C++17 sources. Both are symbolic links
//                into runtimes/native of this repository (include/edge_vljepa.h -> the header,
//                core -> runtimes/native/src), so the app compiles exactly the core the CLI and the tests
//                build; SwiftPM follows symbolic links to files and folders.
//   EdgeVLJEPA   Swift target: `actor VLJEPASession` owning the evj_session*, events as an AsyncStream,
//                errors as `VLJEPAError`, frames from CVPixelBuffer (BGRA, 420f/420v) by plane pointers.
//
// ExecuTorch comes prebuilt (xcframeworks) from the Swift package branch swiftpm-1.5.1 of pytorch/executorch:
// the version the exporter pins (pyproject.toml: executorch==1.5.1) and the core checks against every
// artifact's manifest (EVJ_EXECUTORCH_VERSION below). ExecuTorch registers backends and kernels from static
// initialisers; a static library whose symbols nothing references is dropped by the linker, and the model
// then fails at load time with "backend not registered" although the build succeeded. `-all_load` keeps
// every object of every static library (ExecuTorch's documented setting for Swift packages); an Xcode
// target may instead list `-force_load` per library (see ../README.md). Either way: force-load.
//
// The core also needs OpenCV (core, imgproc: colour conversion and resize), nlohmann/json and zlib (the
// SDK's libz). Requires Xcode 16 or newer (Swift 5.9 tools at least) and iOS 17 (ExecuTorch's minimum).

import PackageDescription

/// The ExecuTorch version of the exporter (pyproject.toml) and of the artifacts this app accepts.
let executorchVersion = "1.5.1"
/// The core's own version (runtimes/native/CMakeLists.txt: project VERSION).
let coreVersion = "1.0.0"

let package = Package(
    name: "EdgeVLJEPA",
    platforms: [
        .iOS(.v17),
        .macOS(.v14),
    ],
    products: [
        .library(name: "EdgeVLJEPA", targets: ["EdgeVLJEPA"]),
    ],
    dependencies: [
        // Prebuilt ExecuTorch runtime, backends and kernels (binary xcframeworks).
        .package(url: "https://github.com/pytorch/executorch.git", branch: "swiftpm-1.5.1"),
        // Prebuilt opencv2.xcframework (OpenCV's own iOS build, republished as a Swift package).
        .package(url: "https://github.com/yeatse/opencv-spm.git", exact: "4.10.0"),
        // Header-only JSON (its public header folder is single_include/nlohmann; see shim/).
        .package(url: "https://github.com/nlohmann/json.git", exact: "3.11.3"),
    ],
    targets: [
        .target(
            name: "CEdgeVLJEPA",
            dependencies: [
                .product(name: "executorch", package: "executorch"),
                .product(name: "backend_xnnpack", package: "executorch"),
                .product(name: "backend_coreml", package: "executorch"),
                .product(name: "kernels_optimized", package: "executorch"),
                .product(name: "kernels_quantized", package: "executorch"),
                .product(name: "OpenCV", package: "opencv-spm"),
                .product(name: "nlohmann-json", package: "json"),
            ],
            path: "Sources/CEdgeVLJEPA",
            sources: ["core"],
            publicHeadersPath: "include",
            cxxSettings: [
                .headerSearchPath("core"),
                .headerSearchPath("shim"),
                // As runtimes/native/CMakeLists.txt defines them for the core.
                .define("C10_USING_CUSTOM_GENERATED_MACROS"),
                .define("ET_USE_THREADPOOL"),
                .define("EVJ_EXECUTORCH_VERSION", to: "\"\(executorchVersion)\""),
                .define("EVJ_CORE_VERSION", to: "\"\(coreVersion)\""),
            ],
            linkerSettings: [
                .linkedLibrary("z"),
                .linkedLibrary("c++"),
                .linkedFramework("Accelerate"),
                .linkedFramework("CoreML"),
                // Force-load every static library so that XNNPACK, Core ML and the kernels register.
                .unsafeFlags(["-Wl,-all_load"]),
            ]
        ),
        .target(
            name: "EdgeVLJEPA",
            dependencies: ["CEdgeVLJEPA"],
            path: "Sources/EdgeVLJEPA",
            linkerSettings: [
                .linkedFramework("CoreVideo"),
            ]
        ),
    ],
    cxxLanguageStandard: .cxx17
)
