import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Why a Redis call failed, without any credential in the text.
struct RedisFailure: Error, Equatable, CustomStringConvertible {
    let description: String

    static let closed = RedisFailure(description: "connection closed")
    static let timeout = RedisFailure(description: "timeout")
}

/// One connection to Redis, shared by concurrent callers: every command is written as it comes
/// (pipelining) and the replies, which Redis sends in order, complete the callers in order. A
/// reply that does not come within the read timeout closes the connection (the replies after it
/// could no longer be matched), failing every caller still waiting.
final class RedisConnection: Sendable {
    private let channel: any Channel
    let readTimeout: TimeAmount

    private init(channel: any Channel, readTimeout: TimeAmount) {
        self.channel = channel
        self.readTimeout = readTimeout
    }

    var isActive: Bool { channel.isActive }

    /// `tls`: the connection speaks TLS with that context, sending `serverName` as SNI (and
    /// checking the certificate against it when the context verifies).
    static func connect(host: String, port: Int, connectTimeout: TimeAmount, readTimeout: TimeAmount,
                        tls: (context: NIOSSLContext, serverName: String?)? = nil,
                        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws(RedisFailure) -> RedisConnection {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(RESPClientHandler())
                    }
                }
                .connect(host: host, port: port).get()
            return RedisConnection(channel: channel, readTimeout: readTimeout)
        } catch {
            throw RedisFailure(description: "could not connect to \(host):\(port): \(error)")
        }
    }

    /// Sends one command and waits for its reply. An error reply (`-ERR …`) is returned as
    /// `.error`, not thrown: the caller decides what it means.
    func send(_ arguments: [String]) async throws(RedisFailure) -> RESPValue {
        do {
            return try await write(arguments).get()
        } catch let failure as RedisFailure {
            throw failure
        } catch {
            throw RedisFailure(description: String(describing: error))
        }
    }

    /// Writes the command now (commands written from one thread reach Redis in that order) and
    /// returns its reply to come.
    func write(_ arguments: [String]) -> EventLoopFuture<RESPValue> {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        // A channel that closed before the command reached the handler (a TLS handshake that
        // failed, say) no longer has it: nothing else would ever answer this caller.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in promise.fail(RedisFailure(description: "write failed: \(error)")) }
        channel.writeAndFlush(RESPRequest(bytes: RESPValue.command(arguments), promise: promise), promise: written)
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: readTimeout) {
            channel.pipeline.fireUserInboundEventTriggered(RESPClientHandler.TimedOut())
            // Completing twice is ignored: this only matters when the handler is gone.
            promise.fail(RedisFailure.timeout)
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }

    func close() { channel.close(promise: nil) }
}

/// A command's bytes and the promise its reply completes.
struct RESPRequest {
    let bytes: [UInt8]
    let promise: EventLoopPromise<RESPValue>
}

/// Writes commands, reads replies, and completes the waiting callers in order.
final class RESPClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer

    struct TimedOut {}

    private var received: [UInt8] = []
    private var consumed = 0
    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()
    private var failure: RedisFailure?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.promise.fail(failure)
            promise?.fail(failure)
            return
        }
        waiting.append(request.promise)
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: request.bytes)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let chunk = unwrapInboundIn(data)
        received.append(contentsOf: chunk.readableBytesView)
        do {
            while let (value, end) = try RESPParser.parse(received, from: consumed) {
                consumed = end
                if case .push = value { continue }  // out-of-band, no caller waits for it
                guard let promise = waiting.popFirst() else {
                    throw RESPParser.ProtocolError(description: "a reply nobody asked for")
                }
                promise.succeed(value)
            }
        } catch {
            fail(context, RedisFailure(description: "protocol error: \(error)"))
            return
        }
        // Keep only the incomplete tail.
        if consumed == received.count {
            received.removeAll(keepingCapacity: received.count <= 64 << 10)
            consumed = 0
        } else if consumed > 64 << 10 {
            received.removeFirst(consumed)
            consumed = 0
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is TimedOut {
            // Only if a caller still waits: a late timer after its reply came does nothing.
            if !waiting.isEmpty { fail(context, .timeout) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, RedisFailure(description: String(describing: error)))
    }

    func channelInactive(context: ChannelHandlerContext) {
        failWaiting(failure ?? .closed)
        context.fireChannelInactive()
    }

    private func fail(_ context: ChannelHandlerContext, _ failure: RedisFailure) {
        if self.failure == nil { self.failure = failure }
        // Closed before the callers hear of it: one that retries at once must not be handed this
        // connection again by the pool (which keeps only active ones).
        context.close(promise: nil)
        failWaiting(failure)
    }

    private func failWaiting(_ failure: RedisFailure) {
        while let promise = waiting.popFirst() { promise.fail(failure) }
    }
}
