// VLJEPAError: an evj_status of the native core and its one-line message, as a Swift error.
//
// The core reports failures as a status code plus a message readable from evj_last_error() on the
// calling thread (and evj_session_error() for the session). Both are read right after the failing
// call, inside the same synchronous stretch of code, so the thread is still the one that failed.

import CEdgeVLJEPA
import Foundation

public struct VLJEPAError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// The core's status code (evj_status), or `VLJEPAError.appCode` for an error of this Swift layer.
    public let code: Int32
    /// The status's name as the core spells it ("EVJ_ERR_ARTIFACT"), or "EVJ_SWIFT" for this layer.
    public let statusName: String
    /// The one-line message of the core (or of this layer).
    public let message: String

    /// Code of errors raised by the Swift layer itself (unsupported pixel format, undecodable JSON).
    public static let appCode: Int32 = -1

    public init(code: Int32, statusName: String, message: String) {
        self.code = code
        self.statusName = statusName
        self.message = message
    }

    /// An error of the Swift layer (no core status).
    public static func app(_ message: String) -> VLJEPAError {
        VLJEPAError(code: appCode, statusName: "EVJ_SWIFT", message: message)
    }

    public var description: String { "\(statusName): \(message)" }
    public var errorDescription: String? { description }

    /// The artifact is unusable: bad manifest, missing or tampered file, other ExecuTorch version or contract.
    public var isRefusedArtifact: Bool {
        code == Self.raw(EVJ_ERR_ARTIFACT) || code == Self.raw(EVJ_ERR_VERSION) || code == Self.raw(EVJ_ERR_CONTRACT)
    }

    /// evj_self_test found outputs outside the manifest's tolerances.
    public var isSelfTestFailure: Bool { code == Self.raw(EVJ_ERR_SELF_TEST) }

    /// A setting was given during a stream (EVJ_ERR_STATE).
    public var isStateError: Bool { code == Self.raw(EVJ_ERR_STATE) }

    static func raw(_ status: evj_status) -> Int32 {
        Int32(truncatingIfNeeded: status.rawValue)
    }

    /// The error for a failed call: its status, and the message of this thread (or of the session).
    static func from(_ status: evj_status, session: OpaquePointer?) -> VLJEPAError {
        var message = String(cString: evj_last_error())
        if message.isEmpty, let session {
            message = String(cString: evj_session_error(session))
        }
        if message.isEmpty {
            message = "the core returned no message"
        }
        return VLJEPAError(code: raw(status), statusName: String(cString: evj_status_name(status)), message: message)
    }

    /// Throws the error of `status` unless it is EVJ_OK.
    static func check(_ status: evj_status, session: OpaquePointer?) throws {
        if status != EVJ_OK {
            throw from(status, session: session)
        }
    }
}
