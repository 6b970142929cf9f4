// The screen: the camera with the overlay while running; otherwise a clear status screen that says what
// is wrong (no artifact, refused artifact with the core's message, failed self-test, other failure) and
// what to do about it.

import EdgeVLJEPA
import SwiftUI
import UniformTypeIdentifiers

struct ContentView: View {
    @EnvironmentObject private var model: DemoModel
    @Environment(\.scenePhase) private var scenePhase
    @State private var showSettings = false
    @State private var showImporter = false

    var body: some View {
        NavigationStack {
            ZStack {
                Color.black.ignoresSafeArea()
                if model.phase == .running {
                    CameraPreview(session: model.camera.captureSession)
                        .ignoresSafeArea()
                    OverlayView(overlay: model.overlay)
                } else {
                    StatusScreen(phase: model.phase,
                                 importArtifact: { showImporter = true },
                                 openSettings: { showSettings = true },
                                 retry: { Task { await model.start() } })
                }
            }
            .navigationTitle("VL-JEPA")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .topBarLeading) {
                    if model.phase == .running {
                        Button("Stop") { Task { await model.stop() } }
                    } else {
                        Button("Start") { Task { await model.start() } }
                    }
                }
                ToolbarItem(placement: .topBarTrailing) {
                    Button {
                        showSettings = true
                    } label: {
                        Image(systemName: "gearshape")
                    }
                    .accessibilityLabel("Settings")
                }
            }
            .sheet(isPresented: $showSettings) {
                SettingsView()
                    .environmentObject(model)
            }
            .fileImporter(isPresented: $showImporter, allowedContentTypes: [.folder]) { result in
                switch result {
                case .success(let url):
                    Task { await model.importArtifact(url) }
                case .failure(let error):
                    Task { await model.reportImportFailure(error) }
                }
            }
        }
        .task { await model.start() }
        .onChange(of: scenePhase) { _, newPhase in
            switch newPhase {
            case .background:
                Task { await model.stop() }
            case .active:
                Task { await model.start() }
            default:
                break
            }
        }
    }
}

struct OverlayView: View {
    let overlay: Overlay

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            VStack(alignment: .leading, spacing: 4) {
                ForEach(Array(overlay.topK.enumerated()), id: \.offset) { index, label in
                    HStack {
                        Text(label.label)
                            .font(index == 0 ? .headline : .subheadline)
                            .lineLimit(1)
                        Spacer()
                        Text(label.score, format: .number.precision(.fractionLength(2)))
                            .font(.subheadline.monospacedDigit())
                    }
                }
                if overlay.topK.isEmpty {
                    Text("waiting for the first window…").font(.subheadline)
                }
            }
            if let caption = overlay.caption {
                VStack(alignment: .leading, spacing: 2) {
                    Text(caption).font(.body.weight(.semibold))
                    if let time = overlay.captionTime {
                        Text("at \(time, format: .number.precision(.fractionLength(1))) s")
                            .font(.caption)
                    }
                }
            }
            Spacer()
            VStack(alignment: .leading, spacing: 2) {
                Text(overlay.stages.map { "\($0.stage) \(String(format: "%.1f", $0.milliseconds))" }
                    .joined(separator: "  ") + (overlay.stages.isEmpty ? "" : "  ms"))
                Text(String(format: "windows %ld  decodes %ld  (%.1f / min)", overlay.windows, overlay.decodes,
                            overlay.decodesPerMinute))
                Text(String(format: "camera frames %ld  dropped %ld  memory %@", overlay.cameraFrames,
                            overlay.droppedFrames,
                            overlay.memoryMB.map { String(format: "%.0f MB", $0) } ?? "n/a"))
            }
            .font(.caption.monospacedDigit())
        }
        .foregroundStyle(.white)
        .padding()
        .background(LinearGradient(colors: [.black.opacity(0.65), .clear, .black.opacity(0.65)],
                                   startPoint: .top, endPoint: .bottom))
    }
}

struct StatusScreen: View {
    let phase: DemoModel.Phase
    let importArtifact: () -> Void
    let openSettings: () -> Void
    let retry: () -> Void

    var body: some View {
        VStack(spacing: 16) {
            Image(systemName: symbol)
                .font(.system(size: 48))
            Text(title)
                .font(.title2.bold())
                .multilineTextAlignment(.center)
            if !message.isEmpty {
                Text(message)
                    .font(.body.monospaced())
                    .multilineTextAlignment(.center)
                    .textSelection(.enabled)
            }
            if case .working = phase {
                ProgressView()
            } else {
                VStack(spacing: 10) {
                    Button("Import an artifact folder (Files)", action: importArtifact)
                        .buttonStyle(.borderedProminent)
                    Button("Settings", action: openSettings)
                    Button("Retry", action: retry)
                }
            }
        }
        .foregroundStyle(.white)
        .padding(24)
    }

    private var symbol: String {
        switch phase {
        case .noArtifact: return "folder.badge.questionmark"
        case .refused: return "xmark.octagon"
        case .selfTestFailed: return "exclamationmark.triangle"
        case .failed: return "exclamationmark.circle"
        case .working: return "hourglass"
        case .idle, .running: return "video"
        }
    }

    private var title: String {
        switch phase {
        case .noArtifact: return "No artifact"
        case .refused: return "The artifact was refused"
        case .selfTestFailed: return "The artifact failed its self-test"
        case .failed: return "Stopped on an error"
        case .working(let what): return what
        case .idle: return "Stopped"
        case .running: return ""
        }
    }

    private var message: String {
        switch phase {
        case .noArtifact:
            return "Export one with `python -m export.to_executorch --out DIR`, then import DIR here "
                + "(Files app: On My iPhone, iCloud Drive, or a Mac through Finder), or bundle it as "
                + "ios_demo/App/Resources/artifact."
        case .refused(let message), .selfTestFailed(let message), .failed(let message):
            return message
        case .working, .idle, .running:
            return ""
        }
    }
}
