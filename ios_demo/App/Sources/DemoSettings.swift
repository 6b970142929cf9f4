// The demo's settings (same as the Android app's): query, labels, decode policy and its threshold,
// plus the camera's pixel format. Persisted in UserDefaults as JSON; turned into the session's settings.

import CoreVideo
import EdgeVLJEPA
import Foundation

struct DemoSettings: Codable, Equatable {
    enum Policy: String, Codable, CaseIterable, Identifiable {
        case manifest
        case uniform
        case changepoint
        case online
        case offlineSegments = "offline_segments"

        var id: String { rawValue }

        var title: String {
            switch self {
            case .manifest: return "Artifact default"
            case .uniform: return "Uniform (every N s)"
            case .changepoint: return "Change point (once a change settled)"
            case .online: return "Online (change detection)"
            case .offlineSegments: return "Offline segments (at stop)"
            }
        }
    }

    enum CameraFormat: String, Codable, CaseIterable, Identifiable {
        case bgra
        case yuv420VideoRange

        var id: String { rawValue }
        var title: String { self == .bgra ? "BGRA" : "420v (NV12)" }
        var pixelFormat: OSType {
            self == .bgra ? kCVPixelFormatType_32BGRA : kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange
        }
    }

    /// The predictor's query; empty: the artifact's caption query.
    var query: String = ""
    /// Custom labels, one per line; empty: the artifact's label bank.
    var labelsText: String = ""
    var topK: Int = 3
    var policy: Policy = .manifest
    /// changepoint, online: cosine distance that counts as a change (0 < threshold < 2).
    var threshold: Double = 0.1
    /// uniform: seconds between decodes.
    var everySeconds: Double = 1.0
    var cameraFormat: CameraFormat = .bgra

    var labels: [String] {
        labelsText.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    /// The policy's parameters as the core reads them (edge_vljepa/streaming/policies.py names).
    var policyParametersJSON: String? {
        let parameters: [String: Double]
        switch policy {
        case .manifest: return nil
        case .uniform: parameters = ["every_s": everySeconds]
        case .changepoint, .online: parameters = ["threshold": threshold]
        case .offlineSegments: return "{}"
        }
        guard let data = try? JSONSerialization.data(withJSONObject: parameters, options: [.sortedKeys]) else {
            return nil
        }
        return String(decoding: data, as: UTF8.self)
    }

    var sessionSettings: VLJEPASession.Settings {
        VLJEPASession.Settings(
            query: query.isEmpty ? nil : query,
            labels: labels,
            topK: Int32(max(1, topK)),
            policy: policy == .manifest ? nil : policy.rawValue,
            policyParametersJSON: policyParametersJSON)
    }

    private static let defaultsKey = "edge-vljepa.settings"

    static func load() -> DemoSettings {
        guard let data = UserDefaults.standard.data(forKey: defaultsKey),
              let settings = try? JSONDecoder().decode(DemoSettings.self, from: data)
        else { return DemoSettings() }
        return settings
    }

    func save() {
        if let data = try? JSONEncoder().encode(self) {
            UserDefaults.standard.set(data, forKey: Self.defaultsKey)
        }
    }
}
