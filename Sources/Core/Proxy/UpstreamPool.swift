import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where an upstream connection goes; connections are reused only for the same target.
struct UpstreamTarget: Hashable {
    let tls: Bool
    let host: String
    let port: Int
    let verifyTLS: Bool
}

/// Receives one upstream exchange's events, on the event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    /// The end of one read cycle: what was received so far may be flushed to the client in one go.
    func upstreamReadComplete()
    func upstreamFailed(_ error: any Error)
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// One pooled HTTP/1.1 connection to an upstream: the last handler of its pipeline, forwarding
/// response parts to the exchange currently using it.
///
/// It speaks HTTP/1 itself (`HTTP1Parser`, `HTTP1Encoder`): the pipeline holds only this handler
/// (after TLS), so a response costs no handler hops.
final class UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let target: UpstreamTarget
    private(set) var channel: (any Channel)?
    /// The exchange using the connection; nil while idle in the pool.
    var delegate: (any UpstreamDelegate)?
    /// Set when the upstream says it will close, or the connection misbehaved.
    var reusable = true
    /// Whether reading is paused (the client cannot take more); changed only through `setReading`.
    private(set) var readingPaused = false

    /// Pauses or resumes reading from the upstream; a no-op when already so (this runs per chunk).
    func setReading(_ on: Bool) {
        guard readingPaused == on, let channel else { return }
        readingPaused = !on
        try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
    }
    weak var pool: UpstreamPool?
    private var parser = HTTP1Parser(kind: .response)
    /// Nothing of a response is left unread: bytes beyond the last response (the start of
    /// another) would be taken for the next exchange's answer, so such a connection is not reused.
    var isBetweenResponses: Bool { parser.isIdle }
    private var encoder = HTTP1Encoder()

    init(target: UpstreamTarget) { self.target = target }

    func handlerAdded(context: ChannelHandlerContext) { channel = context.channel }

    /// Breaks the channel → pipeline → handler → channel cycle when the connection goes away.
    func handlerRemoved(context: ChannelHandlerContext) {
        channel = nil
        delegate = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        parser.append(unwrapInboundIn(data))
        do {
            while let event = try parser.next() {
                switch event {
                case .responseHead(let head):
                    if !parser.lastHeadKeepsAlive || parser.bodyEndsWithConnection { reusable = false }
                    guard let delegate else { return unexpectedBytes(context: context) }
                    delegate.upstreamReceived(.head(head))
                case .body(let chunk):
                    guard let delegate else { return unexpectedBytes(context: context) }
                    delegate.upstreamReceived(.body(chunk))
                case .end:
                    delegate?.upstreamReceived(.end(nil))
                case .requestHead:
                    preconditionFailure("a response parser yields no request")
                }
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    /// Bytes with no exchange to take them (an idle connection, or after the response ended):
    /// the connection is out of step with the upstream and is not used again.
    private func unexpectedBytes(context: ChannelHandlerContext) {
        reusable = false
        pool?.forget(self)
        context.close(promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        reusable = false
        // A body delimited by the connection's end is complete now.
        if parser.finishAtEOF() != nil { delegate?.upstreamReceived(.end(nil)) }
        pool?.forget(self)
        delegate?.upstreamFailed(ChannelError.eof)
        delegate = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reusable = false
        delegate?.upstreamFailed(error)
        delegate = nil
        context.close(promise: nil)
    }

    /// Closes once what was written is sent, or after `within` if the upstream does not take it.
    func closeAfterFlush(within limit: TimeAmount) {
        guard let channel else { return }
        let deadline = channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        channel.writeAndFlush(ByteBuffer()).whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    /// Bytes of a protocol switched to (after a 101), written as they are.
    func writeTunneled(_ bytes: ByteBuffer) {
        guard let channel else { return }
        channel.writeAndFlush(bytes, promise: nil)
    }

    /// When what `write` queued goes to the socket.
    enum Flush {
        /// Not yet: more parts of the request follow.
        case later
        /// Now: a chunk of a body streaming through (its backpressure reads the socket's
        /// writability right after).
        case now
        /// With the other flushes of this loop turn (`LoopFlushBatch`): the request is complete.
        case withLoopTurn
    }

    func write(_ part: HTTPClientRequestPart, flush: Flush) {
        guard let channel else { return }
        switch part {
        case .head(let head):
            parser.answersHEAD = head.method == .HEAD
            channel.write(encoder.requestHead(head, allocator: channel.allocator), promise: nil)
        case .body(.byteBuffer(let chunk)):
            encoder.body(chunk, allocator: channel.allocator) { channel.write($0, promise: nil) }
        case .body(.fileRegion):
            preconditionFailure("request bodies are buffers")
        case .end:
            if let last = encoder.end() { channel.write(last, promise: nil) }
        }
        self.flush(flush)
    }

    /// Sends what was written, when `flush` says.
    func flush(_ flush: Flush) {
        guard let channel else { return }
        switch flush {
        case .later: break
        case .now: channel.flush()
        case .withLoopTurn:
            if let pool { pool.flushBatch.flush(channel) } else { channel.flush() }
        }
    }
}

/// Keep-alive upstream connections of one event loop. Used only on that loop, so requests never
/// hop threads between the client connection and its upstream.
final class UpstreamPool {
    let eventLoop: any EventLoop
    /// Idle connections per target, in a class so taking and returning one mutates the list in
    /// place: a dictionary's in-place accessor on an array value allocated on every call.
    private final class IdleList {
        var connections: [UpstreamConnection] = []
    }
    private var idle: [UpstreamTarget: IdleList] = [:]
    private var sslContexts: [Bool: NIOSSLContext] = [:]
    static let maxIdlePerTarget = 128

    /// Where requests of this loop run their plugin phases.
    let taskExecutor: EventLoopTaskExecutor
    /// The flushes of this loop's exchanges, issued together once per loop tick.
    let flushBatch: LoopFlushBatch
    /// The `Date` of this loop's answers that have none.
    let date = HTTPDate()
    /// This loop's access log lines, made with the first one.
    var accessLines: AccessLogBatch?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        taskExecutor = EventLoopTaskExecutor(eventLoop: eventLoop)
        flushBatch = LoopFlushBatch(eventLoop: eventLoop)
    }

    /// A usable idle connection to `target`, if the pool holds one (the common, synchronous case).
    func takeIdle(_ target: UpstreamTarget) -> UpstreamConnection? {
        guard let list = idle[target] else { return nil }
        while let connection = list.connections.popLast() {
            if connection.channel?.isActive == true && connection.reusable { return connection }
        }
        return nil
    }

    /// An idle connection to `target`, or a new one.
    func acquire(_ target: UpstreamTarget, connectTimeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        if let connection = takeIdle(target) { return eventLoop.makeSucceededFuture(connection) }
        let connection = UpstreamConnection(target: target)
        connection.pool = self
        let sslContext: NIOSSLContext?
        if target.tls {
            do { sslContext = try context(verify: target.verifyTLS) } catch { return eventLoop.makeFailedFuture(error) }
        } else {
            sslContext = nil
        }
        let loop = eventLoop
        let handlerBox = NIOLoopBound(connection, eventLoop: loop)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        let sni = HostSyntax.parse(target.host).map { $0.kind == .name } == .success(true) ? target.host : nil
                        try sync.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: sni))
                    }
                    try sync.addHandler(handlerBox.value)
                }
            }
            .connect(host: target.host, port: target.port)
            .map { _ in handlerBox.value }
    }

    /// Returns a connection after a complete exchange; keeps it when both sides allow reuse.
    func release(_ connection: UpstreamConnection) {
        connection.delegate = nil
        guard connection.reusable, connection.isBetweenResponses, let channel = connection.channel, channel.isActive,
              (idle[connection.target]?.connections.count ?? 0) < Self.maxIdlePerTarget else {
            connection.channel?.close(promise: nil)
            return
        }
        // The exchange may have paused reading (slow client); an idle connection reads, so it
        // notices the upstream closing and the next exchange gets its response.
        connection.setReading(true)
        if let list = idle[connection.target] {
            list.connections.append(connection)
        } else {
            let list = IdleList()
            list.connections.append(connection)
            idle[connection.target] = list
        }
    }

    func forget(_ connection: UpstreamConnection) {
        idle[connection.target]?.connections.removeAll { $0 === connection }
    }

    private func context(verify: Bool) throws -> NIOSSLContext {
        if let existing = sslContexts[verify] { return existing }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if !verify { configuration.certificateVerification = .none }
        let context = try NIOSSLContext(configuration: configuration)
        sslContexts[verify] = context
        return context
    }
}

/// One pool per event loop, created on first use.
final class UpstreamPools: Sendable {
    private let pools = NIOLoopBoundBoxes()

    /// At shutdown: waits on each loop for its queued access log writes (the task queue is in
    /// order) and writes anything still held, so the process does not end before them. The
    /// loops must still run (the gateway shuts its own group down only after this).
    func writePendingAccessLines() async {
        for bound in pools.all {
            try? await bound.eventLoop.submit { bound.value.accessLines?.writeNow() }.get()
        }
    }

    /// Must be called on `eventLoop`.
    func pool(for eventLoop: any EventLoop) -> UpstreamPool {
        let key = ObjectIdentifier(eventLoop)
        return pools.boxes.withLockedValue { pools in
            if let existing = pools[key] { return existing.value }
            let pool = UpstreamPool(eventLoop: eventLoop)
            pools[key] = NIOLoopBound(pool, eventLoop: eventLoop)
            return pool
        }
    }
}

/// The pools by their loop (`UpstreamPools`), behind a lock: taken on each loop's first
/// connection, read all at once at shutdown.
private final class NIOLoopBoundBoxes: Sendable {
    let boxes = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<UpstreamPool>]>([:])
    var all: [NIOLoopBound<UpstreamPool>] { boxes.withLockedValue { Array($0.values) } }
}

/// Why connecting upstream failed, mapped to Kong's status and text (spec §8.4).
struct UpstreamFailure: Error {
    enum Kind { case timeout, nameResolution, refused }
    let kind: Kind

    init(_ error: any Error) {
        if case .connectTimeout? = error as? ChannelError {
            kind = .timeout
        } else if let e = error as? NIOConnectionError {
            let timedOut = e.connectionErrors.contains { if case .connectTimeout? = $0.error as? ChannelError { return true } else { return false } }
            if e.connectionErrors.isEmpty, e.dnsAError != nil || e.dnsAAAAError != nil {
                kind = .nameResolution
            } else {
                kind = timedOut ? .timeout : .refused
            }
        } else if "\(error)".contains("resolve") {
            kind = .nameResolution
        } else {
            kind = .refused
        }
    }

    /// A new attempt may be made unless the name does not resolve.
    var isRetryable: Bool { kind != .nameResolution }

    var status: Int {
        switch kind {
        case .timeout: return 504
        case .nameResolution: return 503
        case .refused: return 502
        }
    }

    var message: String {
        switch kind {
        case .timeout: return ProxyErrorText.upstreamTimeout
        case .nameResolution: return ProxyErrorText.nameResolutionFailed
        case .refused: return ProxyErrorText.invalidUpstreamResponse
        }
    }
}
