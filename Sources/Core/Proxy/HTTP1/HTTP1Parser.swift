import NIOCore
import NIOHTTP1

/// Why bytes from a peer are not an HTTP/1.x message; the connection cannot be used further.
struct HTTP1ParseError: Error, CustomStringConvertible {
    /// What the client is told (spec §8.4): nginx's 494 (Kong's 400 `Request header or cookie
    /// too large`), 414, nginx's 505 for a request line naming HTTP/2 or later, or a plain 400.
    enum Kind { case malformed, headTooLarge, requestLineTooLong, versionNotSupported }

    let description: String
    let kind: Kind
    init(_ description: String, kind: Kind = .malformed) {
        self.description = description
        self.kind = kind
    }
}

/// An incremental HTTP/1.x parser for the proxy's two sides: client requests and upstream
/// responses. It replaces NIO's decoder handlers on the hot path: the proxy's handlers feed it the
/// bytes they read and pull events, so a request costs no pipeline hops, no type-erased parts and
/// no parser callbacks. Body events are slices of the bytes read (no copy).
///
/// Framing follows RFC 9112 §6 as nginx applies it to requests: `Transfer-Encoding` whose last
/// coding is `chunked`, or a `Content-Length` (repeated only with one value), never both; a request
/// with neither has no body. A response is bodyless when it answers HEAD or is 1xx/204/304, and is
/// delimited by the connection's end when it has no framing header. Interim 1xx responses (but 101)
/// are skipped, as NIO's client decoder does; after a 101 the bytes that follow are passed on as
/// they come (a tunnel).
struct HTTP1Parser {
    enum Kind { case request, response }

    enum Event {
        case requestHead(HTTPRequestHead)
        case responseHead(HTTPResponseHead)
        case body(ByteBuffer)
        case end
    }

    /// Heads larger than this are refused (NIO's default limit, which this parser replaces).
    static let maxHeadSize = 80 * 1024
    /// A request line longer than this is refused with 414, as nginx refuses one that does not
    /// fit its `large_client_header_buffers` (8k, Kong's default).
    static let maxRequestLineSize = 8 * 1024
    /// A chunk-size line (with extensions) or trailer line longer than this is refused.
    static let maxLineSize = 8 * 1024

    private enum State {
        case head
        /// A message without a body (or whose body was read): `.end` comes next.
        case endPending
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        /// After a 101 answer: every byte that follows belongs to the protocol switched to, and is
        /// passed on as body events; nothing ends it but the connection.
        case tunnel
        case failed
    }

    let kind: Kind
    private var state = State.head
    private var buffer = ByteBuffer()
    /// Bytes of a partial head already searched for its end (a head read in pieces is not rescanned).
    private var scanned = 0
    /// Responses: the request being answered is a HEAD (its response has no body).
    var answersHEAD = false
    /// Whether the last head parsed lets the connection stay open (its version and `Connection`
    /// field), as `HTTPRequestHead.isKeepAlive` says but without scanning the fields again.
    private(set) var lastHeadKeepsAlive = true

    init(kind: Kind) { self.kind = kind }

    /// Bytes read but not parsed yet (a pipelined request waiting, a partial head).
    var bufferedBytes: Int { buffer.readableBytes }
    /// The byte size of the last head parsed: start line, fields and the empty line.
    private(set) var lastHeadSize = 0
    /// The last head's body is chunked (`Transfer-Encoding` ending in `chunked`; a request then
    /// has no `Content-Length`, the parser refuses both).
    private(set) var lastHeadChunked = false
    /// The last request's target as received, when the head's target does not show it: an
    /// absolute form (`http://host/path`, carried as `/path`) or bytes that are not UTF-8
    /// (carried with U+FFFD in their place). nil for the usual target, which allocates nothing more.
    private(set) var lastReceivedTarget: [UInt8]?

    /// The current response's body ends only with the connection (it cannot be reused).
    var bodyEndsWithConnection: Bool {
        switch state {
        case .untilClose, .tunnel: return true
        default: return false
        }
    }

    /// The request line of a head not parsed (refused, or not whole yet), as nginx's `$request`
    /// shows one: the bytes read up to its first CR or LF, at most `maxRequestLineSize`. nil
    /// when nothing of a head was read. Asked only while no request is under way.
    func unparsedRequestLine() -> [UInt8]? {
        guard kind == .request, buffer.readableBytes > 0 else { return nil }
        return buffer.withUnsafeReadableBytes { bytes in
            let limit = min(bytes.count, Self.maxRequestLineSize)
            let end = bytes[..<limit].firstIndex(where: { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) ?? limit
            return Array(bytes[..<end])
        }
    }

    /// What was read but not parsed, taken out: the first bytes of a protocol the connection
    /// switched to (the client's WebSocket frames sent right after its upgrade request).
    mutating func takeBuffered() -> ByteBuffer? {
        guard buffer.readableBytes > 0 else { return nil }
        defer { buffer = ByteBuffer() }
        return buffer
    }

    /// Between messages, with nothing buffered.
    var isIdle: Bool {
        if case .head = state { return buffer.readableBytes == 0 }
        return false
    }

    mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes  // the common case: no copy
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next event from the bytes appended so far, or nil when more bytes are needed.
    mutating func next() throws -> Event? {
        switch state {
        case .head:
            return try parseHead()
        case .endPending:
            state = .head
            return .end
        case .fixed(let remaining):
            guard let (slice, left) = readBody(remaining) else { return nil }
            state = left == 0 ? .endPending : .fixed(remaining: left)
            return .body(slice)
        case .untilClose, .tunnel:
            guard buffer.readableBytes > 0 else { return nil }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .chunkSize:
            guard let size = try readChunkSize() else { return nil }
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            return try next()
        case .chunkData(let remaining):
            guard let (slice, left) = readBody(remaining) else { return nil }
            state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
            return .body(slice)
        case .chunkDataEnd:
            guard let line = try readLine() else { return nil }
            guard line.readableBytes == 0 else { throw fail("chunk data longer than its size") }
            state = .chunkSize
            return try next()
        case .trailers:
            // Trailer fields are read and dropped (the proxy does not relay them).
            while let line = try readLine() {
                if line.readableBytes == 0 {
                    state = .head
                    return .end
                }
            }
            return nil
        case .failed:
            throw HTTP1ParseError("the connection already sent a malformed message")
        }
    }

    /// The peer closed: the end of a body delimited by the connection's end, if one was being read.
    mutating func finishAtEOF() -> Event? {
        guard case .untilClose = state else { return nil }
        state = .head
        return .end
    }

    /// Up to `remaining` body bytes of what was read, and how many remain after them.
    private mutating func readBody(_ remaining: Int) -> (ByteBuffer, Int)? {
        guard buffer.readableBytes > 0 else { return nil }
        let count = min(remaining, buffer.readableBytes)
        return (buffer.readSlice(length: count)!, remaining - count)
    }

    // MARK: Lines

    private mutating func fail(_ reason: String, kind: HTTP1ParseError.Kind = .malformed) -> HTTP1ParseError {
        state = .failed
        return HTTP1ParseError(reason, kind: kind)
    }

    /// A request line over `maxRequestLineSize`, complete or not. Asked only when more than that
    /// many head bytes are buffered (never for the common small head), and it stops at the first
    /// line end.
    private func requestLineTooLong() -> Bool {
        guard kind == .request else { return false }
        return buffer.withUnsafeReadableBytes { bytes in
            let scanned = min(bytes.count, Self.maxRequestLineSize + 1)
            return !bytes[..<scanned].contains(UInt8(ascii: "\n")) && bytes.count > Self.maxRequestLineSize
        }
    }

    /// The next line without its CRLF (or bare LF), or nil when it has not arrived whole.
    private mutating func readLine() throws -> ByteBuffer? {
        let newline = buffer.withUnsafeReadableBytes { $0.firstIndex(of: UInt8(ascii: "\n")) }
        guard let newline else {
            if buffer.readableBytes > Self.maxLineSize { throw fail("line too long") }
            return nil
        }
        var line = buffer.readSlice(length: newline + 1)!
        line.moveWriterIndex(to: line.writerIndex - 1)
        if line.readableBytes > 0, line.getInteger(at: line.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\r") {
            line.moveWriterIndex(to: line.writerIndex - 1)
        }
        return line
    }

    private mutating func readChunkSize() throws -> Int? {
        guard let line = try readLine() else { return nil }
        var size = 0
        var digits = 0
        let valid = line.withUnsafeReadableBytes { bytes -> Bool in
            for byte in bytes {
                let value: Int
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): value = Int(byte - UInt8(ascii: "a")) + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): value = Int(byte - UInt8(ascii: "A")) + 10
                case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"):
                    return digits > 0  // chunk extensions are ignored
                default: return false
                }
                digits += 1
                guard digits <= 15 else { return false }  // no overflow
                size = size << 4 | value
            }
            return digits > 0
        }
        guard valid else { throw fail("invalid chunk size") }
        return size
    }

    // MARK: Heads

    /// The offset just past the empty line that ends the head, if it arrived.
    private mutating func headEnd() -> Int? {
        let start = max(0, scanned - 2)
        let found = buffer.withUnsafeReadableBytes { bytes -> Int? in
            var index = start
            while index < bytes.count {
                guard let newline = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
                // The line ending here is empty when the previous byte is this line's start, or a
                // CR at it.
                if newline + 1 < bytes.count, bytes[newline + 1] == UInt8(ascii: "\n") { return newline + 2 }
                if newline + 2 < bytes.count, bytes[newline + 1] == UInt8(ascii: "\r"),
                   bytes[newline + 2] == UInt8(ascii: "\n") { return newline + 3 }
                index = newline + 1
            }
            return nil
        }
        scanned = found == nil ? buffer.readableBytes : 0
        return found
    }

    private mutating func parseHead() throws -> Event? {
        while true {
            // Empty lines before a message are ignored (RFC 9112 §2.2), as nginx does.
            while let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
                  first == UInt8(ascii: "\r") || first == UInt8(ascii: "\n") {
                buffer.moveReaderIndex(forwardBy: 1)
                scanned = 0
            }
            guard buffer.readableBytes > 0 else { return nil }
            guard let end = headEnd() else {
                if buffer.readableBytes > Self.maxRequestLineSize, requestLineTooLong() {
                    throw fail("request line too long", kind: .requestLineTooLong)
                }
                if buffer.readableBytes > Self.maxHeadSize { throw fail("message head too large", kind: .headTooLarge) }
                return nil
            }
            if end > Self.maxRequestLineSize, requestLineTooLong() {
                throw fail("request line too long", kind: .requestLineTooLong)
            }
            guard end <= Self.maxHeadSize else { throw fail("message head too large", kind: .headTooLarge) }
            var parsed = ParsedHead()
            let problem = buffer.withUnsafeReadableBytes { bytes in
                parsed.parse(UnsafeRawBufferPointer(rebasing: bytes[..<end]), kind: kind)
            }
            if let problem { throw fail(problem, kind: parsed.versionNotSupported ? .versionNotSupported : .malformed) }
            buffer.moveReaderIndex(forwardBy: end)
            lastHeadSize = end
            lastHeadChunked = parsed.transferEncodingIsChunked == true
            lastReceivedTarget = parsed.receivedTarget
            lastHeadKeepsAlive = parsed.version.minor >= 1 ? !parsed.connectionClose
                // An HTTP/1.0 message with Transfer-Encoding closes after it (RFC 9112 §6.1).
                : parsed.connectionKeepAlive && parsed.transferEncodingIsChunked == nil
            switch kind {
            case .request:
                state = try requestFraming(parsed)
                return .requestHead(HTTPRequestHead(version: parsed.version, method: parsed.method, uri: parsed.target,
                                                    headers: HTTPHeaders(parsed.fields)))
            case .response:
                let status = parsed.status
                if status >= 100 && status < 200 && status != 101 { continue }  // interim: the answer follows
                state = try responseFraming(parsed)
                return .responseHead(HTTPResponseHead(version: parsed.version,
                                                      status: HTTPResponseStatus(statusCode: status, reasonPhrase: parsed.reason),
                                                      headers: HTTPHeaders(parsed.fields)))
            }
        }
    }

    private mutating func requestFraming(_ head: ParsedHead) throws -> State {
        // TRACE carries no content (RFC 9110 §9.3.8) and is forwarded as bodyless: a body would
        // reach the upstream as a request of its own.
        if head.method == .TRACE, head.transferEncodingIsChunked != nil || (head.contentLength ?? 0) > 0 {
            throw fail("a TRACE request with a body")
        }
        if let chunked = head.transferEncodingIsChunked {
            // Both framings at once is how requests are smuggled: nginx refuses it too.
            guard head.contentLength == nil else { throw fail("both Transfer-Encoding and Content-Length") }
            guard chunked else { throw fail("Transfer-Encoding without a final chunked coding") }
            return .chunkSize
        }
        guard let length = head.contentLength else { return .endPending }
        return length == 0 ? .endPending : .fixed(remaining: length)
    }

    private mutating func responseFraming(_ head: ParsedHead) throws -> State {
        // As llhttp (NIO's parser) refuses it: which framing the upstream meant is unknowable, and
        // relaying either could split the client's response.
        if head.transferEncodingIsChunked != nil, head.contentLength != nil {
            throw fail("both Transfer-Encoding and Content-Length")
        }
        let status = head.status
        // Switching protocols (a WebSocket upgrade): what follows the head is the new protocol's.
        if status == 101 { return .tunnel }
        if answersHEAD || status == 204 || status == 304 || status < 200 { return .endPending }
        if let chunked = head.transferEncodingIsChunked { return chunked ? .chunkSize : .untilClose }
        guard let length = head.contentLength else { return .untilClose }
        return length == 0 ? .endPending : .fixed(remaining: length)
    }
}

/// One head's start line and fields, parsed from its bytes.
private struct ParsedHead {
    var method = HTTPMethod.GET
    var target = ""
    var version = HTTPVersion.http1_1
    var status = 0
    var reason = ""
    var fields: [(String, String)] = []
    /// nil when absent; otherwise whether the last coding is `chunked`.
    var transferEncodingIsChunked: Bool?
    var contentLength: Int?
    /// `Connection` tokens `close` and `keep-alive`.
    var connectionClose = false
    var connectionKeepAlive = false
    /// The host of an absolute-form request target (`GET http://host/path`), which names the
    /// request's host instead of the Host header (RFC 9112 §3.2.2, as nginx reads it).
    var targetAuthority: String?
    /// The request line names a major version over 1 (`HTTP/2.0`): nginx answers 505.
    var versionNotSupported = false
    /// The target as it came when `target` does not show it: an absolute form, or bytes that
    /// are not UTF-8 (only then: the usual target allocates nothing more).
    var receivedTarget: [UInt8]?

    /// nil when the head is well formed; otherwise why not.
    mutating func parse(_ bytes: UnsafeRawBufferPointer, kind: HTTP1Parser.Kind) -> String? {
        var lineStart = 0
        var isStartLine = true
        while lineStart < bytes.count {
            guard let newline = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) else { return "unterminated line" }
            var lineEnd = newline
            if lineEnd > lineStart, bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd])
            lineStart = newline + 1
            if isStartLine {
                isStartLine = false
                fields.reserveCapacity(16)
                if let problem = kind == .request ? parseRequestLine(line) : parseStatusLine(line) { return problem }
                continue
            }
            if line.isEmpty { return kind == .request ? checkRequestHost() : nil }
            if let problem = parseField(line) { return problem }
        }
        return "unterminated head"
    }

    private mutating func parseRequestLine(_ line: UnsafeRawBufferPointer) -> String? {
        guard let firstSpace = line.firstIndex(of: UInt8(ascii: " ")), firstSpace > 0,
              let lastSpace = line.lastIndex(of: UInt8(ascii: " ")), lastSpace > firstSpace + 1 else {
            return "invalid request line"
        }
        let methodBytes = UnsafeRawBufferPointer(rebasing: line[..<firstSpace])
        // nginx takes upper-case letters, `_` and `-` only (`get` is refused, not routed).
        guard methodBytes.allSatisfy({ ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 == UInt8(ascii: "_")
                                           || $0 == UInt8(ascii: "-") }) else { return "invalid method" }
        var targetBytes = UnsafeRawBufferPointer(rebasing: line[(firstSpace + 1)..<lastSpace])
        guard targetBytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return "invalid request target" }
        let versionBytes = UnsafeRawBufferPointer(rebasing: line[(lastSpace + 1)...])
        guard let version = Self.version(versionBytes) else {
            // nginx reads the major version's first digit and stops at one over 1.
            versionNotSupported = versionBytes.count > 5 && versionBytes.prefix(5).elementsEqual("HTTP/".utf8)
                && versionBytes[5] >= UInt8(ascii: "2") && versionBytes[5] <= UInt8(ascii: "9")
            return versionNotSupported ? "HTTP version not supported" : "invalid HTTP version"
        }
        let received = targetBytes
        if targetBytes.first != UInt8(ascii: "/") {
            guard let (authority, rest) = Self.absoluteForm(targetBytes) else { return "invalid request target" }
            receivedTarget = Array(received)
            targetAuthority = authority
            targetBytes = rest
        }
        guard Self.pathEscapesAreWhole(targetBytes) else { return "invalid escape in the request path" }
        self.version = version
        method = HTTPMethod(rawValue: String(decoding: methodBytes, as: UTF8.self))
        // An absolute URL without a path (`http://h`, `http://h?q`) asks for `/`.
        let path: String
        if let valid = String(validating: targetBytes, as: UTF8.self) {
            path = valid
        } else {
            path = String(decoding: targetBytes, as: UTF8.self)
            receivedTarget = Array(received)  // the log shows the bytes nginx's `$request` shows
        }
        target = targetBytes.first == UInt8(ascii: "/") ? path : "/" + path
        return nil
    }

    /// `http://host[:port][/path][?query]` (scheme case-insensitive): the authority, and what
    /// follows it as an origin-form target (empty for `/`). nil for any other form.
    private static func absoluteForm(_ target: UnsafeRawBufferPointer) -> (String, UnsafeRawBufferPointer)? {
        var index = 0
        for byte in "http".utf8 {
            guard index < target.count, target[index] | 0x20 == byte else { return nil }
            index += 1
        }
        if index < target.count, target[index] | 0x20 == UInt8(ascii: "s") { index += 1 }
        for byte in "://".utf8 {
            guard index < target.count, target[index] == byte else { return nil }
            index += 1
        }
        let authorityStart = index
        while index < target.count, target[index] != UInt8(ascii: "/"), target[index] != UInt8(ascii: "?") { index += 1 }
        guard index > authorityStart else { return nil }
        let authority = String(decoding: UnsafeRawBufferPointer(rebasing: target[authorityStart..<index]), as: UTF8.self)
        guard !authority.contains("@") else { return nil }  // no user information in a request target
        return (authority, UnsafeRawBufferPointer(rebasing: target[index...]))
    }

    /// Every `%` of the path (the query is not decoded) starts two hex digits, as nginx requires
    /// of a path it normalises.
    private static func pathEscapesAreWhole(_ target: UnsafeRawBufferPointer) -> Bool {
        func isHex(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
        }
        var index = 0
        while index < target.count, target[index] != UInt8(ascii: "?") {
            if target[index] == UInt8(ascii: "%") {
                guard index + 2 < target.count, isHex(target[index + 1]), isHex(target[index + 2]) else { return false }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

    /// nginx's checks of the request's host: an HTTP/1.1 request names one; two Host lines, or an
    /// empty host or one with a `/`, a `\` or `..` in it, are refused (`ngx_http_validate_host`). An
    /// absolute-form target's host replaces the Host lines.
    private mutating func checkRequestHost() -> String? {
        if let targetAuthority {
            fields.removeAll { ProxyHeaders.equalsIgnoringCase($0.0, "host") }
            fields.append(("Host", targetAuthority))
        }
        var host: String?
        for (name, value) in fields where name.utf8.count == 4 && ProxyHeaders.equalsIgnoringCase(name, "host") {
            guard host == nil else { return "duplicate Host header" }
            host = value
        }
        guard let host else { return version.minor >= 1 ? "HTTP/1.1 request without Host" : nil }
        guard !host.isEmpty else { return "invalid Host header" }
        // Bytes, not `String.contains`: Foundation's substring search allocates, on every request.
        var previous: UInt8 = 0
        for byte in host.utf8 {
            if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\") || (byte == UInt8(ascii: ".") && previous == byte) {
                return "invalid Host header"
            }
            previous = byte
        }
        return nil
    }

    private mutating func parseStatusLine(_ line: UnsafeRawBufferPointer) -> String? {
        guard line.count >= 12, let version = Self.version(UnsafeRawBufferPointer(rebasing: line[..<8])),
              line[8] == UInt8(ascii: " ") else { return "invalid status line" }
        var code = 0
        for index in 9..<12 {
            let byte = line[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return "invalid status code" }
            code = code * 10 + Int(byte - UInt8(ascii: "0"))
        }
        guard code >= 100 else { return "invalid status code" }
        if line.count > 12 {
            guard line[12] == UInt8(ascii: " ") else { return "invalid status line" }
            reason = String(decoding: UnsafeRawBufferPointer(rebasing: line[13...]), as: UTF8.self)
        }
        self.version = version
        status = code
        return nil
    }

    /// `HTTP/1.0` or `HTTP/1.1` (any 1.x minor version is taken as what it says).
    private static func version(_ bytes: UnsafeRawBufferPointer) -> HTTPVersion? {
        guard bytes.count == 8, bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"),
              bytes[2] == UInt8(ascii: "T"), bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/"),
              bytes[5] == UInt8(ascii: "1"), bytes[6] == UInt8(ascii: "."),
              bytes[7] >= UInt8(ascii: "0"), bytes[7] <= UInt8(ascii: "9") else { return nil }
        return HTTPVersion(major: 1, minor: Int(bytes[7] - UInt8(ascii: "0")))
    }

    private mutating func parseField(_ line: UnsafeRawBufferPointer) -> String? {
        // A line starting with whitespace continues the previous one (obsolete folding): refused,
        // as RFC 9112 §5.2 allows and nginx does.
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return "invalid header line" }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        guard name.allSatisfy(HTTPBytes.isTokenByte) else { return "invalid header name" }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart..<valueEnd])
        guard value.allSatisfy(HTTPBytes.isFieldValueByte) else { return "invalid header value" }
        if HTTPBytes.equalsLowercased(name, "content-length") {
            guard let length = Self.contentLength(value), contentLength == nil || contentLength == length else {
                return "invalid Content-Length"
            }
            contentLength = length
        } else if HTTPBytes.equalsLowercased(name, "transfer-encoding") {
            transferEncodingIsChunked = Self.lastCodingIsChunked(value)
        } else if HTTPBytes.equalsLowercased(name, "connection") {
            for token in value.split(separator: UInt8(ascii: ",")) {
                var start = token.startIndex, end = token.endIndex
                while start < end, token[start] == 0x20 || token[start] == 0x09 { start += 1 }
                while end > start, token[end - 1] == 0x20 || token[end - 1] == 0x09 { end -= 1 }
                let trimmed = UnsafeRawBufferPointer(rebasing: token[start..<end])
                if HTTPBytes.equalsLowercased(trimmed, "close") { connectionClose = true }
                if HTTPBytes.equalsLowercased(trimmed, "keep-alive") { connectionKeepAlive = true }
            }
        }
        fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return nil
    }

    private static func contentLength(_ value: UnsafeRawBufferPointer) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var length = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            length = length * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return length
    }

    private static func lastCodingIsChunked(_ value: UnsafeRawBufferPointer) -> Bool {
        var end = value.count
        while end > 0, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
        let start = value[..<end].lastIndex(of: UInt8(ascii: ",")).map { $0 + 1 } ?? 0
        var first = start
        while first < end, value[first] == 0x20 || value[first] == 0x09 { first += 1 }
        return HTTPBytes.equalsLowercased(UnsafeRawBufferPointer(rebasing: value[first..<end]), "chunked")
    }
}

/// Byte classes of RFC 9110 §5.
enum HTTPBytes {
    /// tchar: the bytes of methods and field names.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Field values: visible bytes, spaces, tabs and obs-text; never CR, LF, NUL or other controls.
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte >= 0x20 ? byte != 0x7F : byte == 0x09
    }

    /// Whether `string`, lowercased, equals `lowercase` (ASCII), without allocating.
    static func equalsLowercased(_ string: String, _ lowercase: StaticString) -> Bool {
        var string = string
        return string.withUTF8 { equalsLowercased(UnsafeRawBufferPointer($0), lowercase) }
    }

    /// Whether `bytes`, lowercased, equal `lowercase` (ASCII).
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] {
            // `| 0x20` lowercases letters; the other bytes of these names (`-`) are unaffected.
            return false
        }
        return true
    }
}
