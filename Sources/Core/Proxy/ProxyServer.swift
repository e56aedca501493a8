import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

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
            let bound = ServerBootstrap(group: group)
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
                        // The proxy handler parses and writes HTTP/1 itself (no codec handlers).
                        try sync.addHandler(proxy)
                    }
                }
                .bind(host: address.host, port: address.port)
            let channel: any Channel
            do { channel = try await bound.get() } catch {
                // The start fails whole: the addresses already bound are let go too, and are free
                // again when this throws (a caller may bind them right away).
                let bound = listeners.withLockedValue { listeners in
                    defer { listeners = [] }
                    return listeners
                }
                for listener in bound { try? await listener.close() }
                throw ListenError(host: address.host, port: address.port, cause: error)
            }
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
        services.connections.drain()
    }
}

/// Open client connections and the request counters, for graceful shutdown and `/status`.
///
/// The per-request calls (`requestStarted`, `requestEnded`, `isDraining`) are lock-free atomics:
/// they run on every request from every event loop. The lock guards only connection open/close.
public final class ConnectionRegistry: Sendable {
    /// Called once when draining starts, for each open connection: it closes itself when idle
    /// (on its own event loop), or after its current response otherwise.
    typealias DrainHook = @Sendable () -> Void

    private struct Open {
        var connections: [ObjectIdentifier: DrainHook] = [:]
        var accepted = 0
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let open = NIOLockedValueBox(Open())
    private let draining = Atomic<Bool>(false)
    private let busy = Atomic<Int>(0)
    private let requests = Atomic<Int>(0)

    /// False while draining: the new connection is refused.
    func register(_ channel: any Channel, onDrain: @escaping DrainHook) -> Bool {
        open.withLockedValue { open in
            guard !draining.load(ordering: .acquiring) else { return false }
            open.accepted += 1
            open.connections[ObjectIdentifier(channel)] = onDrain
            return true
        }
    }

    func unregister(_ channel: any Channel) {
        let waiters = open.withLockedValue { open -> [CheckedContinuation<Void, Never>] in
            open.connections[ObjectIdentifier(channel)] = nil
            guard open.connections.isEmpty, draining.load(ordering: .acquiring) else { return [] }
            defer { open.emptyWaiters = [] }
            return open.emptyWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func requestStarted() {
        busy.add(1, ordering: .relaxed)
        requests.add(1, ordering: .relaxed)
    }

    /// Returns whether the node is draining (the connection then closes after this response).
    func requestEnded() -> Bool {
        busy.subtract(1, ordering: .relaxed)
        return isDraining
    }

    var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// Counters for `/status`: open connections, busy ones, accepted so far, requests so far.
    public struct Statistics: Sendable {
        public let active: Int
        public let busy: Int
        public let accepted: Int
        public let requests: Int
    }

    var statistics: Statistics {
        let (active, accepted) = open.withLockedValue { ($0.connections.count, $0.accepted) }
        return Statistics(active: active, busy: busy.load(ordering: .relaxed), accepted: accepted,
                          requests: requests.load(ordering: .relaxed))
    }

    /// Starts draining: idle connections close now, busy ones after their current response.
    func drain() {
        let hooks = open.withLockedValue { open -> [DrainHook] in
            draining.store(true, ordering: .releasing)
            return Array(open.connections.values)
        }
        for hook in hooks { hook() }
    }

    func waitUntilEmpty() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = open.withLockedValue { open -> Bool in
                if open.connections.isEmpty { return true }
                open.emptyWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}

/// The log phase's queue: requests hand their log work here and it runs on a thread of its own,
/// never on an event loop — a log plugin's file write (a blocking call) or a large serialization
/// then delays no request. Bounded: work beyond `capacity` is dropped and counted.
///
/// While work keeps arriving the drain thread polls the queue every `pollInterval` instead of
/// being woken by each submit: a wake-up is a system call on the event loop, per request. After
/// `pollsBeforeSleeping` empty polls it sleeps until the next submit wakes it; a queue that
/// reaches `wakeBatch` entries wakes it at once.
///
/// Work submitted with an owning event loop is released on that loop once it ran: what a
/// request allocated is then freed by the thread that allocated it. Freed here instead, each
/// entry takes the loop's malloc arena lock from this thread, and the loop finds it held (at
/// one connection, measured with strace: futex calls on that lock for about a third of requests).
/// What the entries hold is then also let go on the loop: after a reload, the last reference to
/// a replaced plugin handler may end there, so a handler's deinit must not block (file-log's
/// closes a local file).
public final class LogSink: @unchecked Sendable {
    struct Entry {
        let work: @Sendable () -> Void
        /// Where the entry's memory is released after it ran; nil: on the drain thread.
        let owner: (any EventLoop)?
        /// The handlers whose log phase `work` runs: told when the batch that ran it ends.
        let loggers: [any PluginHandler]
    }

    /// Guarded by `signal`, whose value is 1 when the drain thread must not wait (it was woken,
    /// or the sink is finished).
    private var pending: [Entry] = []
    private var finished = false
    /// The drain thread waits for a wake-up (rather than polling).
    private var sleeping = false
    private let signal = ConditionLock(value: 0)
    private let capacity: Int
    private let dropped = Atomic<Int>(0)
    private let lastReport = Atomic<Int64>(0)
    public static let defaultCapacity = 10_000
    static let pollInterval = 0.001
    static let pollsBeforeSleeping = 100
    static let wakeBatch = 256

    public init(capacity: Int = LogSink.defaultCapacity) {
        self.capacity = capacity
    }

    func submit(releasingOn owner: (any EventLoop)? = nil, loggers: [any PluginHandler] = [],
                _ work: @escaping @Sendable () -> Void) {
        signal.lock()
        let accepted = !finished && pending.count < capacity
        if accepted { pending.append(Entry(work: work, owner: owner, loggers: loggers)) }
        if accepted && (sleeping || pending.count >= Self.wakeBatch) {
            signal.unlock(withValue: 1)
        } else {
            signal.unlock()
        }
        if !accepted { noteDropped() }
    }

    /// Log entries dropped so far because the queue was full.
    public var droppedCount: Int { dropped.load(ordering: .relaxed) }

    private func noteDropped() {
        let total = dropped.add(1, ordering: .relaxed).newValue
        let now = WallClock.milliseconds()
        let last = lastReport.load(ordering: .relaxed)
        guard now - last >= 10_000,
              lastReport.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else { return }
        ErrorLog.report("log phase behind the request rate: \(total) log entries dropped so far", level: .warn)
    }

    /// Runs queued log work, in order, on a dedicated thread until `finish()` and the queue is empty.
    public func run() async {
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        _ = try? await thread.runIfActive { self.drain() }
        try? await thread.shutdownGracefully()
    }

    private func drain() {
        var batch: [Entry] = []
        var emptyPolls = 0
        while true {
            if emptyPolls >= Self.pollsBeforeSleeping {
                signal.lock()
                if pending.isEmpty && !finished {
                    sleeping = true
                    signal.unlock(withValue: 0)
                    signal.lock(whenValue: 1)
                    sleeping = false
                }
            } else if !signal.lock(whenValue: 1, timeoutSeconds: Self.pollInterval) {
                signal.lock()
            }
            swap(&batch, &pending)
            let done = finished
            signal.unlock(withValue: done ? 1 : 0)
            for entry in batch { entry.work() }
            for entry in batch { for logger in entry.loggers { logger.logBatchEnded() } }
            if done && batch.isEmpty { return }
            emptyPolls = batch.isEmpty ? emptyPolls + 1 : 0
            Self.releaseOnOwners(&batch)
        }
    }

    /// Empties `batch`, handing each entry with an owner back to its event loop to be released
    /// there: one task per loop per `releaseChunk` entries, so a large batch (a backlog after a
    /// burst) never holds a loop for long.
    private static func releaseOnOwners(_ batch: inout [Entry]) {
        while let owner = batch.last(where: { $0.owner != nil })?.owner {
            var chunks = [ReturnedEntries()]
            batch.removeAll { entry in
                guard let loop = entry.owner, loop === owner else { return false }
                if chunks[chunks.count - 1].entries.count == releaseChunk { chunks.append(ReturnedEntries()) }
                chunks[chunks.count - 1].entries.append(entry)
                return true
            }
            // Handed over only now: until `removeAll` returns, `batch` still holds its own copy
            // of each entry, and a loop that emptied a box first would leave the last release
            // to this thread.
            for chunk in chunks { handBack(chunk, to: owner) }
        }
        batch.removeAll(keepingCapacity: true)
    }

    static let releaseChunk = 256

    private static func handBack(_ returned: ReturnedEntries, to owner: any EventLoop) {
        // Emptied by the task itself: whichever thread drops the last reference to the box, the
        // entries are released on the loop.
        owner.execute { returned.entries.removeAll() }
    }

    /// Entries on their way back to their event loop; touched by the drain thread until handed
    /// over, then only by that loop.
    private final class ReturnedEntries: @unchecked Sendable {
        var entries: [Entry] = []
    }

    public func finish() {
        signal.lock()
        finished = true
        signal.unlock(withValue: 1)
    }
}
