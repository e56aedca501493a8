import Core
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// An upstream for proxy tests, on 127.0.0.1 with a random port. Paths:
/// - `/echo...` (any other path too): JSON of what arrived (method, uri, headers, body length);
/// - `/sse`: an event stream whose last event waits for `releaseStream()`;
/// - `/slow`: answers after `slowDelay`;
/// - `/status/<n>`: that status;
/// - `/dated`: an answer with its own `Date` (`fixedDate`);
/// - `/drop…`: closes the connection after reading the request, without answering;
/// - `/flaky…`: every other request (the first, third…) dropped like `/drop`, the others echoed;
/// - `/cut`: announces a 100-byte body, sends 50 bytes of it and closes the connection.
final class MockUpstream: Sendable {
    static let fixedDate = "Tue, 01 Jan 2030 00:00:00 GMT"
    let port: Int
    private let channel: any Channel
    private let accepted = NIOLockedValueBox(0)
    private let dropped = NIOLockedValueBox(0)
    private let flaky = NIOLockedValueBox(0)
    struct DroppedConnection: Error {}

    /// Requests `/drop…` received (each answered by closing the connection).
    var droppedRequests: Int { dropped.withLockedValue { $0 } }
    /// Whether `/sse` may finish, and the responses waiting for that.
    private let streamGate = NIOLockedValueBox<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))
    let slowDelay: TimeAmount

    var acceptedConnections: Int { accepted.withLockedValue { $0 } }

    private init(port: Int, channel: any Channel, slowDelay: TimeAmount) {
        self.port = port
        self.channel = channel
        self.slowDelay = slowDelay
    }

    /// `tls`: serve HTTPS with a fresh self-signed certificate.
    static func start(slowDelay: TimeAmount = .seconds(3), tls: Bool = false) async throws -> MockUpstream {
        let sslContext: NIOSSLContext?
        if tls {
            let (certificate, key) = try TestCertificate.make()
            sslContext = try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
        } else {
            sslContext = nil
        }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        let upstream = MockUpstream(port: server.channel.localAddress!.port!, channel: server.channel, slowDelay: slowDelay)
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        upstream.accepted.withLockedValue { $0 += 1 }
                        group.addTask { try? await upstream.serve(connection) }
                    }
                }
            }
        }
        return upstream
    }

    func stop() async { try? await channel.close() }

    /// Lets the `/sse` response send its last event and finish.
    func releaseStream() {
        let waiting = streamGate.withLockedValue { gate -> [CheckedContinuation<Void, Never>] in
            gate.open = true
            defer { gate.waiting = [] }
            return gate.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    private func waitForRelease() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = streamGate.withLockedValue { gate -> Bool in
                if !gate.open { gate.waiting.append(continuation) }
                return gate.open
            }
            if open { continuation.resume() }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var bodyLength = 0
            for try await part in inbound {
                switch part {
                case .head(let h):
                    head = h
                    bodyLength = 0
                case .body(let buffer):
                    bodyLength += buffer.readableBytes
                case .end:
                    guard let head else { continue }
                    try await respond(to: head, bodyLength: bodyLength, outbound: outbound)
                }
            }
        }
    }

    private func respond(to head: HTTPRequestHead, bodyLength: Int,
                         outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        func send(_ status: Int, _ body: String, contentType: String = "application/json",
                  extra: [(String, String)] = []) async throws {
            var headers = HTTPHeaders(extra)
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            headers.add(name: "Server", value: "mock-upstream")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
            try await outbound.write(.end(nil))
        }
        if head.uri == "/sse" {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/event-stream")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "data: first\n\n"))))
            await waitForRelease()
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "data: last\n\n"))))
            try await outbound.write(.end(nil))
            return
        }
        if head.uri.hasPrefix("/flaky"), flaky.withLockedValue({ count in count += 1; return count % 2 == 1 }) {
            throw DroppedConnection()
        }
        if head.uri.hasPrefix("/drop") {
            // Reads the request whole, then closes the connection without a word.
            dropped.withLockedValue { $0 += 1 }
            throw DroppedConnection()
        }
        if head.uri == "/cut" {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "100")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: String(repeating: "c", count: 50)))))
            throw DroppedConnection()
        }
        if head.uri == "/slow" {
            try await Task.sleep(nanoseconds: UInt64(slowDelay.nanoseconds))
            try await send(200, "{\"slow\":true}")
            return
        }
        if head.uri == "/dated" {
            try await send(200, "dated", contentType: "text/plain", extra: [("Date", Self.fixedDate)])
            return
        }
        if head.uri.hasPrefix("/status/"), let code = Int(head.uri.dropFirst("/status/".count)) {
            try await send(code, "upstream \(code)", contentType: "text/plain")
            return
        }
        var headers: [String: JSONValue] = [:]
        for (name, value) in head.headers {
            let key = name.lowercased()
            headers[key] = .array((headers[key]?.arrayValue ?? []) + [.string(value)])
        }
        let echo: JSONValue = ["method": .string(head.method.rawValue), "uri": .string(head.uri),
                               "headers": .object(headers), "body_length": .number(Double(bodyLength))]
        try await send(200, echo.serialized())
    }
}
