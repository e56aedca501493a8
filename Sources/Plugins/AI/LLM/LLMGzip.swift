import CompressNIO
import NIOCore
import NIOHTTP1

/// gzip as ai-proxy handles it (spec §2.3-1, §2.3-4.9, §2.8): providers may answer compressed,
/// the gateway inflates to read (convert, count tokens), and compresses a non-stream answer
/// again only for a client that accepts gzip. Streams always reach the client uncompressed.
enum LLMGzip {
    /// An inflated answer larger than this is refused (a compressed body can expand ~1000×).
    static let maxInflatedSize = 256 * 1024 * 1024

    /// Why a gzip body could not be read (said in the error log).
    enum Failure: Error, CustomStringConvertible {
        case corrupt
        case tooLarge
        case trailingBytes

        var description: String {
            switch self {
            case .corrupt: return "is not valid gzip"
            case .tooLarge: return "inflates to more than \(maxInflatedSize / (1024 * 1024)) MiB"
            case .trailingBytes: return "has bytes after its gzip data"
            }
        }
    }

    /// Kong's test: the client's `Accept-Encoding` contains the word `gzip`.
    static func clientAccepts(_ headers: HTTPHeaders) -> Bool {
        headers[canonicalForm: "accept-encoding"].contains { $0.lowercased().contains("gzip") }
    }

    /// The response's `Content-Encoding` is gzip.
    static func isEncoded(_ headers: HTTPHeaders) -> Bool {
        headers[canonicalForm: "content-encoding"].contains { $0.lowercased() == "gzip" }
    }

    /// A whole gzip body (one member or several, RFC 1952), inflated.
    static func inflate(_ body: ByteBuffer) throws(Failure) -> ByteBuffer {
        let stream = try LLMGzipStream()
        return try stream.inflate(body)
    }

    /// `body` gzip-encoded; nil if zlib refused (the caller then sends it as it is).
    static func deflate(_ body: ByteBuffer) -> ByteBuffer? {
        var input = body
        return try? input.compress(with: .gzip)
    }
}

/// Inflates a gzip stream chunk by chunk (one per answer): each call returns what the bytes so
/// far decode to, so events are never held back waiting for the end. Concatenated members are
/// read one after the other, also when a chunk ends exactly between two.
final class LLMGzipStream {
    private let decompressor: ZlibDecompressor
    private var inflated = 0

    init() throws(LLMGzip.Failure) {
        do {
            decompressor = try ZlibDecompressor(algorithm: .gzip)
        } catch {
            throw .corrupt
        }
    }

    func inflate(_ chunk: ByteBuffer) throws(LLMGzip.Failure) -> ByteBuffer {
        var input = chunk
        var output = ByteBuffer()
        var restarted = false
        while input.readableBytes > 0 {
            let before = input.readerIndex
            var piece: ByteBuffer
            do {
                piece = try input.decompressStream(with: decompressor, maxSize: LLMGzip.maxInflatedSize - inflated)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw .tooLarge
            } catch {
                throw .corrupt
            }
            inflated += piece.readableBytes
            output.writeBuffer(&piece)
            let progressed = input.readerIndex != before || output.readableBytes > 0
            guard input.readableBytes > 0 else { break }
            // The member ended with input left: another member must follow (its magic number
            // may be cut after its first byte).
            guard [0x1f, 0x8b].starts(with: input.readableBytesView.prefix(2)) else { throw .trailingBytes }
            if !progressed && restarted { throw .corrupt }
            restarted = !progressed
            do { try decompressor.reset() } catch { throw .corrupt }
        }
        return output
    }
}
