// VLJEPASession: one artifact + settings + one stream of the native core, as a Swift actor.
//
// The actor owns the evj_session* (whisper.cpp's LibWhisper.swift pattern: an actor around a C context):
// every engine call (open, settings, process, finish, self-test) runs on the actor, so the core sees one
// engine caller at a time as edge_vljepa.h requires; the session is closed in deinit (or by close()).
//
// Events: the session queues them in the core (no C callback); after each call that can emit events the
// actor drains evj_next_event, decodes each JSON line (Codable `Event`) and yields it to `events`, an
// AsyncStream that ends when the session closes. An optional sink (`setEventSink`) also receives each event
// synchronously, before the call returns: what a log needs to close a stream's file deterministically.
//
// Frames: `process(pixelBuffer:time:)` runs the loop on one frame now (the app feeds it from a newest-1
// stream, so analysis simply waits while the model is busy). `push(pixelBuffer:time:)` is the core's
// keep-newest slot for a camera thread (callable from any thread, never blocks on the model) drained by
// `processPending(timeoutMilliseconds:)`.

import CEdgeVLJEPA
import CoreVideo
import Foundation

/// The evj_session* as a value that may cross actor boundaries: the core allows evj_push_frame and
/// evj_dropped_frames from any thread; everything else goes through the actor.
struct SessionHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

public actor VLJEPASession {
    /// Settings applied with `apply(_:)`; nil / empty fields keep the artifact's defaults.
    public struct Settings: Sendable, Equatable, Codable {
        /// The predictor's text query; nil: the manifest's caption query.
        public var query: String?
        /// Custom labels (embedded on the device by the y_encoder); empty: the artifact's label bank.
        public var labels: [String]
        /// Labels reported per window (>= 1).
        public var topK: Int32
        /// "uniform", "online", "changepoint" or "offline_segments"; nil: the manifest's default policy.
        public var policy: String?
        /// The policy's parameters as a JSON object (names as in edge_vljepa/streaming/policies.py).
        public var policyParametersJSON: String?
        /// Model frames between window starts; nil: the manifest's default.
        public var stride: Int32?
        /// Selective encoding as a JSON object ({"max_skip", "stable", "pixel"}); nil: the manifest's
        /// default (off unless the artifact says otherwise).
        public var skipParametersJSON: String?
        /// ExecuTorch CPU threads (process-wide); 0: the runtime's default.
        public var threads: Int32

        public init(query: String? = nil, labels: [String] = [], topK: Int32 = 3, policy: String? = nil,
                    policyParametersJSON: String? = nil, stride: Int32? = nil,
                    skipParametersJSON: String? = nil, threads: Int32 = 0) {
            self.query = query
            self.labels = labels
            self.topK = topK
            self.policy = policy
            self.policyParametersJSON = policyParametersJSON
            self.stride = stride
            self.skipParametersJSON = skipParametersJSON
            self.threads = threads
        }
    }

    /// The core's version ("1.0.0").
    public static var coreVersion: String { String(cString: evj_version()) }
    /// The ExecuTorch version the core was built against; artifacts must have been exported with it.
    public static var executorchVersion: String { String(cString: evj_executorch_version()) }

    /// Every event of the session, in order; finishes when the session is closed.
    public nonisolated let events: AsyncStream<Event>
    /// The artifact directory this session opened.
    public nonisolated let artifactDirectory: URL

    private let handle: SessionHandle
    private let continuation: AsyncStream<Event>.Continuation
    private var closed = false
    private var sink: (@Sendable (Event) -> Void)?

    /// Opens an artifact directory (manifest.json + component files). Throws the core's refusal:
    /// EVJ_ERR_ARTIFACT / EVJ_ERR_VERSION / EVJ_ERR_CONTRACT (see `VLJEPAError.isRefusedArtifact`).
    public init(artifactDirectory: URL, expectedContractHash: String? = nil) throws {
        var opened: OpaquePointer?
        let status = artifactDirectory.withUnsafeFileSystemRepresentation { path -> evj_status in
            withOptionalCString(expectedContractHash) { hash in
                evj_open(path, hash, &opened)
            }
        }
        try VLJEPAError.check(status, session: nil)
        guard let raw = opened else {
            throw VLJEPAError.app("evj_open returned EVJ_OK without a session")
        }
        // Queue events in the core; the actor drains them (no C callback crosses into Swift).
        let callbackStatus = evj_set_event_callback(raw, nil, nil)
        if callbackStatus != EVJ_OK {
            let error = VLJEPAError.from(callbackStatus, session: raw)
            _ = evj_close(raw)
            throw error
        }
        self.handle = SessionHandle(raw: raw)
        self.artifactDirectory = artifactDirectory
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(4096))
        self.events = stream
        self.continuation = continuation
    }

    deinit {
        // Closing twice is EVJ_OK in the core: close() may already have run.
        _ = evj_close(handle.raw)
        continuation.finish()
    }

    /// Closes the session now; later calls throw EVJ_ERR_CLOSED.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = evj_close(handle.raw)
        continuation.finish()
    }

    /// Receives every event synchronously on the session, before the call that emitted it returns
    /// (in addition to `events`); nil removes it.
    public func setEventSink(_ sink: (@Sendable (Event) -> Void)?) {
        self.sink = sink
    }

    // MARK: settings (before the first frame of a stream, or after finish)

    /// Applies every field of `settings` (EVJ_ERR_STATE during a stream: call `finish` first).
    public func apply(_ settings: Settings) throws {
        let s = handle.raw
        if let query = settings.query {
            try VLJEPAError.check(evj_set_query(s, query), session: s)
        }
        try setLabels(settings.labels)
        try VLJEPAError.check(evj_set_top_k(s, settings.topK), session: s)
        let policyStatus = withOptionalCString(settings.policy) { name in
            withOptionalCString(settings.policyParametersJSON) { params in
                evj_set_policy(s, name, params)
            }
        }
        try VLJEPAError.check(policyStatus, session: s)
        if let stride = settings.stride {
            try VLJEPAError.check(evj_set_stride(s, stride), session: s)
        }
        let skipStatus = withOptionalCString(settings.skipParametersJSON) { params in evj_set_skip(s, params) }
        try VLJEPAError.check(skipStatus, session: s)
        try VLJEPAError.check(evj_set_threads(s, settings.threads), session: s)
    }

    /// Custom labels embedded on the device; an empty list restores the artifact's label bank.
    public func setLabels(_ labels: [String]) throws {
        let s = handle.raw
        if labels.isEmpty {
            try VLJEPAError.check(evj_set_labels(s, nil, 0), session: s)
            return
        }
        let copies: [UnsafeMutablePointer<CChar>?] = labels.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        if copies.contains(where: { $0 == nil }) {
            throw VLJEPAError.app("out of memory copying \(labels.count) labels")
        }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        let status = pointers.withUnsafeBufferPointer { buffer in
            evj_set_labels(s, buffer.baseAddress, buffer.count)
        }
        try VLJEPAError.check(status, session: s)
    }

    /// What was opened and the effective settings (evj_info_json).
    public func info() throws -> SessionInfo {
        let s = handle.raw
        var out: UnsafePointer<CChar>?
        try VLJEPAError.check(evj_info_json(s, &out), session: s)
        let json = out.map { String(cString: $0) } ?? "{}"
        var info = try decodeJSON(SessionInfo.self, json, what: "session info")
        info.json = json
        return info
    }

    // MARK: frames

    /// Runs the loop on one frame now (synchronous in the core); returns the events it emitted, which
    /// are also yielded to `events`. `time`: stream seconds, non-decreasing within a stream.
    @discardableResult
    public func process(pixelBuffer: CVPixelBuffer, time: Double) throws -> [Event] {
        let s = handle.raw
        try PixelFrame.with(pixelBuffer, timestamp: time) { frame in
            try VLJEPAError.check(evj_process_frame(s, frame), session: s)
        }
        return try drainEvents()
    }

    /// The keep-newest slot, from any thread: copies the frame into the core and returns at once; a frame
    /// not yet processed is replaced and counted as dropped (`droppedFrames`).
    public nonisolated func push(pixelBuffer: CVPixelBuffer, time: Double) throws {
        let s = handle.raw
        try PixelFrame.with(pixelBuffer, timestamp: time) { frame in
            try VLJEPAError.check(evj_push_frame(s, frame), session: s)
        }
    }

    /// Processes the pushed frame, waiting up to `timeoutMilliseconds` for one (0: don't wait).
    /// Returns whether a frame was processed.
    @discardableResult
    public func processPending(timeoutMilliseconds: Int32 = 0) throws -> Bool {
        let s = handle.raw
        var processed: Int32 = 0
        try VLJEPAError.check(evj_process_pending(s, timeoutMilliseconds, &processed), session: s)
        _ = try drainEvents()
        return processed != 0
    }

    /// Frames replaced in the keep-newest slot before they were processed, this stream (-1 when closed).
    public nonisolated var droppedFrames: Int64 { evj_dropped_frames(handle.raw) }

    /// The L2-normalised embedding of the last processed window (empty before any window).
    public func lastEmbedding() throws -> [Float] {
        let s = handle.raw
        var dataPointer: UnsafePointer<Float>?
        var dim = 0
        try VLJEPAError.check(evj_last_embedding(s, &dataPointer, &dim), session: s)
        guard let data = dataPointer, dim > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: dim))
    }

    // MARK: end of stream

    /// Ends the stream: offline policies decode now, the summary is computed, the next frame starts a new
    /// stream. `sourceError`: why the source broke mid-stream, reported in the summary.
    @discardableResult
    public func finish(sourceError: String? = nil) throws -> StreamSummary {
        let s = handle.raw
        let status = withOptionalCString(sourceError) { reason in
            evj_finish(s, reason)
        }
        try VLJEPAError.check(status, session: s)
        _ = try drainEvents()
        return try summary()
    }

    /// The summary of the last finished stream (EVJ_ERR_STATE before the first `finish`).
    public func summary() throws -> StreamSummary {
        let s = handle.raw
        var text: UnsafePointer<CChar>?
        try VLJEPAError.check(evj_summary_text(s, &text), session: s)
        let summaryText = text.map { String(cString: $0) } ?? ""
        var json: UnsafePointer<CChar>?
        try VLJEPAError.check(evj_summary_json(s, &json), session: s)
        let summaryJSON = json.map { String(cString: $0) } ?? "{}"
        var summary = try decodeJSON(StreamSummary.self, summaryJSON, what: "stream summary")
        summary.text = summaryText
        summary.json = summaryJSON
        return summary
    }

    // MARK: self-test

    /// Runs the artifact's golden inputs and compares with its recorded outputs. A failed comparison is
    /// returned as `passed == false` with the core's message; any other failure throws.
    public func selfTest() throws -> SelfTestReport {
        let s = handle.raw
        var out: UnsafePointer<CChar>?
        let status = evj_self_test(s, &out)
        var message = ""
        if status != EVJ_OK {
            let error = VLJEPAError.from(status, session: s)
            guard error.isSelfTestFailure, out != nil else { throw error }
            message = error.message
        }
        let json = out.map { String(cString: $0) } ?? "{}"
        var report = try decodeJSON(SelfTestReport.self, json, what: "self-test report")
        report.message = message
        report.json = json
        return report
    }

    // MARK: events

    /// Moves every queued event line of the core into `events`; returns them in order.
    private func drainEvents() throws -> [Event] {
        let s = handle.raw
        var drained: [Event] = []
        var firstFailure: VLJEPAError?
        while true {
            var linePointer: UnsafePointer<CChar>?
            try VLJEPAError.check(evj_next_event(s, &linePointer), session: s)
            guard let cLine = linePointer else { break }
            do {
                let event = try Event.decode(line: String(cString: cLine))
                drained.append(event)
                sink?(event)
                continuation.yield(event)
            } catch let error as VLJEPAError {
                firstFailure = firstFailure ?? error
            }
        }
        if let firstFailure {
            throw firstFailure
        }
        return drained
    }
}

/// Calls `body` with a C string for `string`, or NULL for nil.
func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let string else { return try body(nil) }
    return try string.withCString { try body($0) }
}
