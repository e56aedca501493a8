import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The proxy listener(s): HTTP/1.1 with keep-alive, one task per client connection, requests
/// of a connection served in order (spec §8). Stops accepting on `shutdown()` and lets requests
/// in flight finish.
public final class ProxyServer: Sendable {
    let engine: ProxyEngine
    let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    struct State {
        var listeners: [any Channel] = []
        var connections: [ObjectIdentifier: ConnectionEntry] = [:]
        var draining = false
    }

    struct ConnectionEntry {
        let channel: any Channel
        var busy: Bool
    }

    public init(holder: ConfigurationHolder, upstream: UpstreamClient, logSink: LogSink, group: any EventLoopGroup) {
        engine = ProxyEngine(holder: holder, upstream: upstream, logSink: logSink)
        self.group = group
    }

    /// Binds every address; returns the bound ports (useful with port 0).
    public func bind(_ addresses: [ListenAddress]) async throws -> [NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>] {
        var servers: [NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>] = []
        for address in addresses {
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
            state.withLockedValue { $0.listeners.append(server.channel) }
            servers.append(server)
        }
        return servers
    }

    /// Accepts connections until the listeners close, then waits for open connections to finish.
    public func serve(_ servers: [NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>]) async {
        await withDiscardingTaskGroup { group in
            for server in servers {
                group.addTask {
                    try? await withThrowingDiscardingTaskGroup { connections in
                        try await server.executeThenClose { inbound in
                            for try await connection in inbound {
                                connections.addTask { await self.handle(connection) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Stops accepting, closes idle connections; busy ones close after their current response.
    public func shutdown() {
        let (listeners, idle) = state.withLockedValue { state -> ([any Channel], [any Channel]) in
            state.draining = true
            return (state.listeners, state.connections.values.filter { !$0.busy }.map(\.channel))
        }
        for channel in listeners { channel.close(promise: nil) }
        for channel in idle { channel.close(promise: nil) }
    }

    private func handle(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        let registered = state.withLockedValue { state -> Bool in
            guard !state.draining else { return false }
            state.connections[id] = ConnectionEntry(channel: channel, busy: false)
            return true
        }
        guard registered else {
            try? await connection.channel.close()
            return
        }
        defer { state.withLockedValue { _ = $0.connections.removeValue(forKey: id) } }
        let info = ConnectionInfo(clientAddress: channel.remoteAddress?.ipAddress ?? "unknown",
                                  localPort: channel.localAddress?.port ?? 0, isTLS: false)
        try? await connection.executeThenClose { inbound, outbound in
            let reader = ConnectionReader(inbound.makeAsyncIterator())
            let sink = ChannelSink(writer: outbound)
            while let head = try await reader.nextHead() {
                let proceed = state.withLockedValue { state -> Bool in
                    guard !state.draining else { return false }
                    state.connections[id]?.busy = true
                    return true
                }
                guard proceed else { break }
                let keepAlive = try await engine.serve(head: head, body: RequestBodySource(reader: reader), sink: sink,
                                                       connection: info)
                let draining = state.withLockedValue { state -> Bool in
                    state.connections[id]?.busy = false
                    return state.draining
                }
                if !keepAlive || draining { break }
            }
        }
    }
}

struct ChannelSink: ResponseSink {
    let writer: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    func write(_ part: HTTPServerResponsePart) async throws { try await writer.write(part) }
}

/// Reads a connection's request parts: heads for the server loop, bodies for whoever proxies them.
/// Used by one task at a time (the connection's), hence unchecked.
final class ConnectionReader: @unchecked Sendable {
    private var iterator: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator
    private var inBody = false

    init(_ iterator: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator) {
        self.iterator = iterator
    }

    /// The next request head, after skipping what is left of the previous body.
    func nextHead() async throws -> HTTPRequestHead? {
        while try await nextBodyChunk() != nil {}
        while let part = try await iterator.next() {
            if case .head(let head) = part {
                inBody = true
                return head
            }
        }
        return nil
    }

    /// The next chunk of the current request body; nil at its end.
    func nextBodyChunk() async throws -> ByteBuffer? {
        guard inBody else { return nil }
        while let part = try await iterator.next() {
            switch part {
            case .body(let buffer): return buffer
            case .end: inBody = false; return nil
            case .head: inBody = false; return nil
            }
        }
        inBody = false
        return nil
    }
}

/// The request body as an async sequence, pulled from the connection only when the upstream
/// takes it: backpressure end to end, nothing buffered whole.
struct RequestBodySource: Sendable {
    let reader: ConnectionReader

    var sequence: Chunks { Chunks(reader: reader) }

    struct Chunks: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        let reader: ConnectionReader
        struct AsyncIterator: AsyncIteratorProtocol {
            let reader: ConnectionReader
            mutating func next() async throws -> ByteBuffer? { try await reader.nextBodyChunk() }
        }
        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader) }
    }
}

/// Log-phase work, run off the request path by one draining task.
public final class LogSink: Sendable {
    private let stream: AsyncStream<@Sendable () -> Void>
    private let continuation: AsyncStream<@Sendable () -> Void>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: (@Sendable () -> Void).self)
    }

    func submit(_ work: @escaping @Sendable () -> Void) { continuation.yield(work) }

    /// Runs queued log work until `finish()`.
    public func run() async {
        for await work in stream { work() }
    }

    public func finish() { continuation.finish() }
}
