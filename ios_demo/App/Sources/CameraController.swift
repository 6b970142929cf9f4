// The camera: AVCaptureSession -> AVCaptureVideoDataOutput -> a newest-1 AsyncStream of frames.
//
// Newest-frame policy (as Apple's ml-fastvlm app): the output discards late frames
// (alwaysDiscardsLateVideoFrames) and the stream buffers one frame, the newest; while the model is busy
// the analysis loop is not reading, so every newer frame replaces the buffered one and is counted as
// dropped. No frame is ever queued behind the model, copied, or written anywhere.

import AVFoundation
import CoreVideo
import Foundation

/// One camera frame and its stream time (seconds since the first frame of this run).
struct CameraFrame: @unchecked Sendable {
    let pixelBuffer: CVPixelBuffer
    let time: Double
}

enum CameraError: Error, LocalizedError {
    case denied
    case noCamera
    case configuration(String)

    var errorDescription: String? {
        switch self {
        case .denied:
            return "Camera access is off for this app. Allow it in Settings > Privacy & Security > Camera."
        case .noCamera:
            return "No back camera was found on this device."
        case .configuration(let what):
            return "The camera could not be configured: \(what)."
        }
    }
}

final class CameraController: NSObject, @unchecked Sendable {
    /// The capture session (shown by CameraPreview).
    let captureSession = AVCaptureSession()

    private let sessionQueue = DispatchQueue(label: "edge-vljepa.camera.session")
    private let outputQueue = DispatchQueue(label: "edge-vljepa.camera.frames", qos: .userInitiated)
    private let output = AVCaptureVideoDataOutput()
    private var configured = false

    /// The current run: its stream's continuation, the first frame's time, frame counts. Guarded by `lock`.
    private struct RunState {
        var continuation: AsyncStream<CameraFrame>.Continuation?
        var firstTime: CMTime?
        var delivered: Int = 0
        var dropped: Int = 0
    }
    private let lock = NSLock()
    private var run = RunState()

    private func withRun<R>(_ body: (inout RunState) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&run)
    }

    /// Frames handed to the analysis and frames replaced before it read them, this run.
    var counts: (delivered: Int, dropped: Int) {
        withRun { ($0.delivered, $0.dropped) }
    }

    /// Asks for camera access when it was never asked; true when granted.
    static func requestAccess() async -> Bool {
        switch AVCaptureDevice.authorizationStatus(for: .video) {
        case .authorized:
            return true
        case .notDetermined:
            return await AVCaptureDevice.requestAccess(for: .video)
        default:
            return false
        }
    }

    /// Starts capturing and returns the run's frames: a newest-1 stream (older unread frames dropped).
    /// `pixelFormat`: kCVPixelFormatType_32BGRA or a 420 bi-planar format (see PixelFrame).
    func start(pixelFormat: OSType) async throws -> AsyncStream<CameraFrame> {
        guard await Self.requestAccess() else { throw CameraError.denied }
        let (stream, continuation) = AsyncStream.makeStream(of: CameraFrame.self, bufferingPolicy: .bufferingNewest(1))
        withRun { run in
            run.continuation?.finish()
            run = RunState(continuation: continuation)
        }
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
            sessionQueue.async {
                do {
                    try self.configure(pixelFormat: pixelFormat)
                    if !self.captureSession.isRunning {
                        self.captureSession.startRunning()
                    }
                    done.resume()
                } catch {
                    done.resume(throwing: error)
                }
            }
        }
        return stream
    }

    /// Stops capturing and ends the current stream.
    func stop() {
        withRun { run in
            run.continuation?.finish()
            run.continuation = nil
        }
        sessionQueue.async {
            if self.captureSession.isRunning {
                self.captureSession.stopRunning()
            }
        }
    }

    private func configure(pixelFormat: OSType) throws {
        captureSession.beginConfiguration()
        defer { captureSession.commitConfiguration() }
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: pixelFormat]
        guard !configured else { return }

        captureSession.sessionPreset = .hd1280x720  // the core resizes to the model's 256 px anyway
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .back) else {
            throw CameraError.noCamera
        }
        let input: AVCaptureDeviceInput
        do {
            input = try AVCaptureDeviceInput(device: device)
        } catch {
            throw CameraError.configuration(error.localizedDescription)
        }
        guard captureSession.canAddInput(input) else { throw CameraError.configuration("input refused") }
        captureSession.addInput(input)

        output.alwaysDiscardsLateVideoFrames = true
        output.setSampleBufferDelegate(self, queue: outputQueue)
        guard captureSession.canAddOutput(output) else { throw CameraError.configuration("output refused") }
        captureSession.addOutput(output)
        // Upright frames for the model in portrait (rotation by the capture hardware, not in Swift).
        if let connection = output.connection(with: .video), connection.isVideoRotationAngleSupported(90) {
            connection.videoRotationAngle = 90
        }
        configured = true
    }
}

extension CameraController: AVCaptureVideoDataOutputSampleBufferDelegate {
    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer,
                       from connection: AVCaptureConnection) {
        guard let pixelBuffer = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        let pts = CMSampleBufferGetPresentationTimeStamp(sampleBuffer)
        withRun { run in
            guard let continuation = run.continuation else { return }
            let first = run.firstTime ?? pts
            run.firstTime = first
            let time = max(0, CMTimeGetSeconds(CMTimeSubtract(pts, first)))
            switch continuation.yield(CameraFrame(pixelBuffer: pixelBuffer, time: time)) {
            case .enqueued:
                run.delivered += 1
            case .dropped:
                run.delivered += 1
                run.dropped += 1
            case .terminated:
                run.continuation = nil
            @unknown default:
                break
            }
        }
    }
}
