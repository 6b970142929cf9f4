// Where the artifact comes from: a folder imported through the Files app (copied into Application
// Support, because the core opens files by path and a security-scoped URL lapses), or a folder named
// "artifact" bundled with the app (ios_demo/App/Resources/artifact, see the README). An imported
// artifact wins over the bundled one.

import Foundation

enum ArtifactSource: Equatable {
    case imported(URL)
    case bundled(URL)

    var url: URL {
        switch self {
        case .imported(let url), .bundled(let url): return url
        }
    }

    var title: String {
        switch self {
        case .imported: return "Imported (Files)"
        case .bundled: return "Bundled with the app"
        }
    }
}

enum ArtifactStore {
    /// Application Support/Artifact: the imported copy.
    static var importedURL: URL {
        URL.applicationSupportDirectory.appending(path: "Artifact", directoryHint: .isDirectory)
    }

    static var bundledURL: URL? {
        Bundle.main.url(forResource: "artifact", withExtension: nil)
    }

    /// The artifact to open, nil when there is none (a folder counts when it has a manifest.json).
    static func current() -> ArtifactSource? {
        if hasManifest(importedURL) { return .imported(importedURL) }
        if let bundled = bundledURL, hasManifest(bundled) { return .bundled(bundled) }
        return nil
    }

    static func hasManifest(_ folder: URL) -> Bool {
        FileManager.default.fileExists(atPath: folder.appending(path: "manifest.json").path(percentEncoded: false))
    }

    /// Copies a folder picked in the Files app into the app (replacing a previous import).
    /// Runs off the main thread: artifacts are tens to hundreds of MB.
    static func importFolder(_ picked: URL) async throws {
        try await Task.detached(priority: .userInitiated) {
            let scoped = picked.startAccessingSecurityScopedResource()
            defer {
                if scoped { picked.stopAccessingSecurityScopedResource() }
            }
            guard ArtifactStore.hasManifest(picked) else {
                throw ImportError.noManifest(picked.lastPathComponent)
            }
            let fileManager = FileManager.default
            let destination = ArtifactStore.importedURL
            let staging = destination.deletingLastPathComponent()
                .appending(path: "Artifact-import", directoryHint: .isDirectory)
            try fileManager.createDirectory(at: staging.deletingLastPathComponent(), withIntermediateDirectories: true)
            if fileManager.fileExists(atPath: staging.path(percentEncoded: false)) {
                try fileManager.removeItem(at: staging)
            }
            try fileManager.copyItem(at: picked, to: staging)
            if fileManager.fileExists(atPath: destination.path(percentEncoded: false)) {
                try fileManager.removeItem(at: destination)
            }
            try fileManager.moveItem(at: staging, to: destination)
        }.value
    }

    /// Deletes the imported copy (the bundled artifact, if any, is used again).
    static func removeImported() throws {
        if FileManager.default.fileExists(atPath: importedURL.path(percentEncoded: false)) {
            try FileManager.default.removeItem(at: importedURL)
        }
    }

    enum ImportError: Error, LocalizedError {
        case noManifest(String)

        var errorDescription: String? {
            switch self {
            case .noManifest(let name):
                return "The folder \"\(name)\" has no manifest.json: pick the artifact folder written by "
                    + "python -m export.to_executorch (the one that contains manifest.json)."
            }
        }
    }
}
