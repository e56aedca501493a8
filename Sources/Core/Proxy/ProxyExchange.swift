import NIOCore
import NIOHTTP1

/// What every client connection shares: the running configuration, upstream pools, the log queue
/// and the drain state.
final class ProxyServices: Sendable {
    let holder: ConfigurationHolder
    let pools: UpstreamPools
    let logSink: LogSink
    let connections: ConnectionRegistry
    let options: ProxyOptions
    /// The proxy's access log (`proxy_access_log`); nil when off.
    let accessLog: AccessLog?

    init(holder: ConfigurationHolder, pools: UpstreamPools, logSink: LogSink, connections: ConnectionRegistry,
         options: ProxyOptions, accessLog: AccessLog? = nil) {
        self.options = options
        self.accessLog = accessLog
        self.holder = holder
        self.pools = pools
        self.logSink = logSink
        self.connections = connections
    }
}

extension ProxyConnectionHandler {
    /// One request in flight on this connection.
    final class Exchange {
        /// `inspecting`: the upstream response is complete and plugins check it before it is sent.
        /// `tunneling`: the upstream switched protocols (a WebSocket upgrade); bytes pass both
        /// ways as they are until either side closes.
        enum State { case deciding, connecting, proxying, inspecting, responded, tunneling }

        let head: HTTPRequestHead
        let request: ProxyRequestContext
        let configuration: GatewayConfiguration
        let started: NIODeadline
        var state = State.deciding
        /// The plugin phases, set with the head and run once the bytes read with it are parsed.
        var pendingPhases: RequestPhaseWalk?
        /// The client left while a plugin task was working on the request: the task's end runs
        /// the log phase (status 499).
        var logsWhenTaskEnds = false
        /// The status that log records: 499 for a client that left, the refusal's for a body
        /// that broke off.
        var endedStatus = 499
        /// The client's head lets the connection stay open (`HTTPRequestHead.isKeepAlive`, read
        /// off by the parser).
        var clientKeepsAlive = true
        var handlers: [any PluginHandler] = []
        var bodyFilters: [any PluginHandler] = []
        var service: Service?
        var upstreamHead: HTTPRequestHead?
        var upstream: UpstreamConnection?
        var attempts = 0
        // Request body from the client.
        var pendingBody: [ByteBuffer] = []
        var pendingBytes = 0
        var clientBodyDone = false
        var bodyWaiters: [(limit: Int, promise: EventLoopPromise<ByteBuffer?>)] = []
        var requestSent = false
        /// Client body went to the upstream as it arrived: such a request cannot be replayed.
        var bodyStreamed = false
        /// The client's body is chunked (the parser's framing of the request).
        var clientBodyChunked = false
        /// A chunked body outgrew `ProxyOptions.requestBufferingLimit` while held for `request_buffering`: it
        /// streams on, chunked.
        var chunkedBodyOverLimit = false
        // Response.
        var responseStarted = false
        /// Decided with the response head: the connection closes after this response.
        var closesConnection = false
        /// The upstream connection came from the pool (a failure before any answer means it had
        /// gone stale; retrying then costs no attempt).
        var reusedConnection = false
        /// The upstream response held whole while a plugin asked for it (`buffersResponse`).
        var heldHead: HTTPResponseHead?
        var heldBody = ByteBuffer()
        // For the log phase (nginx's `request_length` and `bytes_sent`): the request's head as
        // received and its body; the response's bytes as written (head, body in its framing).
        var requestHeadBytes = 0
        var requestBodyBytes = 0
        var responseBytes = 0
        /// Of `responseBytes`, the answer's head: the rest (a `100 Continue` included, as nginx
        /// counts it) is nginx's `body_bytes_sent`.
        var responseHeadBytes = 0
        /// The request target as received when the head's does not show it (an absolute-form
        /// `http://host/path`, bytes that are not UTF-8), for the access log's `$request`.
        var receivedTarget: [UInt8]?
        var proxyLatency: Int64 = 0
        // Both set before they are read (when proxying starts): no clock read per field here.
        var upstreamStarted = NIODeadline.uptimeNanoseconds(0)
        var lastRead = NIODeadline.uptimeNanoseconds(0)
        /// The plugins' look at a held response (`inspectResponse`), cancelled if the client leaves.
        var inspection: Task<Void, Never>?
        /// Armed while the upstream cannot take more request body (Kong's write_timeout).
        var writeTimer: Scheduled<Void>?

        /// The upstream answered: the request can no longer be retried, its status is logged and
        /// the response counts as proxied.
        func responseReceived(status: Int) {
            pendingBody = []  // kept for a retry until now
            request.exchangeLog.upstreamStatus = status
            request.exchangeLog.status = status
            request.exchangeLog.proxied = true
        }

        init(head: HTTPRequestHead, request: ProxyRequestContext, configuration: GatewayConfiguration) {
            self.head = head
            self.request = request
            self.configuration = configuration
            started = .now()
        }
    }
}
