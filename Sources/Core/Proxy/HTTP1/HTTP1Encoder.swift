import NIOCore
import NIOHTTP1

/// Serializes the messages of one connection side (requests toward an upstream, responses toward
/// a client) into bytes the handler writes itself, replacing NIO's encoder handlers on the hot
/// path. Framing headers are corrected as NIO's encoders do (RFC 9112 §6): a message that cannot
/// have a body loses `Content-Length`/`Transfer-Encoding`; one that may have a body and has no
/// `Content-Length` goes chunked on HTTP/1.1. A field whose name or value would break the framing
/// (CR, LF, NUL, a non-token name) is not written.
struct HTTP1Encoder {
    /// The body being written is chunk-framed.
    private var chunked = false
    /// The response being written has a chunked body (nginx's `r->chunked`).
    var framesChunked: Bool { chunked }
    /// The response answers HEAD: its head says what a GET would return, and no body follows.
    private var bodyless = false

    /// A body chunk up to this size is copied next to its chunk-size line (one buffer to write);
    /// a larger one is written as three buffers.
    static let copiedChunkLimit = 4096

    private enum Framing { case none, contentLength, chunked, neither }

    // MARK: Heads

    mutating func requestHead(_ head: HTTPRequestHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        let method = head.method.rawValue, uri = head.uri
        var buffer = ByteBuffer()
        let framing = Self.writeHead(head.headers, version: head.version, hasBody: Self.requestHasBody(head.method),
                                     startLineSize: method.utf8.count + uri.utf8.count + 12, allocator: allocator, into: &buffer) { out in
            out.raw(method)
            out.raw(" ")
            out.raw(uri)
            out.raw(head.version.minor == 0 ? " HTTP/1.0" : " HTTP/1.1")
            out.crlf()
        }
        chunked = framing == .chunked
        bodyless = false
        return buffer
    }

    /// `method`: the request's, for HEAD (a bodyless answer whose head keeps its framing fields).
    mutating func responseHead(_ head: HTTPResponseHead, answering method: HTTPMethod,
                               allocator: ByteBufferAllocator) -> ByteBuffer {
        let status = head.status
        let code = status.code
        // Known statuses keep their standard reason phrase (as NIO's types do); a custom status
        // carries its own, which is left out if it could break the framing.
        var phrase = status.reasonPhrase
        var isCustom = false
        if case .custom = status {
            isCustom = true
            if !phrase.utf8.allSatisfy(HTTPBytes.isFieldValueByte) { phrase = "" }
        }
        let standardLine = head.version.minor == 1 && !isCustom && code >= 100 && code < Self.statusLines.count
            ? Self.statusLines[Int(code)] : nil
        let lineSize = standardLine?.utf8.count ?? (phrase.utf8.count + 32)
        var buffer = ByteBuffer()
        let framing = Self.writeHead(head.headers, version: head.version,
                                     hasBody: status.mayHaveResponseBody ? .yes : .no,
                                     startLineSize: lineSize, allocator: allocator, into: &buffer) { out in
            if let standardLine {
                out.raw(standardLine)
                return
            }
            out.raw(head.version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.raw(String(code))
            out.raw(" ")
            out.raw(phrase)
            out.crlf()
        }
        // No body after a HEAD answer, nor in a 1xx/204/304 (their framing fields were dropped:
        // body bytes would be read as the next response).
        bodyless = method == .HEAD || !status.mayHaveResponseBody
        chunked = framing == .chunked && !bodyless
        return buffer
    }

    /// `HTTP/1.1 <code> <standard reason>` CRLF, by code (empty below 100).
    private static let statusLines: [String] = (0..<600).map { code in
        code < 100 ? "" : "HTTP/1.1 \(code) \(HTTPResponseStatus(statusCode: code).reasonPhrase)\r\n"
    }

    /// `100 Continue`, which changes nothing about the response that follows.
    static func continueHead(version: HTTPVersion, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 32)
        buffer.writeStaticString(version.minor == 0 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n")
        return buffer
    }

    // MARK: Bodies

    /// The bytes to write for one body chunk, in order (none for an empty chunk, which would end a
    /// chunked body, or for a bodyless response).
    func body(_ chunk: ByteBuffer, allocator: ByteBufferAllocator, write: (ByteBuffer) -> Void) {
        let count = chunk.readableBytes
        guard count > 0, !bodyless else { return }
        guard chunked else { return write(chunk) }
        var framed = allocator.buffer(capacity: count <= Self.copiedChunkLimit ? count + 16 : 16)
        framed.writeString(String(count, radix: 16))
        framed.writeStaticString("\r\n")
        if count <= Self.copiedChunkLimit {
            var chunk = chunk
            framed.writeBuffer(&chunk)
            framed.writeStaticString("\r\n")
            write(framed)
        } else {
            write(framed)
            write(chunk)
            write(Self.crlf)
        }
    }

    /// The bytes that end the body, if any (the last chunk of a chunked body).
    mutating func end() -> ByteBuffer? {
        defer { chunked = false; bodyless = false }
        return chunked ? Self.lastChunk : nil
    }

    private static let crlf = ByteBuffer(staticString: "\r\n")
    private static let lastChunk = ByteBuffer(staticString: "0\r\n\r\n")

    // MARK: Fields

    private enum HasBody { case no, yes, unlikely }

    /// NIO's classification of request methods (the body framing its encoder applies).
    private static func requestHasBody(_ method: HTTPMethod) -> HasBody {
        switch method {
        case .TRACE: return .no
        case .POST, .PUT, .PATCH: return .yes
        default: return .unlikely
        }
    }

    /// Writes the start line, the fields and the empty line; returns how the body is framed.
    private static func writeHead(_ headers: HTTPHeaders, version: HTTPVersion, hasBody: HasBody, startLineSize: Int,
                                  allocator: ByteBufferAllocator, into buffer: inout ByteBuffer,
                                  startLine: (inout FieldWriter) -> Void) -> Framing {
        var hasContentLength = false
        var firstTransferEncoding: Substring?
        // The empty line, an added Transfer-Encoding, and room for a small body that may follow.
        var size = startLineSize + 32 + 512
        for (name, value) in headers {
            size += name.utf8.count + value.utf8.count + 4
            if HTTPBytes.equalsLowercased(name, "content-length") {
                hasContentLength = true
            } else if firstTransferEncoding == nil, HTTPBytes.equalsLowercased(name, "transfer-encoding") {
                firstTransferEncoding = Substring(value)
            }
        }
        let framing: Framing
        var dropLength = false, dropTransferEncoding = false, addChunked = false
        switch hasBody {
        case .no:
            dropLength = true
            dropTransferEncoding = true
            framing = .none
        case .yes, .unlikely:
            if hasContentLength {
                dropTransferEncoding = true
                framing = .contentLength
            } else if version.minor >= 1 {
                if hasBody == .yes {
                    dropTransferEncoding = true
                    addChunked = true
                    framing = .chunked
                } else {
                    framing = firstTransferEncoding == "chunked" ? .chunked : .neither
                }
            } else {
                framing = .neither
            }
        }
        // One write into the buffer's memory: ByteBuffer's per-call checks cost more than copying
        // a field's bytes.
        buffer = allocator.buffer(capacity: size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { memory in
            var out = FieldWriter(memory: memory)
            startLine(&out)
            for (name, value) in headers {
                if dropLength, HTTPBytes.equalsLowercased(name, "content-length") { continue }
                if dropTransferEncoding, HTTPBytes.equalsLowercased(name, "transfer-encoding") { continue }
                out.field(name, value)
            }
            if addChunked { out.field("Transfer-Encoding", "chunked") }
            out.crlf()
            return out.count
        }
        return framing
    }
}

/// Copies fields into a buffer's writable memory (sized by the caller), skipping any field whose
/// name or value would break the framing.
struct FieldWriter {
    let memory: UnsafeMutableRawBufferPointer
    private(set) var count = 0

    init(memory: UnsafeMutableRawBufferPointer) { self.memory = memory }

    mutating func field(_ name: String, _ value: String) {
        let start = count
        var name = name, value = value
        let valid = name.withUTF8 { bytes -> Bool in
            guard !bytes.isEmpty, bytes.allSatisfy(HTTPBytes.isTokenByte) else { return false }
            copy(UnsafeRawBufferPointer(bytes))
            return true
        } && value.withUTF8 { bytes -> Bool in
            guard bytes.allSatisfy(HTTPBytes.isFieldValueByte) else { return false }
            memory[count] = UInt8(ascii: ":")
            memory[count + 1] = UInt8(ascii: " ")
            count += 2
            copy(UnsafeRawBufferPointer(bytes))
            return true
        }
        if valid { crlf() } else { count = start }
    }

    /// Bytes written as they are (a start line's parts).
    mutating func raw(_ text: String) {
        var text = text
        text.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
    }

    mutating func crlf() {
        memory[count] = UInt8(ascii: "\r")
        memory[count + 1] = UInt8(ascii: "\n")
        count += 2
    }

    private mutating func copy(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress else { return }
        (memory.baseAddress! + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }
}
