import NIOCore
import NIOHTTP1

/// Serves the requests of one client connection, on its event loop: phases, then the upstream
/// exchange on a pooled connection of the same loop, bodies streamed both ways with backpressure
/// (reading from one side pauses while the other cannot take more).
///
/// It speaks HTTP/1 itself (`HTTP1Parser`, `HTTP1Encoder`) instead of through NIO's codec handlers:
/// a request then costs no pipeline hops. Pipelined requests wait in the parser until the response
/// before them is complete.
final class ProxyConnectionHandler: ChannelInboundHandler, UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let services: ProxyServices
    private var context: ChannelHandlerContext?
    private var pool: UpstreamPool?
    private var exchange: Exchange?
    private var clientAddress = "unknown"
    /// `trusted_ips` decided once per connection: the peer does not change.
    private var clientIsTrusted = false
    private var localPort = 0
    private var requestIDs = RequestIDGenerator()
    private var parser = HTTP1Parser(kind: .request)
    private var encoder = HTTP1Encoder()
    /// A parse of buffered bytes is queued (after a response, for a pipelined request).
    private var parseQueued = false

    /// The connection is closing (after a response that said so, a malformed request, or the
    /// client leaving): no further request read from it is started. Set before the close
    /// completes, which may be later than the response that decided it.
    private var closing = false

    /// Bytes of request body held while the upstream is not connected yet; beyond this the
    /// client is paused (unless a plugin asked for the whole body).
    static let pendingBodyLimit = 1 << 20

    /// Whether the listener serves TLS (scheme `https` for routing and X-Forwarded-Proto).
    private let isTLS: Bool
    /// The TLS server name the client asked for (set before the first request is read).
    var serverName: String?

    init(services: ProxyServices, isTLS: Bool) {
        self.services = services
        self.isTLS = isTLS
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        pool = services.pools.pool(for: context.eventLoop)
        clientAddress = context.channel.remoteAddress?.ipAddress ?? "unknown"
        clientIsTrusted = services.options.trustedIPs.contains(clientAddress)
        localPort = context.channel.localAddress?.port ?? 0
    }

    /// Breaks the handler → context → pipeline → handler cycle once the connection is gone.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let registered = services.connections.register(context.channel) {
            loop.execute { handler.value.closeIfIdle() }
        }
        if !registered {
            closing = true
            context.close(promise: nil)
        }
        idleSince = .now()
        ensureClientTimer()
        context.fireChannelActive()
    }

    /// Draining: an idle connection closes now; a busy one closes after its response (`complete`).
    /// A WebSocket tunnel has no response end to wait for: it closes now too.
    private func closeIfIdle() {
        if let exchange, exchange.state == .tunneling { return endTunnel(exchange, flushing: false) }
        guard exchange == nil else { return }
        closeFlushingFirst()
    }

    /// Closes the client connection after flushing what was written to it. A response completed
    /// in this loop turn waits for the turn's batched flush (`LoopFlushBatch`); a close that comes
    /// first (a drain, the upstream ending mid-body) must not drop it. As before the batching,
    /// what the socket cannot take at once is dropped with the connection: a client that stopped
    /// reading does not hold it open.
    private func closeFlushingFirst() {
        closing = true
        guard let context else { return }
        sendUnsent(context)  // a head and small body pieces wait here until the read completes
        context.flush()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A client that left with part of a head sent: nginx's "client prematurely closed
        // connection", logged as 400 (a close of the gateway's own was logged when decided).
        if !closing, exchange == nil { logUnparsedHead(status: 400, bodyBytesSent: 0, requestID: requestIDs.make()) }
        closing = true
        readTimer?.cancel()  // it holds this handler
        readTimer = nil
        clientTimer?.cancel()
        clientTimer = nil
        // Logged before the connection is let go: the last one let go ends a drain.
        if let exchange {
            abandon(exchange)
            logAbandoned(exchange)
        }
        services.connections.unregister(context.channel)
        context.fireChannelInactive()
    }

    /// Kong logs a request whose client left: status 499 when nothing was answered yet. A body
    /// cut short is ended for the body filters first, so the AI plugins account for what went
    /// through (a rate limiter charges the part of a stream the client received). While a plugin
    /// task (access, a response inspection) may still be working on the request, the log waits
    /// for it to finish (`logIfAbandoned`): the log phase must not read what the task changes.
    private func logAbandoned(_ exchange: Exchange) {
        if exchange.responseStarted && exchange.state == .proxying { _ = bodyFiltersTail(exchange) }
        logEnded(exchange, status: exchange.responseStarted ? nil : 499)
    }

    /// Runs the log phase of an exchange that ended before its answer did, with `status` when
    /// the answer the client saw is not the one recorded (nil: it is). While a plugin task may
    /// still be working on the request, the log waits for it (`logIfAbandoned`).
    private func logEnded(_ exchange: Exchange, status: Int?) {
        switch exchange.state {
        case .deciding, .inspecting:
            exchange.logsWhenTaskEnds = true
            exchange.endedStatus = status ?? 499
            return
        case .connecting, .proxying, .responded, .tunneling: break
        }
        if let status { exchange.request.exchangeLog.status = status }
        submitLogPhase(exchange)
    }

    /// Ends an exchange whose response will never complete (the client went away, or sent bytes
    /// the parser refused): timers, upstream connection, body waiters and the busy count.
    private func abandon(_ exchange: Exchange) {
        _ = services.connections.requestEnded()
        exchange.writeTimer?.cancel()
        if exchange.state == .tunneling, let upstream = exchange.upstream, let service = exchange.service {
            // The client's last frames (its close frame) still reach the upstream.
            upstream.delegate = nil
            upstream.reusable = false
            upstream.closeAfterFlush(within: .milliseconds(Int64(max(1, service.writeTimeout))))
            exchange.upstream = nil
        }
        detachUpstream(exchange)
        exchange.inspection?.cancel()
        // No longer the current exchange before its body waiters learn the body will not come:
        // a waiter that goes on (a chunked body held for `request_buffering`) must see it ended.
        self.exchange = nil
        failBodyWaiters(exchange, ChannelError.eof)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }  // what follows a last response is never served
        if let exchange, exchange.state == .tunneling { return tunnelToUpstream(unwrapInboundIn(data), exchange: exchange) }
        lastClientRead = .now()
        // nginx times a first request's head from the accept, a later one's from its first byte.
        if exchange == nil, headStartedAt == nil { headStartedAt = servedRequests ? lastClientRead : idleSince }
        ensureClientTimer()
        parser.append(unwrapInboundIn(data))
        parseRequests()
    }

    /// Bytes a pipelining client may send ahead of its answers before reading from it pauses.
    static let pipelinedBytesLimit = 1 << 20

    /// Hands the parsed parts of the client's requests to the phases, one request at a time: a
    /// request that follows one still being answered waits (in the parser) until its answer is
    /// complete.
    private func parseRequests() {
        parseEvents()
        runPendingPhases()
    }

    private func parseEvents() {
        while !closing {
            if let exchange, exchange.clientBodyDone {
                if parser.bufferedBytes > Self.pipelinedBytesLimit { setClientReading(false) }
                return
            }
            let event: HTTP1Parser.Event?
            do {
                event = try parser.next()
            } catch {
                refuseMalformedRequest((error as? HTTP1ParseError)?.kind ?? .malformed)
                return
            }
            guard let event else { return }
            switch event {
            case .requestHead(let head): start(head)
            case .body(let buffer): clientBody(buffer)
            case .end: clientBodyEnded()
            case .responseHead: preconditionFailure("a request parser yields no response")
            }
        }
    }

    /// After a response: a pipelined request already read is parsed now (on a later turn of the
    /// loop, never inside the call that completed the response).
    private func parseBufferedRequests() {
        guard parser.bufferedBytes > 0, !parseQueued, let loop = context?.eventLoop else { return }
        parseQueued = true
        let handler = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            handler.value.parseQueued = false
            handler.value.parseRequests()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client cannot take more: stop reading from the upstream until it can.
        if let exchange, let upstream = exchange.upstream {
            upstream.setReading(context.channel.isWritable)
            // Time spent waiting for a slow client is not the upstream being slow.
            if context.channel.isWritable { exchange.lastRead = .now() }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closing = true
        context.close(promise: nil)
    }

    /// A request the HTTP parser rejects gets Kong's NGINX-level answer in plain text (its head
    /// is not read, so neither is its Accept): 400 `Bad request`, 400 `Request header or cookie
    /// too large` (nginx's 494), or 414 `URI too long`; when nothing was answered on this request
    /// yet. A request line naming HTTP/2 or later gets nginx's own 505 page (Kong's
    /// `error_page` list leaves 505 to nginx). Then the connection closes.
    private func refuseMalformedRequest(_ kind: HTTP1ParseError.Kind) {
        guard let context else { return }
        closing = true
        guard exchange?.responseStarted != true else { return closeFlushingFirst() }
        // A request under way keeps its ID: the answer, the log and the upstream name the same one.
        let requestID = exchange?.request.requestID ?? requestIDs.make()
        let status: Int, contentType: String, body: String
        switch kind {
        case .versionNotSupported:
            (status, contentType, body) = (505, "text/html", Self.nginxVersionNotSupportedPage)
        case .malformed, .headTooLarge, .requestLineTooLong:
            let (code, message): (Int, String) = switch kind {
            case .headTooLarge: (400, "Request header or cookie too large")
            case .requestLineTooLong: (414, "URI too long")
            default: (400, "Bad request")
            }
            let rendered = KongErrorResponse(status: code, message: message, requestID: requestID, format: .plain)
            (status, contentType, body) = (code, rendered.contentType, rendered.body)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        if services.options.responseHeaders.server { headers.add(name: "Server", value: ProxyHeaders.serverToken) }
        if let pool { headers.add(name: "Date", value: pool.date.now) }
        // Spec §8.2: the request id goes with every answer (the one the body names).
        if services.options.responseHeaders.requestID { headers.add(name: "X-Kong-Request-Id", value: requestID) }
        headers.add(name: "Connection", value: "close")
        var bytes = encoder.responseHead(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers),
                                         answering: .GET, allocator: context.channel.allocator)
        bytes.writeString(body)
        _ = encoder.end()
        // A request under way (its body broke off) ends with this answer, and is logged with it
        // as nginx logs it (after a plugin task working on it, if one is).
        if let exchange {
            abandon(exchange)
            exchange.responseBytes += bytes.readableBytes
            exchange.responseHeadBytes = bytes.readableBytes - body.utf8.count
            logEnded(exchange, status: status)
        } else {
            logUnparsedHead(status: status, bodyBytesSent: body.utf8.count, requestID: requestID)
        }
        context.writeAndFlush(wrapOutboundOut(bytes)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// nginx's built-in 505 page, as OpenResty with `server_tokens off` (Kong's) ends it.
    static let nginxVersionNotSupportedPage = "<html>\r\n<head><title>505 HTTP Version Not Supported</title></head>\r\n"
        + "<body>\r\n<center><h1>505 HTTP Version Not Supported</h1></center>\r\n"
        + "<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"

    // MARK: Request phases

    private func start(_ head: HTTPRequestHead) {
        services.connections.requestStarted()
        let configuration = services.holder.current
        let (path, query) = RequestPhases.splitTarget(head.uri)
        let request = ProxyRequestContext(requestID: requestIDs.make(), method: head.method, rawPath: path,
                                          rawQuery: query, headers: head.headers, clientAddress: clientAddress,
                                          forwardedClientAddress: clientIsTrusted
                                              ? RealIP.forwardedAddress(head.headers, options: services.options) : nil,
                                          clientIsTrusted: clientIsTrusted,
                                          isTLS: isTLS, serverName: serverName)
        request.exchangeLog.localPort = localPort
        let exchange = Exchange(head: head, request: request, configuration: configuration)
        exchange.requestHeadBytes = parser.lastHeadSize
        exchange.clientBodyChunked = parser.lastHeadChunked
        exchange.receivedTarget = parser.lastReceivedTarget
        headStartedAt = nil
        servedRequests = true
        exchange.clientKeepsAlive = parser.lastHeadKeepsAlive
        self.exchange = exchange
        // Never to an HTTP/1.0 client (RFC 9110 §15.2).
        if head.version.minor >= 1,
           head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            // The gateway reads the body itself (as nginx does): the client may send it now.
            if let context {
                let interim = HTTP1Encoder.continueHead(version: head.version, allocator: context.channel.allocator)
                // nginx's bytes_sent counts it, and so does its body_bytes_sent (`sent` minus the
                // answer's own head).
                exchange.responseBytes += interim.readableBytes
                context.writeAndFlush(wrapOutboundOut(interim), promise: nil)
            }
        }
        var phases = RequestPhaseWalk(request, head: head, configuration: configuration, localPort: localPort)
        // Without plugins nothing can wait (routing and the service check only): decided now, and
        // the body streams to the upstream as it arrives.
        if configuration.pluginOrder.isEmpty, let decision = RequestPhases.decideNow(&phases) {
            return proceed(decision, exchange: exchange)
        }
        let loop = context!.eventLoop
        request.bodyProvider = LoopBodyProvider(handler: NIOLoopBound(self, eventLoop: loop),
                                                exchange: NIOLoopBound(LoopBodyProvider.WeakExchange(exchange), eventLoop: loop))
        // Run once the bytes read with the head are parsed: a small body then is complete, and
        // a plugin reading it decides at once.
        exchange.pendingPhases = phases
    }

    /// The plugin phases of a request whose head was just read: synchronously as far as its
    /// handlers can decide at once, the rest in a task on this loop's executor.
    private func runPendingPhases() {
        guard let exchange, var walk = exchange.pendingPhases else { return }
        exchange.pendingPhases = nil
        if let decision = RequestPhases.decideNow(&walk) {
            proceed(decision, exchange: exchange)
            return
        }
        let loop = context!.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let boundExchange = NIOLoopBound(exchange, eventLoop: loop)
        Task(executorPreference: pool!.taskExecutor) { [walk] in
            let decision = await RequestPhases.decide(continuing: walk)
            // On the loop already (the task's executor): no further hop.
            let sendable = UncheckedDecision(decision)
            if loop.inEventLoop {
                bound.value.proceed(sendable.decision, exchange: boundExchange.value)
            } else {
                loop.execute { bound.value.proceed(sendable.decision, exchange: boundExchange.value) }
            }
        }
    }

    /// A plugin task finished for an exchange that ended meanwhile (its client went away, or its
    /// body broke off): its log phase runs now, with the status it ended with (Kong's 499 for a
    /// client that left), and the handlers the phases selected.
    private func logIfAbandoned(_ exchange: Exchange, handlers: [any PluginHandler]? = nil) {
        guard exchange.logsWhenTaskEnds else { return }
        exchange.logsWhenTaskEnds = false
        if let handlers { exchange.handlers = handlers }
        exchange.request.exchangeLog.status = exchange.endedStatus
        submitLogPhase(exchange)
    }

    private func proceed(_ decision: ProxyDecision, exchange: Exchange) {
        guard self.exchange === exchange else {
            // The client went away meanwhile.
            switch decision {
            case .respond(_, let handlers), .proxy(_, _, let handlers): logIfAbandoned(exchange, handlers: handlers)
            }
            return
        }
        switch decision {
        case .respond(let exit, let handlers):
            exchange.handlers = handlers
            respond(exit, exchange: exchange, nginxLevel: false)
        case .proxy(let match, let service, let handlers):
            exchange.handlers = handlers
            exchange.bodyFilters = handlers.filter(\.filtersBody)
            exchange.service = service
            if Self.buffersChunkedBody(exchange, route: match.route) {
                return bufferChunkedBody(exchange, then: decision)
            }
            exchange.upstreamHead = RequestPhases.upstreamHead(exchange.request, match: match, service: service, options: services.options,
                                                               head: exchange.head, localPort: localPort)
            exchange.proxyLatency = RequestPhases.milliseconds(since: exchange.started)
            exchange.upstreamStarted = .now()
            exchange.state = .connecting
            connect(exchange)
        }
    }

    /// Kong's `request_buffering` (on by default): nginx reads the whole body before it connects
    /// to the upstream, and sends it with a `Content-Length` — a chunked request reaches the
    /// upstream unchunked (many application servers mishandle chunked request bodies). A body
    /// with a `Content-Length` already has its length and streams as it arrives; only a chunked
    /// one is held, up to `ProxyOptions.requestBufferingLimit` in memory (nginx spills to a
    /// temporary file past that; a larger body here streams on, chunked, as with
    /// `request_buffering = false`). The parser's framing says which, with no header scan.
    private static func buffersChunkedBody(_ exchange: Exchange, route: Route) -> Bool {
        exchange.clientBodyChunked && route.requestBuffering && !exchange.request.bodyWasBuffered
            && !exchange.chunkedBodyOverLimit
    }

    /// Holds the proxying `decision` until the chunked body is whole (or over the limit), then
    /// proceeds with it: the body, now buffered, goes out with its length.
    ///
    /// Meanwhile the exchange is `connecting`: the client's body timeout answers 408, and a client
    /// that leaves is logged at once (no plugin task is left to do it).
    private func bufferChunkedBody(_ exchange: Exchange, then decision: ProxyDecision) {
        exchange.state = .connecting
        collectBody(exchange, limit: services.options.requestBufferingLimit).assumeIsolated().whenComplete { result in
            // Answered meanwhile (a 408: `respond` fails the waiters) or abandoned: nothing to send.
            guard self.exchange === exchange, exchange.state == .connecting else { return }
            switch result {
            case .success(let body): exchange.request.setRequestBody(body ?? ByteBuffer())
            case .failure: exchange.chunkedBodyOverLimit = true
            }
            self.proceed(decision, exchange: exchange)
        }
    }

    // MARK: Request body from the client

    private func clientBody(_ buffer: ByteBuffer) {
        guard let exchange else { return }
        switch exchange.state {
        case .deciding, .connecting:
            exchange.pendingBody.append(buffer)
            exchange.pendingBytes += buffer.readableBytes
            exchange.requestBodyBytes += buffer.readableBytes
            if let waiter = exchange.bodyWaiters.first, exchange.pendingBytes > waiter.limit {
                failBodyWaiters(exchange, RequestBodyTooLarge())
            }
            if exchange.pendingBytes > Self.pendingBodyLimit && exchange.bodyWaiters.isEmpty {
                setClientReading(false)
            }
        case .proxying:
            guard !exchange.request.bodyWasBuffered, let upstream = exchange.upstream else { return }
            exchange.bodyStreamed = true
            exchange.requestBodyBytes += buffer.readableBytes
            exchange.lastRead = .now()  // the exchange is making progress: no read timeout yet
            upstream.write(.body(.byteBuffer(buffer)), flush: .now)
            if upstream.channel?.isWritable == false {
                setClientReading(false)
                armWriteTimer(exchange)
            }
        case .inspecting, .responded, .tunneling:
            break  // the upstream answered, or a generated answer was sent: the rest is discarded
        }
    }

    private func clientBodyEnded() {
        guard let exchange else { return }
        exchange.clientBodyDone = true
        completeBodyWaiters(exchange)
        if exchange.state == .proxying, !exchange.requestSent, let upstream = exchange.upstream,
           !exchange.request.bodyWasBuffered {
            upstream.write(.end(nil), flush: .withLoopTurn)
            exchange.requestSent = true
        }
    }

    /// A plugin asked for the whole body (`ProxyRequestContext.requestBody()`).
    fileprivate func collectBody(_ exchange: Exchange, limit: Int) -> EventLoopFuture<ByteBuffer?> {
        guard let context, self.exchange === exchange else {
            // The client went away (or the exchange ended): nothing more will arrive.
            return pool!.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        if let ready = bodyIfComplete(exchange, limit: limit) { return context.eventLoop.makeCompletedFuture(ready) }
        let promise = context.eventLoop.makePromise(of: ByteBuffer?.self)
        exchange.bodyWaiters.append((limit, promise))
        // The limit first: a body that already arrived whole is still refused when too large.
        if exchange.pendingBytes > limit {
            failBodyWaiters(exchange, RequestBodyTooLarge())
        } else if exchange.clientBodyDone {
            completeBodyWaiters(exchange)
        } else {
            setClientReading(true)
        }
        return promise.futureResult
    }

    private func completeBodyWaiters(_ exchange: Exchange) {
        guard !exchange.bodyWaiters.isEmpty else { return }
        let whole = takeWholeBody(exchange)
        for waiter in exchange.bodyWaiters { waiter.promise.succeed(whole) }
        exchange.bodyWaiters = []
    }

    /// The body read so far, in one buffer. The request now owns it (`bufferedBody`): the chunks
    /// are not held twice. `pendingBytes` stays: retries still need to know a body was read.
    private func takeWholeBody(_ exchange: Exchange) -> ByteBuffer? {
        var whole: ByteBuffer?
        for var chunk in exchange.pendingBody {
            if whole == nil { whole = chunk } else { whole!.writeBuffer(&chunk) }
        }
        exchange.pendingBody = []
        return whole
    }

    /// The whole body at once when it has already arrived (the usual case for a small request,
    /// whose body comes with its head): a plugin asking for it then does not wait a loop turn.
    /// nil when it is still arriving (or another plugin waits for it).
    fileprivate func bodyIfComplete(_ exchange: Exchange, limit: Int) -> Result<ByteBuffer?, any Error>? {
        guard context != nil, self.exchange === exchange, exchange.clientBodyDone, exchange.bodyWaiters.isEmpty else {
            return nil
        }
        if exchange.pendingBytes > limit { return .failure(RequestBodyTooLarge()) }
        return .success(takeWholeBody(exchange))
    }

    private func failBodyWaiters(_ exchange: Exchange, _ error: any Error) {
        for waiter in exchange.bodyWaiters { waiter.promise.fail(error) }
        exchange.bodyWaiters = []
    }

    /// Whether reading from the client is paused; changed only here, and only when it changes
    /// (this is called on every request).
    private var clientReadingPaused = false

    private func setClientReading(_ on: Bool) {
        guard clientReadingPaused == on, let channel = context?.channel else { return }
        clientReadingPaused = !on
        try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
        if on {
            // The wait on the client starts again now (a paused client was not waiting on itself),
            // and a timer that fired while paused did not re-arm.
            lastClientRead = .now()
            ensureClientTimer()
        }
    }

    // MARK: Upstream exchange

    private func connect(_ exchange: Exchange) {
        guard let service = exchange.service, let pool else { return }
        let target: UpstreamTarget
        if let override = exchange.request.upstreamTarget {
            target = UpstreamTarget(tls: override.tls, host: override.host, port: override.port,
                                    verifyTLS: override.verifyTLS)
        } else {
            target = UpstreamTarget(tls: service.usesTLS, host: service.host,
                                    port: service.port, verifyTLS: service.tlsVerify ?? true)
        }
        exchange.attempts += 1
        if let idle = pool.takeIdle(target) {
            exchange.reusedConnection = true
            send(exchange, over: idle)
            return
        }
        exchange.reusedConnection = false
        pool.acquire(target, connectTimeout: .milliseconds(Int64(max(1, service.connectTimeout))))
            .assumeIsolated()
            .whenComplete { result in
                guard self.exchange === exchange else {
                    if case .success(let connection) = result { pool.release(connection) }
                    return
                }
                switch result {
                case .success(let connection): self.send(exchange, over: connection)
                case .failure(let error):
                    let failure = UpstreamFailure(error)
                    // A name that does not resolve fails before nginx tries any upstream.
                    if failure.kind != .nameResolution { exchange.request.exchangeLog.failedTries.append(failure.status) }
                    if failure.isRetryable && exchange.attempts <= service.retries {
                        self.connect(exchange)
                    } else {
                        // Name resolution failures are gateway errors in Kong (JSON by default);
                        // connect failures and timeouts are NGINX-level (Accept, else text).
                        self.respond(.error(failure.status, failure.message), exchange: exchange,
                                     nginxLevel: failure.kind != .nameResolution,
                                     afterProxying: failure.kind != .nameResolution)
                    }
                }
            }
    }

    private func send(_ exchange: Exchange, over connection: UpstreamConnection) {
        connection.delegate = self
        exchange.upstream = connection
        exchange.state = .proxying
        guard let head = exchange.upstreamHead else { return }
        connection.write(.head(head), flush: .later)
        if exchange.request.bodyWasBuffered {
            if let body = exchange.request.bufferedBody, body.readableBytes > 0 {
                connection.write(.body(.byteBuffer(body)), flush: .later)
            }
            connection.write(.end(nil), flush: .withLoopTurn)
            exchange.requestSent = true
        } else {
            for chunk in exchange.pendingBody { connection.write(.body(.byteBuffer(chunk)), flush: .later) }
            // A body that arrived whole stays (shared buffers, no copy) until the upstream answers,
            // so a retry can send it again; the rest of a body still arriving streams through.
            if !exchange.clientBodyDone { exchange.pendingBody = [] }
            if exchange.clientBodyDone {
                connection.write(.end(nil), flush: .withLoopTurn)
                exchange.requestSent = true
            } else {
                // Usually a request without a body whose end the parser yields next; otherwise the
                // start of a body still arriving (its later chunks are flushed one by one). Either
                // way the head goes out with this loop turn's other flushes, not in a write of its
                // own. Writability counts unflushed bytes too, so the check below still holds.
                connection.flush(.withLoopTurn)
                setClientReading(connection.channel?.isWritable ?? true)
            }
        }
        exchange.lastRead = .now()
        armReadTimer(exchange)
    }

    /// Kong's read_timeout: the longest gap between two reads from the upstream.
    ///
    /// One timer per client connection, not one per request: it is scheduled only when none is
    /// due by this exchange's deadline, and when it fires it re-arms for the exchange in flight
    /// (if any) from its last read. A request that completes costs no timer work.
    private func armReadTimer(_ exchange: Exchange) {
        guard let service = exchange.service, let loop = context?.eventLoop else { return }
        let deadline = exchange.lastRead + .milliseconds(Int64(max(1, service.readTimeout)))
        if readTimer != nil, readTimerDeadline <= deadline { return }  // fires in time and re-arms
        readTimer?.cancel()
        readTimerDeadline = deadline
        let bound = NIOLoopBound(self, eventLoop: loop)
        readTimer = loop.scheduleTask(deadline: deadline) { bound.value.readTimerFired() }
    }

    private var readTimer: Scheduled<Void>?
    private var readTimerDeadline = NIODeadline.distantFuture

    private func readTimerFired() {
        readTimer = nil
        guard let exchange, exchange.state == .proxying || exchange.state == .tunneling,
              let service = exchange.service else { return }
        let timeout = TimeAmount.milliseconds(Int64(max(1, service.readTimeout)))
        if NIODeadline.now() - exchange.lastRead < timeout {
            armReadTimer(exchange)
        } else if exchange.state == .tunneling {
            endTunnel(exchange, flushing: false)  // idle both ways for read_timeout, as nginx's upgraded connections
        } else {
            upstreamTimedOut(exchange)
        }
    }

    // MARK: Client timeouts (nginx's client_header_timeout, client_body_timeout, keepalive_timeout)

    /// When the connection last had nothing to do: opened, or its last response completed.
    private var idleSince = NIODeadline.uptimeNanoseconds(0)
    /// When the first byte of the request head being read arrived (nil: none is being read).
    private var headStartedAt: NIODeadline?
    private var lastClientRead = NIODeadline.uptimeNanoseconds(0)
    /// A request was read on this connection (the wait for the next one is keep-alive's).
    private var servedRequests = false
    private var clientTimer: Scheduled<Void>?

    /// When the wait on the client now in progress times out; nil when the gateway is not waiting
    /// on the client: the request body is whole (the upstream or a plugin has the turn), or
    /// reading was paused by backpressure. A plugin waiting for a body that stalls is timed.
    private var clientDeadline: NIODeadline? {
        let timeouts = services.options.clientTimeouts
        if let exchange {
            guard !exchange.clientBodyDone, exchange.state != .tunneling, !clientReadingPaused else { return nil }
            return lastClientRead + timeouts.body
        }
        if let headStartedAt { return headStartedAt + timeouts.header }
        return idleSince + (servedRequests ? timeouts.keepalive : timeouts.header)
    }

    /// One timer per connection, scheduled at most once per shortest timeout: every deadline lies
    /// at least that far after the moment it starts counting, so a timer set that far ahead of
    /// when it was armed never fires late; when it fires it acts or re-arms for what is due. The
    /// request path only reads the clock and checks that a timer exists.
    private func ensureClientTimer() {
        guard clientTimer == nil else { return }
        scheduleClientTimer(at: .now() + services.options.clientTimeouts.shortest)
    }

    private func scheduleClientTimer(at deadline: NIODeadline) {
        guard !closing, let loop = context?.eventLoop else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        clientTimer = loop.scheduleTask(deadline: deadline) { bound.value.clientTimerFired() }
    }

    private func clientTimerFired() {
        clientTimer = nil
        guard !closing, context != nil, let deadline = clientDeadline else { return }  // re-armed by the next wait
        let now = NIODeadline.now()
        guard now >= deadline else {
            return scheduleClientTimer(at: min(deadline, now + services.options.clientTimeouts.shortest))
        }
        if let exchange { return clientBodyTimedOut(exchange) }
        // An idle keep-alive connection, or a head that did not arrive in time: nginx closes
        // without an answer, and logs the head's 408.
        logUnparsedHead(status: 408, bodyBytesSent: 0, requestID: requestIDs.make())
        closeFlushingFirst()
    }

    /// nginx's `client_body_timeout`: a body the gateway waits for stopped arriving. Before any
    /// answer, `408 Request timeout` and the connection closes (an upstream that got part of the
    /// body is dropped); once an answer started, or while a plugin works on the request, the
    /// connection closes.
    private func clientBodyTimedOut(_ exchange: Exchange) {
        switch exchange.state {
        case .connecting, .proxying where !exchange.responseStarted:
            detachUpstream(exchange)
            exchange.clientKeepsAlive = false
            respond(.error(408, ProxyErrorText.requestTimeout), exchange: exchange, nginxLevel: true)
        default:
            closeFlushingFirst()
        }
    }

    /// Stops using the exchange's upstream connection and closes it (it may be mid-response).
    private func detachUpstream(_ exchange: Exchange) {
        guard let upstream = exchange.upstream else { return }
        upstream.reusable = false
        upstream.delegate = nil
        upstream.channel?.close(promise: nil)
        exchange.upstream = nil
    }

    private func upstreamTimedOut(_ exchange: Exchange) {
        detachUpstream(exchange)
        if exchange.responseStarted {
            closeFlushingFirst()
        } else {
            // nginx's `proxy_next_upstream timeout`: a timeout before the answer is a failed try.
            retryOrAnswer(exchange, status: 504, message: ProxyErrorText.upstreamTimeout, staleConnection: false)
        }
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange, let context else { return }
        exchange.lastRead = .now()
        if exchange.state == .tunneling, case .body(let bytes) = part {
            exchange.responseBytes += bytes.readableBytes
            context.write(wrapOutboundOut(bytes), promise: nil)  // flushed at the read's end
            if !context.channel.isWritable { exchange.upstream?.setReading(false) }
            return
        }
        if case .head(let response) = part, response.status == .switchingProtocols {
            return switchProtocols(response, exchange: exchange, context: context)
        }
        if exchange.request.buffersResponse {
            holdUpstream(part, exchange: exchange, context: context)
            return
        }
        switch part {
        case .head(let response):
            exchange.responseReceived(status: Int(response.status.code))
            // Body filters may change the length: the response is then sent chunked.
            let headers = downstreamHeaders(response, exchange: exchange, keepContentLength: exchange.bodyFilters.isEmpty)
            writeHead(exchange, status: Int(response.status.code), headers: headers, context: context)
        case .body(var chunk):
            for handler in exchange.bodyFilters { handler.bodyFilter(exchange.request, chunk: &chunk, last: false) }
            // Flushed at the end of the upstream read cycle (`upstreamReadComplete`): one write
            // per batch of what arrived together, and each batch reaches the client at once.
            writeBody(chunk, exchange: exchange, context: context)
            if exchange.request.endsResponseBody { return endResponseEarly(exchange, context: context) }
            if !context.channel.isWritable { exchange.upstream?.setReading(false) }
        case .end:
            if let tail = bodyFiltersTail(exchange) { writeBody(tail, exchange: exchange, context: context) }
            upstreamEnded(exchange)
        }
    }

    // MARK: WebSocket tunnel

    /// A 101 from the upstream: the client gets it (with Kong's headers and the header filters),
    /// then bytes pass both ways unchanged, as nginx does for an upgraded connection. Only an
    /// upgrade the gateway asked for is followed; an unrequested 101 is an invalid answer.
    private func switchProtocols(_ response: HTTPResponseHead, exchange: Exchange, context: ChannelHandlerContext) {
        let asked = exchange.upstreamHead.map { ProxyHeaders.requestsWebSocket($0.headers) } ?? false
        // A request body still arriving would be cut mid-message by the switch.
        guard asked, !exchange.responseStarted, exchange.clientBodyDone else {
            detachUpstream(exchange)
            return respond(.error(502, ProxyErrorText.invalidUpstreamResponse), exchange: exchange, nginxLevel: true,
                           afterProxying: true)
        }
        exchange.responseReceived(status: 101)
        exchange.state = .tunneling
        // Neither Content-Length nor Transfer-Encoding (hop-by-hop) is among these.
        var headers = downstreamHeaders(response, exchange: exchange, keepContentLength: false)
        // What the client switches to is the upstream's word (hop-by-hop, so dropped above).
        if let upgrade = response.headers.first(name: "upgrade") { headers.add(name: "Upgrade", value: upgrade) }
        writeHead(exchange, status: 101, headers: headers, switchesProtocols: true, context: context)
        sendUnsent(context)
        context.flush()
        // The drain asked this connection to close before the switch: it closes now, as open
        // tunnels do (`closeIfIdle`).
        if services.connections.isDraining { return endTunnel(exchange, flushing: true) }
        setClientReading(true)
        // Frames the client sent right behind its request (it may not wait for the 101).
        if let early = parser.takeBuffered() { tunnelToUpstream(early, exchange: exchange) }
    }

    /// Client bytes of a switched protocol, to the upstream as they are.
    private func tunnelToUpstream(_ bytes: ByteBuffer, exchange: Exchange) {
        guard let upstream = exchange.upstream else { return }
        exchange.lastRead = .now()  // activity either way keeps an upgraded connection open
        exchange.requestBodyBytes += bytes.readableBytes
        upstream.writeTunneled(bytes)
        if upstream.channel?.isWritable == false { setClientReading(false) }
    }

    /// The tunnel ends: the upstream closed (`flushing`: what the client has not received yet is
    /// sent first), or it sat idle or the node drains (closed now, after handing the socket what it
    /// takes at once: a client that stopped reading must not hold the connection). The log phase
    /// runs once (status 101).
    private func endTunnel(_ exchange: Exchange, flushing: Bool) {
        detachUpstream(exchange)
        if flushing { return complete(exchange) }
        closeFlushingFirst()  // channelInactive ends the exchange and logs it
    }

    /// A body filter ended the response before the upstream did (`endsResponseBody`): the filters
    /// get their last call, the client's response ends, and the upstream connection, its body
    /// unread, is closed rather than reused.
    private func endResponseEarly(_ exchange: Exchange, context: ChannelHandlerContext) {
        if let tail = bodyFiltersTail(exchange) { writeBody(tail, exchange: exchange, context: context) }
        detachUpstream(exchange)
        complete(exchange)
    }

    /// The upstream response is complete: the connection goes back to the pool, the exchange ends.
    private func upstreamEnded(_ exchange: Exchange) {
        releaseUpstream(exchange)
        complete(exchange)
    }

    /// The upstream response is complete: its timers stop and its connection goes back to the pool.
    private func releaseUpstream(_ exchange: Exchange) {
        exchange.writeTimer?.cancel()
        if let upstream = exchange.upstream {
            if !exchange.requestSent { upstream.reusable = false }
            pool?.release(upstream)
            exchange.upstream = nil
        }
    }

    /// `buffersResponse`: the upstream response is held until complete, then the plugins'
    /// `bufferedResponse` hooks, body filters and header filters run on it, and it is sent with its
    /// final Content-Length.
    private func holdUpstream(_ part: HTTPClientResponsePart, exchange: Exchange, context: ChannelHandlerContext) {
        switch part {
        case .head(let response):
            exchange.heldHead = response
            exchange.responseReceived(status: Int(response.status.code))
        case .body(var chunk):
            exchange.heldBody.writeBuffer(&chunk)
        case .end:
            guard let response = exchange.heldHead else { return }
            var status = Int(response.status.code)
            var upstreamHeaders = response.headers
            var body = exchange.heldBody
            exchange.heldBody = ByteBuffer()
            for handler in exchange.handlers {
                handler.bufferedResponse(exchange.request, status: &status, headers: &upstreamHeaders, body: &body)
            }
            var held = response
            held.headers = upstreamHeaders
            let inspectors = exchange.handlers.filter(\.inspectsResponse)
            if inspectors.isEmpty {
                sendHeld(held, status: status, body: body, exchange: exchange, context: context)
                upstreamEnded(exchange)
                return
            }
            // The upstream is done with: its connection goes back to the pool while plugins await.
            releaseUpstream(exchange)
            exchange.state = .inspecting
            let request = exchange.request
            let loop = context.eventLoop
            let bound = NIOLoopBound(self, eventLoop: loop)
            let boundExchange = NIOLoopBound(exchange, eventLoop: loop)
            let finalHeaders = upstreamHeaders, finalStatus = status, finalBody = body, finalHead = held
            exchange.inspection = Task(executorPreference: pool!.taskExecutor) {
                var verdict: PluginExit?
                for inspector in inspectors where !Task.isCancelled {
                    verdict = await inspector.inspectResponse(request, status: finalStatus, headers: finalHeaders,
                                                              body: finalBody)
                    if verdict != nil { break }
                }
                let replacement = verdict
                loop.execute {
                    let handler = bound.value, exchange = boundExchange.value
                    guard handler.exchange === exchange, let context = handler.context else {
                        return handler.logIfAbandoned(exchange)
                    }
                    if let replacement {
                        handler.respond(replacement, exchange: exchange, nginxLevel: false)
                    } else {
                        handler.sendHeld(finalHead, status: finalStatus, body: finalBody, exchange: exchange, context: context)
                        handler.complete(exchange)
                    }
                }
            }
        }
    }

    /// Sends a held upstream response (after the `bufferedResponse` hooks) with its final
    /// Content-Length: body filters, then header filters, then the bytes.
    private func sendHeld(_ response: HTTPResponseHead, status: Int, body: ByteBuffer, exchange: Exchange,
                          context: ChannelHandlerContext) {
        var body = body
        for handler in exchange.bodyFilters { handler.bodyFilter(exchange.request, chunk: &body, last: false) }
        if var tail = bodyFiltersTail(exchange) { body.writeBuffer(&tail) }
        // Neither Content-Length nor Transfer-Encoding (hop-by-hop) is among these.
        var headers = downstreamHeaders(response, exchange: exchange, keepContentLength: false)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        writeHead(exchange, status: status, headers: headers, context: context)
        writeBody(body, exchange: exchange, context: context)
    }

    /// The response headers toward the client (spec §8.2) from the upstream's.
    private func downstreamHeaders(_ response: HTTPResponseHead, exchange: Exchange, keepContentLength: Bool) -> HTTPHeaders {
        ProxyHeaders.downstreamHeaders(
            response.headers, requestID: exchange.request.requestID,
            status: Int(response.status.code), headerSet: services.options.responseHeaders,
            upstreamLatency: RequestPhases.milliseconds(since: exchange.upstreamStarted),
            proxyLatency: exchange.proxyLatency, keepContentLength: keepContentLength,
            clientAcceptsTrailers: exchange.upstreamHead?.headers.contains(name: "te") ?? false)  // only `TE: trailers` goes up
    }

    /// The body filters' last call (an empty chunk, `last: true`); what they appended, if any.
    private func bodyFiltersTail(_ exchange: Exchange) -> ByteBuffer? {
        guard !exchange.bodyFilters.isEmpty else { return nil }
        var tail = ByteBuffer()
        for handler in exchange.bodyFilters { handler.bodyFilter(exchange.request, chunk: &tail, last: true) }
        return tail.readableBytes > 0 ? tail : nil
    }

    func upstreamReadComplete() {
        guard let context else { return }
        sendUnsent(context)
        pool!.flushBatch.flush(context.channel)
    }

    func upstreamFailed(_ error: any Error) {
        guard let exchange else { return }
        if exchange.state == .tunneling { return endTunnel(exchange, flushing: true) }
        exchange.writeTimer?.cancel()
        exchange.upstream = nil
        if exchange.responseStarted {
            closeFlushingFirst()  // mid-body: the client gets what arrived, then sees the connection end
        } else if exchange.state == .proxying {
            retryOrAnswer(exchange, status: 502, message: ProxyErrorText.invalidUpstreamResponse,
                          staleConnection: exchange.reusedConnection)
        }
    }

    /// A try that ended before the answer was passed on (spec §8.5): tried again (Kong's
    /// `retries`) when the request can be sent again whole, no answer had come, and either the
    /// upstream cannot have acted on it (nginx passes a non-idempotent request that was sent to
    /// no next try) or the connection was a pooled one that had gone stale, which costs no
    /// attempt; else answered with `status` (502, or 504 after a timeout). nginx logs the try's
    /// status unless an answer had come.
    private func retryOrAnswer(_ exchange: Exchange, status: Int, message: String, staleConnection: Bool) {
        if exchange.request.exchangeLog.upstreamStatus == nil { exchange.request.exchangeLog.failedTries.append(status) }
        let whole = !exchange.bodyStreamed && (exchange.request.bodyWasBuffered || exchange.clientBodyDone)
        let safe = !exchange.requestSent || staleConnection || exchange.head.method.isIdempotent
        if staleConnection { exchange.attempts -= 1 }
        if exchange.heldHead == nil, whole, safe, let service = exchange.service, exchange.attempts <= service.retries {
            exchange.state = .connecting
            exchange.requestSent = false
            connect(exchange)
        } else {
            respond(.error(status, message), exchange: exchange, nginxLevel: true, afterProxying: true)
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        guard let exchange else { return }
        if exchange.state == .tunneling { return setClientReading(writable) }
        guard exchange.state == .proxying, !exchange.request.bodyWasBuffered else { return }
        setClientReading(writable)
        if writable {
            exchange.writeTimer?.cancel()
            exchange.writeTimer = nil
        } else {
            armWriteTimer(exchange)
        }
    }

    /// Kong's write_timeout: the upstream must take more of the request body within it.
    private func armWriteTimer(_ exchange: Exchange) {
        guard exchange.writeTimer == nil, let service = exchange.service, let loop = context?.eventLoop else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let boundExchange = NIOLoopBound(exchange, eventLoop: loop)
        exchange.writeTimer = loop.scheduleTask(in: .milliseconds(Int64(max(1, service.writeTimeout)))) {
            let handler = bound.value, exchange = boundExchange.value
            exchange.writeTimer = nil
            guard handler.exchange === exchange, exchange.state == .proxying,
                  exchange.upstream?.channel?.isWritable == false else { return }
            handler.upstreamTimedOut(exchange)
        }
    }

    // MARK: Responses

    /// `afterProxying`: the request went to the upstream and failed there (see
    /// `generatedResponse`'s `proxied`).
    private func respond(_ exit: PluginExit, exchange: Exchange, nginxLevel: Bool, afterProxying: Bool = false) {
        guard let context else { return }
        exchange.state = .responded
        let proxied = afterProxying
            ? RequestPhases.ProxiedLatencies(upstream: RequestPhases.milliseconds(since: exchange.upstreamStarted),
                                             proxy: exchange.proxyLatency)
            : nil
        let (status, generated, body) = RequestPhases.generatedResponse(exit, context: exchange.request, head: exchange.head,
                                                                        headerSet: services.options.responseHeaders,
                                                                        started: exchange.started, nginxLevel: nginxLevel,
                                                                        proxied: proxied)
        writeHead(exchange, status: status, headers: generated, context: context)
        if !body.isEmpty { writeBody(ByteBuffer(string: body), exchange: exchange, context: context) }
        failBodyWaiters(exchange, ChannelError.ioOnClosedChannel)
        // Whatever is left of the request body is read and dropped (no exchange takes it), so the
        // connection stays usable for the next request.
        complete(exchange)
    }

    /// Sends a response's head (upstream, buffered or gateway-generated): header filters, the
    /// connection's fate, and the facts the log phase reports.
    private func writeHead(_ exchange: Exchange, status: Int, headers: HTTPHeaders,
                           switchesProtocols: Bool = false, context: ChannelHandlerContext) {
        var headers = headers
        for handler in exchange.handlers { handler.headerFilter(exchange.request, status: status, headers: &headers) }
        if services.options.allowDebugHeader { addDebugHeaders(exchange, to: &headers) }
        // nginx dates every answer; an upstream's own `Date` is kept (Kong's `proxy_pass_header Date`).
        if let pool, !headers.contains(name: "date") { headers.add(name: "Date", value: pool.date.now) }
        if switchesProtocols {
            // The connection belongs to the new protocol now; it closes when the tunnel does.
            headers.replaceOrAdd(name: "Connection", value: "upgrade")
            exchange.closesConnection = true
        } else {
            // An HTTP/1.0 client keeps the connection only when asked and the body has a length
            // (there is no chunked encoding in 1.0: the end of such a body is the connection's end).
            let http10 = exchange.head.version == .http1_0
            let keepAlive = exchange.clientKeepsAlive && !services.connections.isDraining
                && services.options.clientTimeouts.keepalive > .zero
                && (!http10 || headers.contains(name: "content-length"))
            if !keepAlive {
                headers.replaceOrAdd(name: "Connection", value: "close")
            } else if http10 {
                headers.replaceOrAdd(name: "Connection", value: "keep-alive")
            }
            exchange.closesConnection = !keepAlive
        }
        exchange.responseStarted = true
        exchange.request.exchangeLog.status = status
        exchange.request.exchangeLog.responseHeaders = headers
        exchange.request.exchangeLog.connection = switchesProtocols ? .upgrade : exchange.closesConnection ? .close : .keepAlive
        let head = HTTPResponseHead(version: exchange.head.version, status: HTTPResponseStatus(statusCode: status),
                                    headers: headers)
        sendUnsent(context)
        let encoded = encoder.responseHead(head, answering: exchange.head.method, allocator: context.channel.allocator)
        exchange.request.exchangeLog.chunked = encoder.framesChunked
        exchange.responseBytes += encoded.readableBytes  // after a `100 Continue`, if one was sent
        exchange.responseHeadBytes += encoded.readableBytes
        unsent = encoded
    }

    /// Kong's `allow_debug_header`: a request carrying `Kong-Debug` learns which route and service
    /// served it (after the plugins' header filters, as Kong's runloop adds them).
    private func addDebugHeaders(_ exchange: Exchange, to headers: inout HTTPHeaders) {
        guard exchange.head.headers.contains(name: "kong-debug"), let match = exchange.request.match else { return }
        headers.replaceOrAdd(name: "Kong-Route-Id", value: match.route.id)
        if let name = match.route.name { headers.replaceOrAdd(name: "Kong-Route-Name", value: name) }
        if let service = match.service {
            headers.replaceOrAdd(name: "Kong-Service-Id", value: service.id)
            if let name = service.name { headers.replaceOrAdd(name: "Kong-Service-Name", value: name) }
        }
    }

    /// Writes a piece of the response body in the response's framing (not flushed).
    private func writeBody(_ chunk: ByteBuffer, exchange: Exchange, context: ChannelHandlerContext) {
        encoder.body(chunk, allocator: context.channel.allocator) { framed in
            exchange.responseBytes += framed.readableBytes
            emit(framed, context: context)
        }
    }

    /// The response head not yet handed to the channel, with the small body pieces that followed
    /// it before the next flush: a small response goes out as one buffer (one write down the
    /// pipeline, one iovec) instead of a head and a body.
    private var unsent: ByteBuffer?
    static let mergedBodyLimit = 2048

    private func emit(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        if unsent != nil, bytes.readableBytes <= Self.mergedBodyLimit {
            var bytes = bytes
            unsent!.writeBuffer(&bytes)
            return
        }
        sendUnsent(context)
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    private func sendUnsent(_ context: ChannelHandlerContext) {
        guard let bytes = unsent else { return }
        unsent = nil
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    /// Ends the response, queues the log phase and frees the connection for the next request.
    private func complete(_ exchange: Exchange) {
        guard let context else { return }
        self.exchange = nil
        exchange.writeTimer?.cancel()
        idleSince = .now()
        // Bytes of the next request already read start its head's time now.
        headStartedAt = parser.bufferedBytes > 0 ? idleSince : nil
        ensureClientTimer()
        let draining = services.connections.requestEnded()
        if let last = encoder.end() {
            exchange.responseBytes += last.readableBytes
            emit(last, context: context)
        }
        if !exchange.closesConnection && !draining {
            sendUnsent(context)
            pool!.flushBatch.flush(context.channel)
        } else {
            closing = true
            if exchange.request.exchangeLog.connection == .keepAlive { exchange.request.exchangeLog.connection = .close }
            let bytes = unsent ?? ByteBuffer()
            unsent = nil
            context.writeAndFlush(wrapOutboundOut(bytes)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            submitLogPhase(exchange)
            return
        }
        setClientReading(true)
        submitLogPhase(exchange)
        parseBufferedRequests()
    }

    /// Writes the access log line, then queues the log phase of the plugins that want it, off
    /// the event loop.
    private func submitLogPhase(_ exchange: Exchange) {
        if let accessLog = services.accessLog, let pool { writeAccessLine(exchange, log: accessLog, pool: pool) }
        let loggers = exchange.handlers.filter { $0.logs && $0.needsLog(exchange.request) }
        guard !loggers.isEmpty else { return }
        recordExchangeLog(exchange)
        let request = exchange.request
        request.releaseBody()  // the log phase never reads it; queued entries stay small
        services.logSink.submit(releasingOn: context?.eventLoop, loggers: loggers) {
            for handler in loggers { handler.log(request) }
        }
    }

    private func writeAccessLine(_ exchange: Exchange, log: AccessLog, pool: UpstreamPool) {
        let request = exchange.request
        accessLines(log, pool).append(
            AccessLogEntry(remoteAddress: request.forwardedClientAddress, method: exchange.head.method,
                           target: exchange.head.uri, version: exchange.head.version, receivedTarget: exchange.receivedTarget,
                           status: request.exchangeLog.status,
                           bodyBytesSent: exchange.responseBytes - exchange.responseHeadBytes,
                           headers: exchange.head.headers, requestID: request.requestID))
    }

    /// nginx logs a request whose head it never parsed once it ends: refused (400, 414), cut off
    /// by the client (400) or timed out (408). `$request` is its first line as read; the head's
    /// fields are not known (`-`), nor is a forwarded address. Nothing is logged when no byte of
    /// a head was read (an idle connection closing).
    private func logUnparsedHead(status: Int, bodyBytesSent: Int, requestID: String) {
        guard let accessLog = services.accessLog, let pool, let line = parser.unparsedRequestLine() else { return }
        accessLines(accessLog, pool).append(
            AccessLogEntry(remoteAddress: clientAddress, method: .GET, target: "", version: .http1_1,
                           unparsedRequestLine: line, status: status, bodyBytesSent: bodyBytesSent,
                           headers: HTTPHeaders(), requestID: requestID))
    }

    /// This loop's access log lines not written yet.
    private func accessLines(_ log: AccessLog, _ pool: UpstreamPool) -> AccessLogBatch {
        if let existing = pool.accessLines { return existing }
        let batch = AccessLogBatch(log: log, eventLoop: pool.eventLoop)
        pool.accessLines = batch
        return batch
    }

    /// The serializer's facts, gathered only when a plugin will read them (the log phase runs).
    private func recordExchangeLog(_ exchange: Exchange) {
        let now = NIODeadline.now()
        let total = (now - exchange.started).nanoseconds / 1_000_000
        var log = exchange.request.exchangeLog
        log.startedAt = WallClock.milliseconds() - total
        log.requestLatency = total
        log.requestSize = exchange.requestHeadBytes + exchange.requestBodyBytes
        log.responseSize = exchange.responseBytes
        log.upstreamURI = exchange.upstreamHead?.uri ?? ""
        if log.proxied {
            let waiting = (now - exchange.upstreamStarted).nanoseconds / 1_000_000
            log.proxyLatency = waiting
            log.kongLatency = max(0, total - waiting)
        } else {
            log.kongLatency = total
        }
        exchange.request.exchangeLog = log
    }
}

/// Lets plugins (in their task) ask the connection's handler (on its loop) for the whole body.
///
/// It refers to the exchange weakly: the exchange owns the request, which owns this provider, so a
/// strong reference would keep every request's state alive after it ended.
private struct LoopBodyProvider: RequestBodyProvider, @unchecked Sendable {
    final class WeakExchange {
        weak var value: ProxyConnectionHandler.Exchange?
        init(_ value: ProxyConnectionHandler.Exchange) { self.value = value }
    }

    let handler: NIOLoopBound<ProxyConnectionHandler>
    let exchange: NIOLoopBound<WeakExchange>

    func collectNow(limit: Int) -> Result<ByteBuffer?, any Error>? {
        guard handler.eventLoop.inEventLoop, let current = exchange.value.value else { return nil }
        return handler.value.bodyIfComplete(current, limit: limit)
    }

    func collect(limit: Int) async throws -> ByteBuffer? {
        // Plugin phases run on the connection's loop: a body already read is returned at once.
        if let ready = collectNow(limit: limit) { return try ready.get() }
        let handler = self.handler, exchange = self.exchange
        return try await handler.eventLoop.flatSubmit {
            guard let current = exchange.value.value else {
                return handler.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            return handler.value.collectBody(current, limit: limit)
        }.get()
    }
}

/// Carries a decision (holding handler existentials, all Sendable) back to the loop.
private struct UncheckedDecision: @unchecked Sendable {
    let decision: ProxyDecision
    init(_ decision: ProxyDecision) { self.decision = decision }
}

extension HTTPMethod {
    /// RFC 9110 §9.2.2: repeating the request has the same effect as sending it once.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .PUT, .DELETE, .OPTIONS, .TRACE: return true
        default: return false
        }
    }
}
