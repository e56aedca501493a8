import NIOCore
import NIOHTTP1
import Testing
@testable import Core

/// The proxy's own HTTP/1 parser and encoder (they replace NIO's codec handlers on both sides).
struct HTTP1CodecTests {
    /// A parsed message: the head's text form, the body bytes and how many messages ended.
    struct Parsed: Equatable {
        var heads: [String] = []
        var body = ""
        var ends = 0
    }

    /// Feeds `text` in pieces of `pieceSize` bytes (all at once for 0) and collects the events.
    func parse(_ text: String, kind: HTTP1Parser.Kind = .request, pieceSize: Int = 0,
               answersHEAD: Bool = false) throws -> Parsed {
        var parser = HTTP1Parser(kind: kind)
        parser.answersHEAD = answersHEAD
        var parsed = Parsed()
        let bytes = Array(text.utf8)
        let step = pieceSize == 0 ? max(1, bytes.count) : pieceSize
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + step)
            parser.append(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
            while let event = try parser.next() {
                switch event {
                case .requestHead(let head):
                    parsed.heads.append("\(head.method.rawValue) \(head.uri) \(head.version) "
                        + head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ";"))
                case .responseHead(let head):
                    parsed.heads.append("\(head.status.code) \(head.version) "
                        + head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ";"))
                case .body(let chunk):
                    parsed.body += String(buffer: chunk)
                case .end:
                    parsed.ends += 1
                }
            }
        } while offset < bytes.count
        if parser.finishAtEOF() != nil { parsed.ends += 1 }
        return parsed
    }

    @Test func requestsParseTheSameWhateverTheReadBoundaries() throws {
        let pipelined = "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Two:  spaced value \t\r\n\r\n"
            + "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
            + "GET /d HTTP/1.0\nHost: lf-only\n\n"
        let whole = try parse(pipelined)
        #expect(whole.heads == [
            "GET /a?x=1 HTTP/1.1 Host=h;X-Two=spaced value",
            "POST /b HTTP/1.1 Host=h;Content-Length=5",
            "PUT /c HTTP/1.1 Host=h;Transfer-Encoding=gzip, chunked",
            "GET /d HTTP/1.0 Host=lf-only",
        ])
        #expect(whole.body == "helloabcde")
        #expect(whole.ends == 4)
        for size in 1...pipelined.utf8.count {
            #expect(try parse(pipelined, pieceSize: size) == whole, "split every \(size) bytes")
        }
    }

    @Test func responsesAreFramedByStatusMethodAndHeaders() throws {
        // Interim answers are skipped; 204 and 304 have no body; a length is honoured.
        let kept = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let parsed = try parse(kept, kind: .response)
        #expect(parsed.heads.map { $0.prefix(3) } == ["204", "304", "200"])
        #expect(parsed.body == "ok")
        #expect(parsed.ends == 3)
        // No framing header: the body runs until the connection ends.
        let closeDelimited = try parse("HTTP/1.1 200 OK\r\n\r\nuntil the end", kind: .response, pieceSize: 3)
        #expect(closeDelimited.body == "until the end")
        #expect(closeDelimited.ends == 1)
        // The answer to HEAD has no body, whatever its Content-Length says.
        let head = try parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", kind: .response, answersHEAD: true)
        #expect(head.ends == 1)
        #expect(head.body.isEmpty)
    }

    /// Which framing the upstream meant cannot be known: relaying either could split the response.
    @Test func responsesWithBothFramingsAreRefused() {
        #expect(throws: HTTP1ParseError.self) {
            _ = try parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                          kind: .response)
        }
    }

    @Test func keepAliveIsReadFromTheVersionAndConnection() throws {
        func keepsAlive(_ text: String) throws -> Bool {
            var parser = HTTP1Parser(kind: .request)
            parser.append(ByteBuffer(string: text))
            _ = try parser.next()
            return parser.lastHeadKeepsAlive
        }
        #expect(try keepsAlive("GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(try !keepsAlive("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\n\r\n"))
        #expect(try !keepsAlive("GET / HTTP/1.0\r\n\r\n"))
        #expect(try keepsAlive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))
        #expect(try !keepsAlive("POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"))
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET  HTTP/1.1\r\n\r\n",
        "GE(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nNo-Colon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{01}b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        "TRACE / HTTP/1.1\r\nHost: h\r\nContent-Length: 18\r\n\r\nGET /admin HTTP/1.1",
        "TRACE / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        // What nginx refuses besides syntax: no Host in HTTP/1.1, two, or one naming no host; a
        // method not in upper case; a target that is no path or absolute URL; a broken escape.
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a..b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",
        "get / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET ns/x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /ns/% HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /ns/%4 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /ns/x%zz HTTP/1.1\r\nHost: h\r\n\r\n",
    ])
    func malformedRequestsAreRefused(_ text: String) {
        #expect(throws: HTTP1ParseError.self) { _ = try parse(text) }
    }

    /// nginx reads a request line's major version digit and answers 505 for one over 1; any other
    /// version it cannot read is a 400.
    @Test func onlyAnHTTPVersionOverOneIsNotSupported() {
        func kind(_ text: String) -> HTTP1ParseError.Kind? {
            do { _ = try parse(text); return nil } catch { return (error as? HTTP1ParseError)?.kind }
        }
        #expect(kind("GET / HTTP/2.0\r\n\r\n") == .versionNotSupported)
        #expect(kind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == .versionNotSupported, "an HTTP/2 preface to an HTTP/1 port")
        #expect(kind("GET / HTTP/3.0\r\nHost: h\r\n\r\n") == .versionNotSupported)
        #expect(kind("GET / HTTP/0.9\r\n\r\n") == .malformed)
        #expect(kind("GET / HTTPS/2.0\r\n\r\n") == .malformed)
        #expect(kind("GET / HTTP/x\r\n\r\n") == .malformed)
    }

    /// An absolute-form target (`GET http://host/path`) is read as nginx reads it: the path and
    /// query are the target, the URL's host the request's Host. An HTTP/1.0 request needs no Host;
    /// a broken escape in the query is passed on (nginx does not decode it).
    @Test func absoluteFormTargetsAndHostRules() throws {
        #expect(try parse("GET http://Example.com:8080/ns/x?q=%zz HTTP/1.1\r\nHost: other\r\n\r\n").heads
                == ["GET /ns/x?q=%zz HTTP/1.1 Host=Example.com:8080"])
        #expect(try parse("GET HTTPS://h?q=1 HTTP/1.1\r\n\r\n").heads == ["GET /?q=1 HTTP/1.1 Host=h"])
        #expect(try parse("GET /a%2Fb HTTP/1.0\r\n\r\n").heads == ["GET /a%2Fb HTTP/1.0 "])
    }

    /// Parses `bytes` cut at `cuts` (sorted offsets); whether it failed, and what came before.
    func parse(_ bytes: [UInt8], cuts: [Int], kind: HTTP1Parser.Kind) -> (Parsed, failed: Bool) {
        var parser = HTTP1Parser(kind: kind)
        var parsed = Parsed()
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            parser.append(ByteBuffer(bytes: bytes[start..<end]))
            start = end
            do {
                while let event = try parser.next() {
                    switch event {
                    case .requestHead(let head): parsed.heads.append("\(head.method.rawValue) \(head.uri) \(head.headers.count)")
                    case .responseHead(let head): parsed.heads.append("\(head.status.code) \(head.headers.count)")
                    case .body(let chunk): parsed.body += String(buffer: chunk)
                    case .end: parsed.ends += 1
                    }
                }
            } catch {
                return (parsed, true)
            }
        }
        if parser.finishAtEOF() != nil { parsed.ends += 1 }
        return (parsed, false)
    }

    /// Seeded mutations of valid message streams: the parser never traps, and what it makes of
    /// the bytes (messages, bodies, or a refusal) does not depend on how the reads cut them.
    @Test func mutatedInputsParseTheSameWhateverTheReadBoundaries() {
        let corpus: [(String, HTTP1Parser.Kind)] = [
            ("GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", .request),
            ("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nT: v\r\n\r\n", .request),
            ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", .response),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.0 200 OK\r\n\r\nrest", .response),
        ]
        let interesting: [UInt8] = Array("\r\n: \t0123456789abcdefABCDEF;-".utf8) + [0, 0x7F, 0xFF]
        var state: UInt64 = 0x5EED
        func random(_ bound: Int) -> Int {  // xorshift64*: seeded, so a failure replays
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return Int((state &* 0x2545_F491_4F6C_DD1D) >> 33) % bound
        }
        for round in 0..<3000 {
            let (text, kind) = corpus[round % corpus.count]
            var bytes = Array(text.utf8)
            for _ in 0..<random(4) {
                let position = random(bytes.count)
                switch random(3) {
                case 0: bytes[position] = interesting[random(interesting.count)]
                case 1: bytes.insert(interesting[random(interesting.count)], at: position)
                default: bytes.remove(at: position)
                }
            }
            let whole = parse(bytes, cuts: [], kind: kind)
            let cuts = (0..<random(6)).map { _ in random(bytes.count + 1) }.sorted()
            let pieces = parse(bytes, cuts: cuts, kind: kind)
            #expect(whole == pieces, "round \(round): \(String(decoding: bytes, as: UTF8.self).debugDescription) cut at \(cuts)")
        }
    }

    @Test func oversizedHeadsAreRefusedBeforeTheyEnd() {
        var parser = HTTP1Parser(kind: .request)
        parser.append(ByteBuffer(string: "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: HTTP1Parser.maxHeadSize)))
        #expect(throws: HTTP1ParseError.self) { _ = try parser.next() }
    }

    /// What kind of refusal the client is told (spec §8.4): a request line over 8 KiB, complete
    /// or still arriving, is nginx's 414; a head over the limit is its 494; a large head whose
    /// request line is short passes.
    @Test func tooLongRequestLinesAndTooLargeHeadsAreTold() {
        func kind(_ text: String) -> HTTP1ParseError.Kind? {
            var parser = HTTP1Parser(kind: .request)
            parser.append(ByteBuffer(string: text))
            do { _ = try parser.next(); return nil } catch { return (error as? HTTP1ParseError)?.kind }
        }
        let longURI = "/" + String(repeating: "u", count: HTTP1Parser.maxRequestLineSize)
        #expect(kind("GET \(longURI) HTTP/1.1\r\nHost: t\r\n\r\n") == .requestLineTooLong)
        #expect(kind("GET \(longURI)") == .requestLineTooLong, "refused before the line ends")
        #expect(kind("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: HTTP1Parser.maxHeadSize)) == .headTooLarge)
        #expect(kind("GET / HTTP/1.1\r\nHost: t\r\nCookie: " + String(repeating: "c", count: 20_000) + "\r\n\r\n") == nil)
        #expect(kind("GARBAGE\r\n\r\n") == .malformed)
        var response = HTTP1Parser(kind: .response)
        response.append(ByteBuffer(string: "HTTP/1.1 200 " + String(repeating: "r", count: 9000) + "\r\nContent-Length: 0\r\n\r\n"))
        #expect((try? response.next()) != nil, "the request-line limit is a request rule")
    }

    // MARK: Encoder

    func text(_ buffers: [ByteBuffer]) -> String { buffers.map { String(buffer: $0) }.joined() }

    @Test func responsesGetNIOsFramingAndUnsafeFieldsAreLeftOut() {
        var encoder = HTTP1Encoder()
        let allocator = ByteBufferAllocator()
        var headers = HTTPHeaders([("X-Ok", "1"), ("X-Bad", "a\r\nInjected: yes"), ("Bad Name", "x"),
                                   ("Transfer-Encoding", "gzip")])
        var written: [ByteBuffer] = [encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers),
                                                          answering: .GET, allocator: allocator)]
        encoder.body(ByteBuffer(string: "hello"), allocator: allocator) { written.append($0) }
        encoder.body(ByteBuffer(), allocator: allocator) { written.append($0) }  // would end the body: skipped
        if let last = encoder.end() { written.append(last) }
        #expect(text(written) == "HTTP/1.1 200 OK\r\nX-Ok: 1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")

        // A length keeps the body as it is; a HEAD answer keeps its head's fields and sends no body.
        headers = HTTPHeaders([("Content-Length", "5")])
        written = [encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers),
                                        answering: .HEAD, allocator: allocator)]
        encoder.body(ByteBuffer(string: "hello"), allocator: allocator) { written.append($0) }
        if let last = encoder.end() { written.append(last) }
        #expect(text(written) == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")

        // No body allowed: the framing fields go; HTTP/1.0 has no chunked framing; custom statuses
        // keep their phrase.
        let noContent = encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .noContent, headers: headers),
                                             answering: .GET, allocator: allocator)
        #expect(String(buffer: noContent) == "HTTP/1.1 204 No Content\r\n\r\n")
        var afterNoContent: [ByteBuffer] = []
        encoder.body(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n"), allocator: allocator) { afterNoContent.append($0) }
        #expect(afterNoContent.isEmpty, "a 204 carries no body: none is written after its head")
        #expect(encoder.end() == nil)
        let old = encoder.responseHead(HTTPResponseHead(version: .http1_0, status: .init(statusCode: 299, reasonPhrase: "Fine"),
                                                        headers: HTTPHeaders()),
                                       answering: .GET, allocator: allocator)
        #expect(String(buffer: old) == "HTTP/1.0 299 Fine\r\n\r\n")
        #expect(encoder.end() == nil)
    }

    @Test func requestsGetChunkedOnlyWhenTheyMayHaveABodyOfUnknownLength() {
        var encoder = HTTP1Encoder()
        let allocator = ByteBufferAllocator()
        let post = encoder.requestHead(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/p",
                                                       headers: HTTPHeaders([("Host", "u")])), allocator: allocator)
        #expect(String(buffer: post) == "POST /p HTTP/1.1\r\nHost: u\r\nTransfer-Encoding: chunked\r\n\r\n")
        var chunks: [ByteBuffer] = []
        let large = ByteBuffer(repeating: UInt8(ascii: "x"), count: HTTP1Encoder.copiedChunkLimit + 1)
        encoder.body(large, allocator: allocator) { chunks.append($0) }
        #expect(chunks.count == 3, "a large chunk is not copied")
        #expect(text(chunks) == "1001\r\n" + String(repeating: "x", count: 4097) + "\r\n")
        #expect(encoder.end().map { String(buffer: $0) } == "0\r\n\r\n")

        let get = encoder.requestHead(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/g",
                                                      headers: HTTPHeaders([("Content-Length", "0"), ("Transfer-Encoding", "chunked")])),
                                      allocator: allocator)
        #expect(String(buffer: get) == "GET /g HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(encoder.end() == nil)
    }

    @Test func whatTheEncoderWritesTheParserReadsBack() throws {
        var encoder = HTTP1Encoder()
        let allocator = ByteBufferAllocator()
        var wire = [encoder.requestHead(HTTPRequestHead(version: .http1_1, method: .PATCH, uri: "/x?q=1",
                                                        headers: HTTPHeaders([("Host", "u"), ("A", "b")])),
                                        allocator: allocator)]
        for piece in ["one", "", "two", String(repeating: "z", count: 5000)] {
            encoder.body(ByteBuffer(string: piece), allocator: allocator) { wire.append($0) }
        }
        if let last = encoder.end() { wire.append(last) }
        let parsed = try parse(text(wire), pieceSize: 7)
        #expect(parsed.heads == ["PATCH /x?q=1 HTTP/1.1 Host=u;A=b;Transfer-Encoding=chunked"])
        #expect(parsed.body == "onetwo" + String(repeating: "z", count: 5000))
        #expect(parsed.ends == 1)
    }
}
