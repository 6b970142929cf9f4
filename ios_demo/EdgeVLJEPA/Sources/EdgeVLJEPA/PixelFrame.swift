// CVPixelBuffer -> evj_frame: plane pointers and strides only; the core converts and resizes.
//
// Formats (what AVCaptureVideoDataOutput delivers):
//   kCVPixelFormatType_32BGRA                          -> EVJ_FORMAT_BGRA, plane 0, pixel stride 4
//   kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange    -> EVJ_FORMAT_YUV_420_888 as NV12: plane 0 = Y,
//   kCVPixelFormatType_420YpCbCr8BiPlanarFullRange        plane 1 = CbCr (U at even bytes), plane 2 = plane 1 + 1
//                                                         (V), pixel stride 2 for U and V (the header's NV12 form)
// The buffer stays locked (read-only) for the duration of the call that receives the frame; the core only
// reads the planes during that call (edge_vljepa.h, evj_frame). No pixel is touched in Swift.
//
// Colour range: the header has no range field; the core converts YUV with BT.601 video-range
// coefficients, so 420v is exact and 420f comes out with slightly compressed contrast. BGRA (the demo
// app's default) lets the capture hardware do the conversion.

import CEdgeVLJEPA
import CoreVideo
import Foundation

public enum PixelFrame {
    /// The pixel formats `with(_:timestamp:_:)` accepts.
    public static let supportedFormats: [OSType] = [
        kCVPixelFormatType_32BGRA,
        kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange,
        kCVPixelFormatType_420YpCbCr8BiPlanarFullRange,
    ]

    /// Calls `body` with an evj_frame describing `pixelBuffer` (locked read-only meanwhile).
    public static func with<R>(
        _ pixelBuffer: CVPixelBuffer,
        timestamp: Double,
        _ body: (UnsafePointer<evj_frame>) throws -> R
    ) throws -> R {
        let lockStatus = CVPixelBufferLockBaseAddress(pixelBuffer, .readOnly)
        guard lockStatus == kCVReturnSuccess else {
            throw VLJEPAError.app("CVPixelBufferLockBaseAddress failed (\(lockStatus))")
        }
        defer { CVPixelBufferUnlockBaseAddress(pixelBuffer, .readOnly) }

        var frame = evj_frame()
        frame.width = Int32(CVPixelBufferGetWidth(pixelBuffer))
        frame.height = Int32(CVPixelBufferGetHeight(pixelBuffer))
        frame.timestamp_s = timestamp

        let pixelFormat = CVPixelBufferGetPixelFormatType(pixelBuffer)
        switch pixelFormat {
        case kCVPixelFormatType_32BGRA:
            guard let base = CVPixelBufferGetBaseAddress(pixelBuffer) else {
                throw VLJEPAError.app("BGRA pixel buffer without a base address")
            }
            let rowBytes = CVPixelBufferGetBytesPerRow(pixelBuffer)
            frame.format = Int32(truncatingIfNeeded: EVJ_FORMAT_BGRA.rawValue)
            frame.planes.0 = UnsafePointer(base.assumingMemoryBound(to: UInt8.self))
            frame.row_stride.0 = Int32(rowBytes)
            frame.pixel_stride.0 = 4
            frame.plane_size.0 = rowBytes * CVPixelBufferGetHeight(pixelBuffer)

        case kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange, kCVPixelFormatType_420YpCbCr8BiPlanarFullRange:
            guard CVPixelBufferGetPlaneCount(pixelBuffer) == 2,
                  let luma = CVPixelBufferGetBaseAddressOfPlane(pixelBuffer, 0),
                  let chroma = CVPixelBufferGetBaseAddressOfPlane(pixelBuffer, 1)
            else {
                throw VLJEPAError.app("bi-planar 4:2:0 pixel buffer without two planes")
            }
            let lumaRowBytes = CVPixelBufferGetBytesPerRowOfPlane(pixelBuffer, 0)
            let chromaRowBytes = CVPixelBufferGetBytesPerRowOfPlane(pixelBuffer, 1)
            let lumaSize = lumaRowBytes * CVPixelBufferGetHeightOfPlane(pixelBuffer, 0)
            let chromaSize = chromaRowBytes * CVPixelBufferGetHeightOfPlane(pixelBuffer, 1)
            let cbcr = UnsafePointer(chroma.assumingMemoryBound(to: UInt8.self))
            frame.format = Int32(truncatingIfNeeded: EVJ_FORMAT_YUV_420_888.rawValue)
            frame.planes = (UnsafePointer(luma.assumingMemoryBound(to: UInt8.self)), cbcr, cbcr + 1)
            frame.row_stride = (Int32(lumaRowBytes), Int32(chromaRowBytes), Int32(chromaRowBytes))
            frame.pixel_stride = (1, 2, 2)
            frame.plane_size = (lumaSize, chromaSize, chromaSize - 1)

        default:
            throw VLJEPAError.app("unsupported pixel format \(fourCC(pixelFormat)); use BGRA, 420v or 420f")
        }
        return try withUnsafePointer(to: &frame) { try body($0) }
    }

    /// "BGRA", "420v", ... for messages.
    public static func fourCC(_ code: OSType) -> String {
        let bytes = [UInt8(truncatingIfNeeded: code >> 24), UInt8(truncatingIfNeeded: code >> 16),
                     UInt8(truncatingIfNeeded: code >> 8), UInt8(truncatingIfNeeded: code)]
        return String(decoding: bytes, as: UTF8.self)
    }
}
