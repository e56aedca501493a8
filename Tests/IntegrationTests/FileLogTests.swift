import Core
import Foundation
import Testing

/// file-log end to end: the file handling (`reopen`) and the fields of Kong's log serializer, as
/// written for real requests through the gateway.
@Suite(.serialized)
struct FileLogTests {
    /// A fresh directory, removed by the caller.
    static func temporaryDirectory() throws -> URL { try TemporaryDirectory.make("file-log") }

    /// The `request.uri` of each line.
    static func uris(_ lines: [String]) -> [String?] {
        lines.map { (try? JSONValue.parse($0))?["request"]?["uri"]?.stringValue }
    }

    /// `reopen: true` opens the file for every line, so a rotated (renamed) log is followed by a new
    /// file at the path; `reopen: false` keeps writing to the descriptor it has, i.e. the renamed file.
    @Test func reopenFollowsRotation() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let reopened = directory.appendingPathComponent("reopened.log").path
        let kept = directory.appendingPathComponent("kept.log").path
        let h = try await ProxyHarness.start("""
        services:
        - name: echo
          url: UPSTREAM
          routes:
          - name: reopened
            paths: ["/reopened"]
            plugins:
            - {name: file-log, config: {path: "\(reopened)", reopen: true}}
          - name: kept
            paths: ["/kept"]
            plugins:
            - {name: file-log, config: {path: "\(kept)", reopen: false}}
        """)
        defer { Task { await h.stop() } }

        for (route, path) in [("reopened", reopened), ("kept", kept)] {
            #expect(try await h.send("/\(route)/first").status == 200)
            let first = try await AIProxyTests.logLines(path, atLeast: 1)
            try #require(first.count == 1, "\(route): \(first)")
            #expect(Self.uris(first) == ["/\(route)/first"])
            try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        }

        #expect(try await h.send("/reopened/second").status == 200)
        let fresh = try await AIProxyTests.logLines(reopened, atLeast: 1)
        #expect(Self.uris(fresh) == ["/reopened/second"], "reopen: the second line starts a new file at the path")
        #expect(Self.uris(try await AIProxyTests.logLines(reopened + ".1", atLeast: 1)) == ["/reopened/first"],
                "the rotated file is left alone")

        #expect(try await h.send("/kept/second").status == 200)
        let rotated = try await AIProxyTests.logLines(kept + ".1", atLeast: 2)
        #expect(Self.uris(rotated) == ["/kept/first", "/kept/second"], "no reopen: the open descriptor follows the renamed file")
        #expect(!FileManager.default.fileExists(atPath: kept), "no new file at the path without reopen")
    }

    /// `upstream_status` is nginx's `$upstream_status`: one status per try, a try that got no
    /// answer as 502 (504 for a timeout), and nothing when no upstream was tried.
    @Test func upstreamStatusListsEveryTry() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tries.log").path
        let h = try await ProxyHarness.start("""
        services:
        - name: flaky
          url: UPSTREAM
          retries: 3
          routes:
          - {name: tries, paths: ["/drop", "/flaky"], strip_path: false}
        - name: closed
          url: http://127.0.0.1:1
          retries: 1
          routes:
          - {name: refused, paths: ["/refused"]}
        - name: slow
          url: UPSTREAM
          read_timeout: 200
          retries: 1
          routes:
          - {name: slow, paths: ["/slow"], strip_path: false}
        plugins:
        - {name: file-log, config: {path: "\(path)"}}
        """)
        defer { Task { await h.stop() } }

        #expect(try await h.send("/drop", method: .POST).status == 502)
        #expect(try await h.send("/drop").status == 502)
        #expect(try await h.send("/flaky").status == 200)
        #expect(try await h.send("/refused").status == 502)
        #expect(try await h.send("/slow").status == 504)
        #expect(try await h.send("/slow", method: .POST).status == 504)
        let lines = try await AIProxyTests.logLines(path, atLeast: 6)
        let statuses = lines.map { (try? JSONValue.parse($0))?["upstream_status"]?.stringValue }
        #expect(statuses == ["502", "502, 502, 502, 502", "502, 200", "502, 502", "504, 504", "504"],
                """
                a sent POST is tried once; a GET 1 + retries times; the flaky GET answers on its second try; \
                a read timeout is 504, tried again for a GET (nginx's proxy_next_upstream timeout), not for a sent POST
                """)
    }

    /// The serializer's request, upstream and latency fields for a proxied request, and for one a
    /// plugin answered itself.
    @Test func serializerFields() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let proxiedLog = directory.appendingPathComponent("proxied.log").path
        let refusedLog = directory.appendingPathComponent("refused.log").path
        let h = try await ProxyHarness.start("""
        services:
        - name: echo
          url: UPSTREAM
          routes:
          - name: logged
            paths: ["/logged"]
            plugins:
            - {name: file-log, config: {path: "\(proxiedLog)"}}
          - name: refused
            paths: ["/refused"]
            plugins:
            - {name: ai-proxy, config: {route_type: llm/v1/chat, logging: {}, model: {provider: openai, name: gpt-4o-mini}}}
            - {name: file-log, config: {path: "\(refusedLog)"}}
        """)
        defer { Task { await h.stop() } }

        let proxied = try await h.send("/logged/items?a=1&a=2&b")
        #expect(proxied.status == 200)
        let echoedURI = try #require(proxied.json?["uri"]?.stringValue)
        let lines = try await AIProxyTests.logLines(proxiedLog, atLeast: 1)
        try #require(lines.count == 1, "\(lines)")
        let entry = try JSONValue.parse(lines[0])
        #expect(entry["route"]?["name"] == "logged")
        #expect(entry["service"]?["name"] == "echo")
        #expect(Array(lines[0].utf8) == entry.serializedBytes(.kong),
                "the line, with its cached route and service, is what the serializer writes for the document")
        #expect(entry["request"]?["querystring"] == ["a": ["1", "2"], "b": true])
        #expect(entry["request"]?["uri"] == "/logged/items?a=1&a=2&b")
        #expect(entry["client_ip"] == "127.0.0.1")
        #expect(entry["source"] == "upstream")
        #expect(entry["upstream_status"] == "200")
        #expect(entry["response"]?["status"] == 200)
        #expect(entry["upstream_uri"] == "/items?a=1&a=2&b", "the stripped path and the query, as sent upstream")
        #expect(entry["upstream_uri"]?.stringValue == echoedURI, "what the upstream received")
        let latencies = try #require(entry["latencies"])
        let kong = try #require(latencies["kong"]?.numberValue)
        let proxy = try #require(latencies["proxy"]?.numberValue)
        let request = try #require(latencies["request"]?.numberValue)
        #expect(kong >= 0 && proxy >= 0 && request >= 0, "\(latencies.serialized())")
        #expect(request >= proxy && request >= kong, "the whole request includes both parts: \(latencies.serialized())")

        // ai-proxy refuses the body itself: nothing proxied.
        let refused = try await h.send("/refused", method: .POST, headers: [("Content-Type", "application/json")], body: "{}")
        #expect(refused.status == 400, "\(refused.body)")
        let refusedLines = try await AIProxyTests.logLines(refusedLog, atLeast: 1)
        try #require(refusedLines.count == 1, "\(refusedLines)")
        let generated = try JSONValue.parse(refusedLines[0])
        #expect(generated["source"] == "kong")
        #expect(generated["latencies"]?["proxy"] == -1)
        #expect((generated["latencies"]?["kong"]?.numberValue ?? -1) >= 0)
        #expect(generated["response"]?["status"] == 400)
        #expect(generated["upstream_status"] == "", "no upstream answered: Kong writes an empty string")
        #expect(generated["client_ip"] == "127.0.0.1")
        #expect(h.upstream.acceptedConnections == 1, "only the proxied request reached the upstream")
    }
}

extension FileLogTests {
    /// With `hide_credentials`, the consumer's key is in no part of the log line: not the query
    /// string, not `uri` or `url` (Kong writes nginx's original `request_uri` there, key
    /// included; docs/decisions.md), not the headers, not `upstream_uri`.
    @Test func hiddenCredentialsStayOutOfTheLogLine() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("keys.log").path
        let h = try await ProxyHarness.start("""
        services:
        - name: echo
          url: UPSTREAM
          routes:
          - name: secured
            paths: ["/secured"]
            plugins:
            - {name: key-auth, config: {hide_credentials: true}}
            - {name: file-log, config: {path: "\(logPath)"}}
        consumers:
        - username: alice
          keyauth_credentials: [{key: s3cret-key}]
        """)
        defer { Task { await h.stop() } }
        #expect(try await h.send("/secured/a?q=1&apikey=s3cret-key").status == 200)
        #expect(try await h.send("/secured/b", headers: [("apikey", "s3cret-key")]).status == 200)
        let lines = try await AIProxyTests.logLines(logPath, atLeast: 2)
        try #require(lines.count == 2, "\(lines)")
        for line in lines { #expect(!line.contains("s3cret"), "\(line)") }
        let byQuery = try JSONValue.parse(lines[0])
        #expect(byQuery["request"]?["uri"] == "/secured/a?q=1")
        #expect(byQuery["request"]?["querystring"] == ["q": "1"])
        #expect(byQuery["consumer"]?["username"] == "alice")
    }
}

/// A new, empty folder under the system's temporary directory (the caller removes it).
enum TemporaryDirectory {
    static func make(_ purpose: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-\(purpose)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }
}

extension FileLogTests {
    /// As nginx reports them to Kong's serializer: `request.size` and `response.size` are the
    /// bytes received and sent (`request_length`, `bytes_sent`: head and body, the body in its
    /// chunked framing); `response.headers` has the `connection` and `transfer-encoding` that
    /// `ngx.resp.get_headers()` adds; `request.url` has `$host` (lower-cased, no port). The route
    /// and service leave their unset fields out, as the DAO selects them.
    @Test func sizesHeadersAndEntitiesAsNginxReportsThem() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("sizes.log").path
        let h = try await ProxyHarness.start("""
        services:
        - name: echo
          url: UPSTREAM
          routes:
          - name: logged
            paths: ["/logged"]
            plugins:
            - {name: file-log, config: {path: "\(logPath)"}}
        """)
        defer { Task { await h.stop() } }
        h.upstream.releaseStream()

        // A chunked answer on a connection the client closes.
        let request = "POST /logged/sse HTTP/1.1\r\nHost: GW.Example:1234\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        let answer = try await h.rawExchange(request)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        // A length-framed answer on a connection kept alive.
        #expect(try await h.send("/logged/echo").status == 200)

        let lines = try await AIProxyTests.logLines(logPath, atLeast: 2)
        try #require(lines.count == 2, "\(lines)")
        let chunked = try JSONValue.parse(lines[0])
        #expect(chunked["request"]?["size"]?.intValue == request.utf8.count)
        #expect(chunked["response"]?["size"]?.intValue == answer.utf8.count, "\(answer)")
        #expect(chunked["response"]?["headers"]?["connection"] == "close")
        #expect(chunked["response"]?["headers"]?["transfer-encoding"] == "chunked")
        #expect(chunked["request"]?["url"]?.stringValue == "http://gw.example:\(h.port)/logged/sse")
        for name in ["route", "service"] {
            let entity = try #require(chunked[name]?.objectValue)
            #expect(!entity.values.contains(.null), "\(name): \(entity)")
        }
        #expect(chunked["route"]?["hosts"] == nil && chunked["route"]?["paths"] == ["/logged"])

        let kept = try JSONValue.parse(lines[1])
        #expect(kept["response"]?["headers"]?["connection"] == "keep-alive")
        #expect(kept["response"]?["headers"]?["transfer-encoding"] == nil)
        #expect(kept["response"]?["headers"]?["content-length"] != nil)
    }
}
