import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// The proxy listener(s): HTTP/1.1 with keep-alive, one `ProxyConnectionHandler` per client
/// connection on its event loop (spec §8). `shutdown()` stops accepting and lets requests in
/// flight finish.
public final class ProxyServer: Sendable {
    let services: ProxyServices
    let group: any EventLoopGroup
    private let listeners = NIOLockedValueBox<[any Channel]>([])

    init(services: ProxyServices, group: any EventLoopGroup) {
        self.services = services
        self.group = group
    }

    /// Binds every address; returns the bound ports in order.
    func bind(_ addresses: [ListenAddress], tls: NIOSSLContext?) async throws -> [Int] {
        var ports: [Int] = []
        for address in addresses {
            let services = self.services
            let sslContext = address.ssl ? tls : nil
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        let proxy = ProxyConnectionHandler(services: services, isTLS: sslContext != nil)
                        if let sslContext {
                            // Reads the ClientHello's server name first (routes may match on `snis`),
                            // then lets the TLS handler behind it take the bytes.
                            let eventLoop = channel.eventLoop
                            try sync.addHandler(ByteToMessageHandler(SNIHandler { result in
                                if case .hostname(let name) = result { proxy.serverName = name }
                                return eventLoop.makeSucceededVoidFuture()
                            }))
                            try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                        }
                        // Malformed requests are answered by the proxy handler, in Kong's template.
                        try sync.configureHTTPServerPipeline(withErrorHandling: false)
                        try sync.addHandler(proxy)
                    }
                }
                .bind(host: address.host, port: address.port)
                .get()
            listeners.withLockedValue { $0.append(channel) }
            ports.append(channel.localAddress?.port ?? 0)
        }
        return ports
    }

    /// Returns when every listener closed and every connection finished.
    func waitUntilStopped() async {
        for listener in listeners.withLockedValue({ $0 }) {
            try? await listener.closeFuture.get()
        }
        await services.connections.waitUntilEmpty()
    }

    /// Stops accepting, closes idle connections; busy ones close after their current response.
    func shutdown() {
        for listener in listeners.withLockedValue({ $0 }) { listener.close(promise: nil) }
        for channel in services.connections.drain() { channel.close(promise: nil) }
    }
}

/// Open client connections and whether each is serving a request, for graceful shutdown.
public final class ConnectionRegistry: Sendable {
    private struct State {
        var busy: [ObjectIdentifier: (channel: any Channel, busy: Bool)] = [:]
        var draining = false
        var accepted = 0
        var requests = 0
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    /// False while draining: the new connection is refused.
    func register(_ channel: any Channel) -> Bool {
        state.withLockedValue { state in
            guard !state.draining else { return false }
            state.accepted += 1
            state.busy[ObjectIdentifier(channel)] = (channel, false)
            return true
        }
    }

    func unregister(_ channel: any Channel) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.busy[ObjectIdentifier(channel)] = nil
            guard state.busy.isEmpty, state.draining else { return [] }
            defer { state.emptyWaiters = [] }
            return state.emptyWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Marks a connection busy or idle; returns whether the node is draining.
    @discardableResult
    func setBusy(_ busy: Bool, for channel: any Channel) -> Bool {
        state.withLockedValue { state in
            state.busy[ObjectIdentifier(channel)]?.busy = busy
            if busy { state.requests += 1 }
            return state.draining
        }
    }

    /// Counters for `/status`: open connections, busy ones, accepted so far, requests so far.
    public struct Statistics: Sendable {
        public let active: Int
        public let busy: Int
        public let accepted: Int
        public let requests: Int
    }

    var statistics: Statistics {
        state.withLockedValue { state in
            Statistics(active: state.busy.count, busy: state.busy.values.filter(\.busy).count,
                       accepted: state.accepted, requests: state.requests)
        }
    }

    var isDraining: Bool { state.withLockedValue { $0.draining } }

    /// Starts draining; returns the idle connections to close now.
    func drain() -> [any Channel] {
        state.withLockedValue { state in
            state.draining = true
            return state.busy.values.filter { !$0.busy }.map(\.channel)
        }
    }

    func waitUntilEmpty() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLockedValue { state -> Bool in
                if state.busy.isEmpty { return true }
                state.emptyWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
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
