// The JSON documents of the native core, decoded with Codable.
//
// Event: one line of the event stream, with exactly the keys of edge_vljepa/streaming/events.py:
//   {"time", "window", "start", "end", "topk": [{"label", "score"}], "decode", "text", "span", "ms"}
// The raw line is kept (`line`) so that a log written by the app is byte-for-byte what the core emitted
// and can be read back by the Python tools (edge_vljepa.streaming.events.read_events).

import Foundation

public struct Event: Codable, Sendable, Equatable {
    public struct Label: Codable, Sendable, Equatable, Hashable {
        public let label: String
        public let score: Double
    }

    /// Stream seconds the event describes (a window's centre, or a decoded segment's midpoint).
    public let time: Double
    public let window: Int
    /// The stream interval its embedding covers, in seconds.
    public let start: Double
    public let end: Double
    /// Labels of the label bank, best first (empty without a label bank).
    public let topk: [Label]
    public let decode: Bool
    /// The decoded text, when the policy decoded.
    public let text: String?
    /// First and last window (inclusive) of a decoded embedding; nil when nothing was decoded.
    public let span: [Int]?
    /// Milliseconds per stage that ran for this event ("preprocess", "x_encoder", "predictor", ...).
    public let ms: [String: Double]
    /// The JSON line as the core emitted it (not part of the JSON itself).
    public var line: String = ""

    private enum CodingKeys: String, CodingKey {
        case time, window, start, end, topk, decode, text, span, ms
    }

    /// Decodes one event line of the core.
    public static func decode(line: String) throws -> Event {
        do {
            var event = try JSONDecoder().decode(Event.self, from: Data(line.utf8))
            event.line = line
            return event
        } catch {
            throw VLJEPAError.app("undecodable event line (\(error.localizedDescription)): \(line.prefix(200))")
        }
    }
}

/// evj_info_json: what was opened and the effective settings.
public struct SessionInfo: Decodable, Sendable, Equatable {
    public let preset: String?
    public let contractHash: String?
    public let executorchVersion: String?
    public let query: String?
    /// Number of labels in the active label bank.
    public let labels: Int?
    public let labelsFrom: String?
    public let topK: Int?
    public let policy: String?
    public let stride: Int?
    public let threads: Int?
    /// The whole JSON document.
    public var json: String = ""

    private enum CodingKeys: String, CodingKey {
        case preset, query, labels, policy, stride, threads
        case contractHash = "contract_hash"
        case executorchVersion = "executorch_version"
        case labelsFrom = "labels_from"
        case topK = "top_k"
    }
}

/// The summary of a finished stream (evj_summary_json and evj_summary_text).
public struct StreamSummary: Decodable, Sendable, Equatable {
    public let windows: Int?
    public let decodes: Int?
    public let sourceFrames: Int?
    public let droppedFrames: Int?
    public let droppedEvents: Int?
    public let streamSeconds: Double?
    public let wallSeconds: Double?
    public let backendSeconds: Double?
    public let outsideBackendSeconds: Double?
    /// stage -> [p50, p90] milliseconds.
    public let stageMs: [String: [Double]]?
    public let error: String?
    public let interrupted: Bool?
    public let peakRssMB: Double?
    /// The summary as Python's StreamSummary.format() prints it.
    public var text: String = ""
    /// The JSON document.
    public var json: String = ""

    private enum CodingKeys: String, CodingKey {
        case windows, decodes, error, interrupted
        case sourceFrames = "source_frames"
        case droppedFrames = "dropped_frames"
        case droppedEvents = "dropped_events"
        case streamSeconds = "stream_s"
        case wallSeconds = "wall_s"
        case backendSeconds = "backend_s"
        case outsideBackendSeconds = "outside_backend_s"
        case stageMs = "stage_ms"
        case peakRssMB = "peak_rss_mb"
    }
}

/// evj_self_test: every method of the artifact's golden.npz against its recorded outputs.
public struct SelfTestReport: Decodable, Sendable, Equatable {
    public struct Method: Decodable, Sendable, Equatable {
        public let maxAbs: Double?
        public let tolerance: Double?
        public let passed: Bool

        private enum CodingKeys: String, CodingKey {
            case passed
            case maxAbs = "max_abs"
            case tolerance
        }
    }

    public let passed: Bool
    public let methods: [String: Method]
    /// The core's one-line message when the self-test failed ("" when it passed).
    public var message: String = ""
    /// The JSON report.
    public var json: String = ""

    private enum CodingKeys: String, CodingKey {
        case passed, methods
    }
}

func decodeJSON<T: Decodable>(_ type: T.Type, _ json: String, what: String) throws -> T {
    do {
        return try JSONDecoder().decode(type, from: Data(json.utf8))
    } catch {
        throw VLJEPAError.app("undecodable \(what) (\(error.localizedDescription)): \(json.prefix(200))")
    }
}
