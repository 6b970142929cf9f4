// Events as JSON lines in the app's Documents folder (visible in the Files app): one file per stream,
// Documents/events/events-<date>.jsonl, each line exactly as the core emitted it (readable by
// edge_vljepa.streaming.events.read_events), written through at once so a crash keeps what was written.
// The stream's summary goes beside it (summary-<date>.json and .txt). Never frames.
//
// Thread-safe: the session's event sink calls `append` on the session's executor.

import EdgeVLJEPA
import Foundation

final class EventLog: @unchecked Sendable {
    let folder = URL.documentsDirectory.appending(path: "events", directoryHint: .isDirectory)

    private let lock = NSLock()
    private var handle: FileHandle?
    private var stem = ""
    private var failure: String?

    /// The file of the current stream, nil between streams.
    private(set) var currentURL: URL?

    /// The first write error of the current stream, if any.
    var writeError: String? {
        lock.lock()
        defer { lock.unlock() }
        return failure
    }

    /// Opens a new file for a new stream.
    func beginStream() throws {
        lock.lock()
        defer { lock.unlock() }
        try? handle?.close()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        stem = formatter.string(from: Date())
        let url = folder.appending(path: "events-\(stem).jsonl")
        FileManager.default.createFile(atPath: url.path(percentEncoded: false), contents: nil)
        handle = try FileHandle(forWritingTo: url)
        currentURL = url
        failure = nil
    }

    /// Appends one event line (ignored between streams).
    func append(_ event: Event) {
        lock.lock()
        defer { lock.unlock() }
        guard let handle else { return }
        do {
            try handle.write(contentsOf: Data((event.line + "\n").utf8))
        } catch {
            failure = failure ?? "could not write \(currentURL?.lastPathComponent ?? "the event log"): "
                + error.localizedDescription
        }
    }

    /// Closes the stream's file and writes its summary beside it.
    func endStream(summary: StreamSummary?) throws {
        lock.lock()
        defer { lock.unlock() }
        try? handle?.close()
        handle = nil
        currentURL = nil
        if let summary {
            try Data(summary.json.utf8).write(to: folder.appending(path: "summary-\(stem).json"), options: .atomic)
            try Data((summary.text + "\n").utf8).write(to: folder.appending(path: "summary-\(stem).txt"),
                                                     options: .atomic)
        }
    }
}
