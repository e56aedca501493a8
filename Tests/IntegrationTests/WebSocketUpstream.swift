import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A raw TCP upstream that accepts WebSocket upgrades, on 127.0.0.1 with a random port. It reads a
/// request head, records it, and answers `101 Switching Protocols` when the request asked for
/// WebSocket, or whatever the path is (`/unasked…`: a 101 even without an upgrade; otherwise a
/// 400); `/slow…` waits 300 ms before answering. After a 101 it echoes each read upper-cased (so what comes back is provably the
/// upstream's), and on `bye` answers `BYE` and closes. Frames are not parsed: the gateway passes
/// bytes, so any bytes do.
final class WebSocketUpstream: Sendable {
    let port: Int
    private let channel: any Channel
    private let heads = NIOLockedValueBox<[String]>([])
    private let closes = NIOLockedValueBox(0)

    /// The request heads received, as text.
    var requestHeads: [String] { heads.withLockedValue { $0 } }
    /// Connections that ended (closed by either side).
    var closedConnections: Int { closes.withLockedValue { $0 } }

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    static func start() async throws -> WebSocketUpstream {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let upstream = WebSocketUpstream(port: server.channel.localAddress!.port!, channel: server.channel)
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            try? await upstream.serve(connection)
                            upstream.closes.withLockedValue { $0 += 1 }
                        }
                    }
                }
            }
        }
        return upstream
    }

    func stop() async { try? await channel.close() }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var received = ""
            while !received.contains("\r\n\r\n"), let chunk = try await iterator.next() { received += String(buffer: chunk) }
            guard let end = received.range(of: "\r\n\r\n") else { return }
            let head = String(received[..<end.lowerBound])
            heads.withLockedValue { $0.append(head) }
            let asked = head.lowercased().contains("\r\nupgrade: websocket")
            if head.hasPrefix("GET /slow") { try await Task.sleep(for: .milliseconds(300)) }
            guard asked || head.hasPrefix("GET /unasked") else {
                try await outbound.write(ByteBuffer(string: "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno"))
                return
            }
            try await outbound.write(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"))
            var pending = String(received[end.upperBound...])
            while true {
                if !pending.isEmpty {
                    try await outbound.write(ByteBuffer(string: pending.uppercased()))
                    if pending.hasSuffix("bye") { return }
                    pending = ""
                }
                guard let chunk = try await iterator.next() else { return }
                pending = String(buffer: chunk)
            }
        }
    }
}
