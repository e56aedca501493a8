import Core
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// `proxy_access_log` end to end: what nginx writes with Kong's `kong_log_format`, one line per
/// request, for answers from the upstream, from the gateway and for clients that left.
@Suite(.serialized)
struct AccessLogTests {
    /// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
    /// "$http_referer" "$http_user_agent" kong_request_id: "$kong_request_id"`
    nonisolated(unsafe) static let line = try! Regex(
        #"^(\S+) - (\S+) \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" kong_request_id: "([^"]*)"$"#)

    struct Line {
        let remoteAddress, remoteUser, time, request: String
        let status, bodyBytes: Int
        let referer, userAgent, requestID: String
    }

    static func parse(_ text: Substring) throws -> Line {
        let match = try #require(try line.wholeMatch(in: String(text)), "not kong_log_format: \(text)")
        let parts = match.output.dropFirst().map { $0.substring.map(String.init) ?? "" }
        return Line(remoteAddress: parts[0], remoteUser: parts[1], time: parts[2], request: parts[3],
                    status: Int(parts[4])!, bodyBytes: Int(parts[5])!, referer: parts[6], userAgent: parts[7],
                    requestID: parts[8])
    }

    /// The file's lines once it holds `count` (lines are written when the loop's turn ends).
    static func lines(_ path: String, count: Int) async throws -> [Line] {
        for _ in 0..<200 {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n")
            if lines.count >= count { return try lines.map(parse) }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("fewer than \(count) lines in \(path)")
        return []
    }

    /// A gateway with one route to the mock upstream at `path`, logging to a fresh file.
    static func harness(routePath: String, options: ProxyOptions = ProxyOptions()) async throws
        -> (harness: ProxyHarness, log: String, directory: URL) {
        let directory = try TemporaryDirectory.make("access-log")
        let log = directory.appendingPathComponent("access.log").path
        let h = try await ProxyHarness.start("""
        services:
        - name: echo
          url: UPSTREAM
          routes:
          - name: echo
            paths: ["\(routePath)"]
        """, options: options, accessLog: try AccessLog(path: log))
        return (h, log, directory)
    }

    @Test func eachRequestGetsKongsLogFormatLine() async throws {
        let (h, path, directory) = try await Self.harness(routePath: "/echo")
        defer { try? FileManager.default.removeItem(at: directory) }
        defer { Task { await h.stop() } }

        let proxied = try await h.send("/echo/a?b=1", method: .POST,
                                       headers: [("User-Agent", "tester \"quoted\" é"), ("Referer", "http://from/x"),
                                                 ("Authorization", "Basic " + Data("ann:secret".utf8).base64EncodedString())],
                                       body: "hello")
        #expect(proxied.status == 200)
        let unrouted = try await h.send("/nowhere")
        #expect(unrouted.status == 404)
        let lines = try await Self.lines(path, count: 2)
        try #require(lines.count == 2)

        let first = lines[0]
        #expect(first.remoteAddress == "127.0.0.1")
        #expect(first.remoteUser == "ann", "the Basic user name, never the password")
        #expect(first.request == "POST /echo/a?b=1 HTTP/1.1")
        #expect(first.status == 200)
        #expect(first.bodyBytes == proxied.bytes.readableBytes, "body bytes only, without the head")
        #expect(first.referer == "http://from/x")
        #expect(first.userAgent == #"tester \x22quoted\x22 \xC3\xA9"#, "nginx's escaping: quotes and bytes from 0x7F")
        #expect(first.requestID == proxied.headers.first(name: "x-kong-request-id"))

        let second = lines[1]
        #expect(second.remoteUser == "-")
        #expect(second.request == "GET /nowhere HTTP/1.1")
        #expect(second.status == 404)
        #expect(second.bodyBytes == unrouted.bytes.readableBytes)
        #expect(second.referer == "-")
        #expect(second.requestID == unrouted.headers.first(name: "x-kong-request-id"))
        #expect(!(try String(contentsOfFile: path, encoding: .utf8)).contains("secret"))
    }

    /// A client that leaves before the answer is logged with nginx's 499 and no body bytes; an
    /// HTTP/1.0 request line and an absolute-form target are logged as they came; a request whose
    /// body breaks off gets the 400 it was answered with.
    @Test func requestsAreLoggedAsTheyCameAndEnded() async throws {
        let (h, path, directory) = try await Self.harness(routePath: "/")
        defer { try? FileManager.default.removeItem(at: directory) }
        defer { Task { await h.stop() } }

        let answer = try await h.rawExchange("GET /echo/old HTTP/1.0\r\nHost: example\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.0 200"), "\(answer)")
        let connection = try await h.rawConnection()
        try await connection.executeThenClose { _, outbound in
            try await outbound.write(ByteBuffer(string: "GET /slow HTTP/1.1\r\nHost: example\r\n\r\n"))
            try await Task.sleep(for: .milliseconds(200))
        }
        var lines = try await Self.lines(path, count: 2)
        try #require(lines.count == 2)
        #expect(lines[0].request == "GET /echo/old HTTP/1.0")
        #expect(lines[0].status == 200)
        #expect(lines[1].request == "GET /slow HTTP/1.1")
        #expect(lines[1].status == 499)
        #expect(lines[1].bodyBytes == 0)

        let absolute = try await h.rawExchange("GET http://example.test/echo/abs?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
        #expect(absolute.hasPrefix("HTTP/1.1 200"), "\(absolute)")
        let broken = try await h.rawExchange("POST /echo/broken HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        #expect(broken.hasPrefix("HTTP/1.1 400"), "\(broken)")
        // nginx's body_bytes_sent is what was sent minus the answer's head: a 100 Continue counts.
        let continued = try await h.rawExchange("POST /echo/continued HTTP/1.1\r\nHost: example\r\nExpect: 100-continue\r\n"
            + "Content-Length: 2\r\nConnection: close\r\n\r\nhi")
        #expect(continued.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), "\(continued)")
        lines = try await Self.lines(path, count: 5)
        try #require(lines.count == 5)
        #expect(lines[2].request == "GET http://example.test/echo/abs?q=1 HTTP/1.1")
        #expect(lines[3].request == "POST /echo/broken HTTP/1.1")
        #expect(lines[3].status == 400)
        let brokenParts = broken.components(separatedBy: "\r\n\r\n")
        #expect(lines[3].bodyBytes == brokenParts[1].utf8.count)
        #expect(brokenParts[0].lowercased().contains("x-kong-request-id: \(lines[3].requestID)"),
                "the refusal names the request's own ID: \(broken)")
        let continuedBody = continued.components(separatedBy: "\r\n\r\n").dropFirst(2).joined(separator: "\r\n\r\n")
        #expect(lines[4].bodyBytes == continuedBody.utf8.count + "HTTP/1.1 100 Continue\r\n\r\n".utf8.count)
    }

    /// nginx logs a request whose head it never parsed, with `$request` the first line as read
    /// and the head's fields unknown: refused (400, 414: the answer's body bytes and request ID),
    /// cut off by the client (400) or timed out (408), none with a body sent. A target that is
    /// not UTF-8 is logged with its own bytes. A connection that sends nothing is not logged.
    @Test func headsNeverParsedAreLoggedAsNginxLogsThem() async throws {
        var options = ProxyOptions()
        options.clientTimeouts.header = .milliseconds(300)
        let (h, path, directory) = try await Self.harness(routePath: "/", options: options)
        defer { try? FileManager.default.removeItem(at: directory) }
        defer { Task { await h.stop() } }

        /// Sends `bytes` and reads until the gateway closes (`close`: the client closes at once).
        func send(_ bytes: [UInt8], close: Bool = false) async throws -> String {
            try await h.rawConnection().executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(bytes: bytes))
                if close { return "" }
                var text = ""
                for try await chunk in inbound { text += String(buffer: chunk) }
                return text
            }
        }
        func body(_ answer: String) -> String { answer.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n") }

        let garbage = try await send([0x16, 0x03, 0x01] + Array("hello\r\nHost: x\r\n\r\n".utf8))
        #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")
        var lines = try await Self.lines(path, count: 1)
        try #require(lines.count == 1)
        #expect(lines[0].request == #"\x16\x03\x01hello"#)
        #expect(lines[0].status == 400)
        #expect(lines[0].bodyBytes == body(garbage).utf8.count)
        #expect(lines[0].remoteAddress == "127.0.0.1")
        #expect(lines[0].userAgent == "-" && lines[0].referer == "-" && lines[0].remoteUser == "-")
        #expect(garbage.lowercased().contains("x-kong-request-id: \(lines[0].requestID)"), "the answer names the logged ID")

        let longTarget = "/" + String(repeating: "a", count: 9000)
        let tooLong = try await send(Array("GET \(longTarget) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(tooLong.hasPrefix("HTTP/1.1 414"), "\(tooLong.prefix(200))")
        lines = try await Self.lines(path, count: 2)
        try #require(lines.count == 2)
        #expect(lines[1].status == 414)
        #expect(lines[1].request == String("GET \(longTarget)".prefix(8 * 1024)), "up to nginx's 8k buffer")

        _ = try await send(Array("GET /half HTTP/1.1\r\nHost: x\r\n".utf8), close: true)
        lines = try await Self.lines(path, count: 3)
        try #require(lines.count == 3)
        #expect(lines[2].request == "GET /half HTTP/1.1")
        #expect(lines[2].status == 400, "nginx: client prematurely closed connection")
        #expect(lines[2].bodyBytes == 0)

        let silent = try await send(Array("GET /stalled HTTP/1.1\r\nHost".utf8))
        #expect(silent.isEmpty, "a head timeout closes without an answer: \(silent)")
        lines = try await Self.lines(path, count: 4)
        try #require(lines.count == 4)
        _ = try await send([], close: true)  // a connection that sends nothing: no line
        _ = try await send(Array("\r\n".utf8), close: true)  // nor one that sends only empty lines

        var notUTF8 = Array("GET /echo/caf".utf8) + [0xE9]
        notUTF8 += Array(" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        let proxied = try await send(notUTF8)
        #expect(proxied.hasPrefix("HTTP/1.1 200"), "\(proxied)")
        lines = try await Self.lines(path, count: 5)
        try #require(lines.count == 5)
        #expect(lines[3].request == "GET /stalled HTTP/1.1")
        #expect(lines[3].status == 408)
        #expect(lines[3].bodyBytes == 0)
        #expect(lines[4].request == #"GET /echo/caf\xE9 HTTP/1.1"#, "the byte received, as nginx logs it")
        try await Task.sleep(for: .milliseconds(100))
        let total = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count
        #expect(total == 5, "no line for connections that sent no head")
    }
}
