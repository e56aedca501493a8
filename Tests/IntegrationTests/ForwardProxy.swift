import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A forward proxy on 127.0.0.1 that speaks HTTP CONNECT (what clients use through an
/// `http://host:port` proxy): it records each CONNECT target, answers 200 and relays bytes both
/// ways. For the transformers' `http(s)_proxy_*` options.
final class ForwardProxy: Sendable {
    let port: Int
    private let channel: any Channel
    private let targets = NIOLockedValueBox<[String]>([])

    /// Every `CONNECT` target (`host:port`) so far, in order.
    var connectTargets: [String] { targets.withLockedValue { $0 } }

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    static func start() async throws -> ForwardProxy {
        let box = NIOLockedValueBox<ForwardProxy?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectHandler { target in
                        box.withLockedValue { $0 }?.targets.withLockedValue { $0.append(target) }
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = ForwardProxy(port: channel.localAddress!.port!, channel: channel)
        box.withLockedValue { $0 = proxy }
        return proxy
    }

    func stop() async { try? await channel.close() }
}

/// Reads the CONNECT head, dials the target, then relays.
private final class ConnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let record: @Sendable (String) -> Void
    private var head = ByteBuffer()
    private var peer: (any Channel)?
    private var pending: [ByteBuffer] = []

    init(record: @escaping @Sendable (String) -> Void) { self.record = record }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        if let peer {
            peer.writeAndFlush(chunk, promise: nil)
            return
        }
        if dialing {
            pending.append(chunk)
            return
        }
        head.writeBuffer(&chunk)
        let text = String(buffer: head)
        guard let end = text.range(of: "\r\n\r\n") else { return }
        let line = text[..<end.lowerBound].split(separator: "\r\n").first ?? ""
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0] == "CONNECT" else {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")), promise: nil)
            context.close(promise: nil)
            return
        }
        let target = String(parts[1])
        record(target)
        let rest = text[end.upperBound...]
        if !rest.isEmpty { pending.append(ByteBuffer(string: String(rest))) }
        head = ByteBuffer()
        dialing = true
        let hostPort = target.split(separator: ":")
        let client = NIOLoopBound(context.channel, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { outbound in
                outbound.eventLoop.makeCompletedFuture {
                    try outbound.pipeline.syncOperations.addHandler(RelayHandler(partner: client.value))
                }
            }
            .connect(host: String(hostPort.first ?? ""), port: Int(hostPort.last ?? "") ?? 0)
            .assumeIsolated()
            .whenComplete { result in
                let handler = handler.value, context = loopContext.value
                switch result {
                case .success(let outbound):
                    context.writeAndFlush(handler.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")),
                                          promise: nil)
                    handler.peer = outbound
                    for chunk in handler.pending { outbound.writeAndFlush(chunk, promise: nil) }
                    handler.pending = []
                case .failure:
                    context.writeAndFlush(handler.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")),
                                          promise: nil)
                    context.close(promise: nil)
                }
            }
    }

    private var dialing = false

    func channelInactive(context: ChannelHandlerContext) {
        peer?.close(promise: nil)
        context.fireChannelInactive()
    }
}

/// Copies what one side reads to the other, and closes both together.
private final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let partner: any Channel

    init(partner: any Channel) { self.partner = partner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
        context.fireChannelInactive()
    }
}
