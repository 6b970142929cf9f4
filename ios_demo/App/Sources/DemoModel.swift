// The demo's state and its one visible loop:
//
//   artifact (imported or bundled) -> VLJEPASession (open: manifest, contract, versions, sha256)
//   -> selfTest (golden inputs) -> apply settings -> camera (newest-1 frames)
//   -> for each frame: await session.process(...)   (analysis waits while the model is busy)
//   -> events: overlay (AsyncStream) + JSON-lines log in Documents (sink)
//   -> stop: session.finish() -> summary
//
// A missing artifact, a refused one (the core's message) and a failed self-test each end on a clear screen
// (ContentView's StatusScreen) instead of a camera that silently does nothing.

import AVFoundation
import EdgeVLJEPA
import Foundation
import SwiftUI

struct StageTime: Equatable, Identifiable {
    let stage: String
    let milliseconds: Double
    var id: String { stage }
}

struct Overlay: Equatable {
    var topK: [Event.Label] = []
    var caption: String?
    var captionTime: Double?
    var stages: [StageTime] = []
    var windows = 0
    var decodes = 0
    /// Latest stream time seen in an event (seconds).
    var streamTime: Double = 0
    var memoryMB: Double?
    var cameraFrames = 0
    var droppedFrames = 0

    var decodesPerMinute: Double {
        streamTime > 0 ? 60 * Double(decodes) / streamTime : 0
    }
}

@MainActor
final class DemoModel: ObservableObject {
    enum Phase: Equatable {
        case idle
        case working(String)
        case noArtifact
        case refused(String)
        case selfTestFailed(String)
        case failed(String)
        case running
    }

    @Published private(set) var phase: Phase = .idle
    @Published private(set) var settings = DemoSettings.load()
    @Published private(set) var artifact: ArtifactSource?
    @Published private(set) var overlay = Overlay()
    @Published private(set) var info: SessionInfo?
    @Published private(set) var selfTest: SelfTestReport?
    @Published private(set) var lastSummary: String?
    @Published private(set) var logFolder: URL?

    let camera = CameraController()
    private let log = EventLog()
    private var session: VLJEPASession?
    private var eventsTask: Task<Void, Never>?
    private var analysisTask: Task<Void, Never>?
    private var monitorTask: Task<Void, Never>?
    private var stageMs: [String: Double] = [:]
    private var busy = false

    private static let stageOrder = ["preprocess", "x_encoder", "predictor", "label_bank", "y_decoder"]

    var coreVersions: String {
        "core \(VLJEPASession.coreVersion), ExecuTorch \(VLJEPASession.executorchVersion)"
    }

    // MARK: lifecycle

    /// Opens (or reuses) the session, checks it, applies the settings and starts the camera stream.
    func start() async {
        guard !busy, phase != .running else { return }
        busy = true
        defer { busy = false }

        guard let source = ArtifactStore.current() else {
            closeSession()
            artifact = nil
            phase = .noArtifact
            return
        }
        do {
            let session = try await openIfNeeded(source)
            phase = .working("Applying the settings…")
            try await session.apply(settings.sessionSettings)
            info = try await session.info()
            try await startStream(session)
        } catch is SelfTestFailed {
            // phase is .selfTestFailed with the core's message; the session was not kept.
        } catch let error as VLJEPAError {
            if error.isRefusedArtifact {
                closeSession()
                phase = .refused(error.description)
            } else {
                phase = .failed(error.description)
            }
        } catch {
            phase = .failed(error.localizedDescription)
        }
    }

    /// Stops the camera, lets the frame in flight finish, ends the stream (summary, log file).
    func stop() async {
        camera.stop()
        if let analysisTask {
            await analysisTask.value
        }
        analysisTask = nil
        monitorTask?.cancel()
        monitorTask = nil
        guard phase == .running, let session else { return }
        do {
            let summary = try await session.finish(sourceError: nil)
            lastSummary = summary.text
            try log.endStream(summary: summary)
            phase = .idle
        } catch {
            try? log.endStream(summary: nil)
            phase = .failed("Ending the stream failed: \(error.localizedDescription)")
        }
    }

    /// New settings: saved, then the stream restarts with them (settings change only between streams).
    func update(settings newSettings: DemoSettings) async {
        settings = newSettings
        newSettings.save()
        await stop()  // the camera's pixel format is set again at the next start
        if case .failed = phase {
            phase = .idle
        }
        await start()
    }

    /// A folder picked in the Files app: copied into the app, then opened.
    func importArtifact(_ url: URL) async {
        await stop()
        closeSession()
        phase = .working("Copying the artifact into the app…")
        do {
            try await ArtifactStore.importFolder(url)
        } catch {
            phase = .failed("Import failed: \(error.localizedDescription)")
            return
        }
        phase = .idle
        await start()
    }

    /// The Files picker failed (the picked folder could not be read).
    func reportImportFailure(_ error: Error) async {
        await stop()
        phase = .failed("Import failed: \(error.localizedDescription)")
    }

    /// Forgets the imported artifact (the bundled one, if any, is used again).
    func removeImportedArtifact() async {
        await stop()
        closeSession()
        do {
            try ArtifactStore.removeImported()
        } catch {
            phase = .failed("Could not remove the imported artifact: \(error.localizedDescription)")
            return
        }
        phase = .idle
        await start()
    }

    // MARK: steps

    private func openIfNeeded(_ source: ArtifactSource) async throws -> VLJEPASession {
        if let session, session.artifactDirectory == source.url, artifact == source {
            return session
        }
        closeSession()
        artifact = source
        phase = .working("Opening the artifact…")
        let url = source.url
        // evj_open reads the manifest, hashes every file and maps the programs: off the main thread.
        let opened = try await Task.detached(priority: .userInitiated) {
            try VLJEPASession(artifactDirectory: url)
        }.value

        phase = .working("Self-test on the artifact's golden inputs…")
        let report = try await opened.selfTest()
        selfTest = report
        guard report.passed else {
            let failing = report.methods.filter { !$0.value.passed }.keys.sorted().joined(separator: ", ")
            let message = report.message.isEmpty ? "methods outside tolerance: \(failing)" : report.message
            phase = .selfTestFailed(message)
            throw SelfTestFailed()
        }

        let log = self.log
        await opened.setEventSink { event in log.append(event) }
        session = opened
        eventsTask = Task { [weak self] in
            for await event in opened.events {
                self?.show(event)
            }
        }
        return opened
    }

    private struct SelfTestFailed: Error {}

    private func startStream(_ session: VLJEPASession) async throws {
        phase = .working("Starting the camera…")
        let frames = try await camera.start(pixelFormat: settings.cameraFormat.pixelFormat)
        try log.beginStream()
        logFolder = log.folder
        overlay = Overlay()
        stageMs = [:]
        phase = .running

        analysisTask = Task.detached(priority: .userInitiated) { [weak self] in
            for await frame in frames {
                do {
                    // The model's turn: newer frames replace the one buffered meanwhile.
                    try await session.process(pixelBuffer: frame.pixelBuffer, time: frame.time)
                } catch {
                    await self?.streamFailed(error, session: session)
                    return
                }
            }
        }
        monitorTask = Task { [weak self] in
            while !Task.isCancelled {
                self?.refreshMonitor()
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func streamFailed(_ error: Error, session: VLJEPASession) async {
        camera.stop()
        monitorTask?.cancel()
        monitorTask = nil
        analysisTask = nil
        let message = (error as? VLJEPAError)?.description ?? error.localizedDescription
        do {
            let summary = try await session.finish(sourceError: message)
            lastSummary = summary.text
            try log.endStream(summary: summary)
        } catch {
            try? log.endStream(summary: nil)
        }
        phase = .failed(message)
    }

    private func closeSession() {
        eventsTask?.cancel()
        eventsTask = nil
        session = nil  // the actor's deinit closes the core session
        info = nil
        selfTest = nil
    }

    // MARK: overlay

    private func show(_ event: Event) {
        overlay.windows = max(overlay.windows, event.window + 1)
        overlay.streamTime = max(overlay.streamTime, event.end)
        if !event.topk.isEmpty {
            overlay.topK = Array(event.topk.prefix(3))
        }
        if event.decode {
            overlay.decodes += 1
            if let text = event.text {
                overlay.caption = text
                overlay.captionTime = event.time
            }
        }
        stageMs.merge(event.ms) { _, new in new }
        overlay.stages = stageMs
            .sorted { lhs, rhs in
                let a = Self.stageOrder.firstIndex(of: lhs.key) ?? Int.max
                let b = Self.stageOrder.firstIndex(of: rhs.key) ?? Int.max
                return a != b ? a < b : lhs.key < rhs.key
            }
            .map { StageTime(stage: $0.key, milliseconds: $0.value) }
    }

    private func refreshMonitor() {
        overlay.memoryMB = MemoryMonitor.footprintMB()
        let counts = camera.counts
        overlay.cameraFrames = counts.delivered
        overlay.droppedFrames = counts.dropped
        if let failure = log.writeError, phase == .running {
            phase = .failed(failure)
            Task { await stop() }
        }
    }
}
