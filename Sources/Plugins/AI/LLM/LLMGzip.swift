import CompressNIO
import NIOCore
import NIOHTTP1

/// gzip as ai-proxy handles it (spec §2.3-1, §2.3-4.9, §2.8): providers may answer compressed,
/// the gateway inflates to read (convert, count tokens), and compresses a non-stream answer
/// again only for a client that accepts gzip. Streams always reach the client uncompressed.
enum LLMGzip {
    /// An inflated answer larger than this is refused (a compressed body can expand ~1000×).
    static let maxInflatedSize = 64 * 1024 * 1024

    /// Kong's test: the client's `Accept-Encoding` contains the word `gzip`.
    static func clientAccepts(_ headers: HTTPHeaders) -> Bool {
        headers[canonicalForm: "accept-encoding"].contains { $0.lowercased().contains("gzip") }
    }

    /// The response's `Content-Encoding` is gzip.
    static func isEncoded(_ headers: HTTPHeaders) -> Bool {
        headers[canonicalForm: "content-encoding"].contains { $0.lowercased() == "gzip" }
    }

    static func inflate(_ body: ByteBuffer) throws -> ByteBuffer {
        guard body.readableBytes > 0 else { return body }
        var input = body
        return try input.decompress(with: .gzip, maxSize: maxInflatedSize)
    }

    static func deflate(_ body: ByteBuffer) -> ByteBuffer {
        var input = body
        // Compressing a buffer into one sized by zlib's own bound cannot overflow.
        return (try? input.compress(with: .gzip)) ?? body
    }
}

/// Inflates a gzip stream chunk by chunk (one per streamed answer): each call returns what the
/// bytes so far decode to, so events are never held back waiting for the end.
final class LLMGzipStream {
    private let decompressor: ZlibDecompressor
    private var inflated = 0

    init() throws {
        decompressor = try ZlibDecompressor(algorithm: .gzip)
    }

    func inflate(_ chunk: ByteBuffer) throws -> ByteBuffer {
        guard chunk.readableBytes > 0 else { return chunk }
        var input = chunk
        let output = try input.decompressStream(with: decompressor, maxSize: LLMGzip.maxInflatedSize)
        inflated += output.readableBytes
        if inflated > LLMGzip.maxInflatedSize { throw CompressNIOError.bufferOverflow }
        return output
    }
}
