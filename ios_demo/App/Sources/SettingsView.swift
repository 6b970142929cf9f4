// Settings: the artifact (imported through the Files app, or bundled), the query, custom labels, the
// decode policy and its threshold, the camera's pixel format. Applied between streams: the running stream
// is finished (its summary written) and a new one starts with the new settings.

import EdgeVLJEPA
import SwiftUI
import UniformTypeIdentifiers

struct SettingsView: View {
    @EnvironmentObject private var model: DemoModel
    @Environment(\.dismiss) private var dismiss
    @State private var showImporter = false
    @State private var draft = DemoSettings()

    var body: some View {
        NavigationStack {
            Form {
                Section("Artifact") {
                    LabeledContent("Source", value: model.artifact?.title ?? "none")
                    if let info = model.info {
                        LabeledContent("Preset", value: info.preset ?? "?")
                        LabeledContent("Policy", value: info.policy ?? "?")
                        LabeledContent("Labels", value: "\(info.labels ?? 0) (\(info.labelsFrom ?? "?"))")
                    }
                    if let report = model.selfTest {
                        LabeledContent("Self-test", value: report.passed ? "passed" : "failed")
                    }
                    LabeledContent("Runtime", value: model.coreVersions)
                    Button("Import a folder from Files…") {
                        showImporter = true
                    }
                    if case .imported = model.artifact {
                        Button("Remove the imported artifact", role: .destructive) {
                            Task { await model.removeImportedArtifact() }
                            dismiss()
                        }
                    }
                }

                Section("Query") {
                    TextField("Artifact default", text: $draft.query, axis: .vertical)
                        .textInputAutocapitalization(.never)
                }

                Section {
                    TextEditor(text: $draft.labelsText)
                        .frame(minHeight: 100)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                    Stepper("Top-k: \(draft.topK)", value: $draft.topK, in: 1...10)
                } header: {
                    Text("Labels, one per line")
                } footer: {
                    Text("Empty: the artifact's label bank. Custom labels are embedded on the phone by the y_encoder.")
                }

                Section("Decode policy") {
                    Picker("Policy", selection: $draft.policy) {
                        ForEach(DemoSettings.Policy.allCases) { policy in
                            Text(policy.title).tag(policy)
                        }
                    }
                    switch draft.policy {
                    case .changepoint, .online:
                        VStack(alignment: .leading) {
                            Text("Threshold (cosine distance): \(draft.threshold, format: .number.precision(.fractionLength(3)))")
                            Slider(value: $draft.threshold, in: 0.01...1.0, step: 0.01)
                        }
                    case .uniform:
                        Stepper("Every \(draft.everySeconds, format: .number.precision(.fractionLength(1))) s",
                                value: $draft.everySeconds, in: 0.5...10, step: 0.5)
                    case .manifest, .offlineSegments:
                        EmptyView()
                    }
                }

                Section {
                    Picker("Pixel format", selection: $draft.cameraFormat) {
                        ForEach(DemoSettings.CameraFormat.allCases) { format in
                            Text(format.title).tag(format)
                        }
                    }
                } header: {
                    Text("Camera")
                } footer: {
                    Text("Frames are passed to the core by plane pointers; it converts and resizes them.")
                }

                if let folder = model.logFolder {
                    Section("Event log") {
                        Text("Files app > On My iPhone > EdgeVLJEPADemo > \(folder.lastPathComponent)")
                            .font(.footnote)
                    }
                }
                if let summary = model.lastSummary {
                    Section("Last stream") {
                        Text(summary)
                            .font(.caption.monospaced())
                            .textSelection(.enabled)
                    }
                }
            }
            .navigationTitle("Settings")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .cancellationAction) {
                    Button("Cancel") { dismiss() }
                }
                ToolbarItem(placement: .confirmationAction) {
                    Button("Apply") {
                        let settings = draft
                        dismiss()
                        Task { await model.update(settings: settings) }
                    }
                    .disabled(draft == model.settings)
                }
            }
            .onAppear { draft = model.settings }
            .fileImporter(isPresented: $showImporter, allowedContentTypes: [.folder]) { result in
                dismiss()
                switch result {
                case .success(let url):
                    Task { await model.importArtifact(url) }
                case .failure(let error):
                    Task { await model.reportImportFailure(error) }
                }
            }
        }
    }
}
