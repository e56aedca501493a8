import NIOCore
import NIOHTTP1

/// A plugin configuration compiled for one configuration snapshot (Envoy's factory split): built
/// once when the snapshot is built, then only its phase methods run per request. Phases a plugin
/// does not implement cost nothing beyond the default no-op.
public protocol PluginHandler: Sendable {
    /// Before routing; Kong runs it for global plugins only.
    func rewrite(_ context: ProxyRequestContext) async -> PluginVerdict
    /// After routing, in PRIORITY order. Returning `.exit` stops the access phase and answers the
    /// client without proxying (Kong's `kong.response.exit` / `kong.response.error`).
    func access(_ context: ProxyRequestContext) async -> PluginVerdict
    /// `rewrite` decided without suspending, or nil when it needs to wait (then `rewrite` runs
    /// instead, in a task). A request whose phases all decide at once never leaves its event loop
    /// turn. Default nil: a handler is asynchronous unless it says otherwise; one that answers
    /// non-nil must answer exactly what `rewrite` would, and must change nothing when it answers nil.
    func rewriteNow(_ context: ProxyRequestContext) -> PluginVerdict?
    /// `access` decided without suspending; the same contract as `rewriteNow`.
    func accessNow(_ context: ProxyRequestContext) -> PluginVerdict?
    /// Response headers on their way to the client (upstream or plugin-generated).
    func headerFilter(_ context: ProxyRequestContext, status: Int, headers: inout HTTPHeaders)
    /// Each chunk of the response body on its way to the client, then once more with an empty
    /// chunk and `last == true`. Streaming-safe: a handler sees chunks as they arrive.
    func bodyFilter(_ context: ProxyRequestContext, chunk: inout ByteBuffer, last: Bool)
    /// The whole upstream response, when a plugin set `context.buffersResponse` in access: runs
    /// before `headerFilter`, may change status, headers and body (Content-Length is recomputed).
    func bufferedResponse(_ context: ProxyRequestContext, status: inout Int, headers: inout HTTPHeaders,
                          body: inout ByteBuffer)
    /// A held response's last look before the client gets it: runs after every handler's
    /// `bufferedResponse` (so it sees the final body, e.g. ai-proxy's OpenAI-shaped answer) and may
    /// await another service (a content check). An exit replaces the response. Called only on
    /// handlers whose `inspectsResponse` is true, in PRIORITY order; the first exit wins.
    func inspectResponse(_ context: ProxyRequestContext, status: Int, headers: HTTPHeaders,
                         body: ByteBuffer) async -> PluginExit?
    /// Whether `inspectResponse` does anything (it costs a hop off the event loop).
    var inspectsResponse: Bool { get }
    /// After the response was sent; reads the log record. Runs only for handlers whose `logs` is true.
    func log(_ context: ProxyRequestContext)
    /// Whether `log` does anything: the engine gathers the log facts and queues the log phase
    /// only when a selected handler says so.
    var logs: Bool { get }
    /// The log thread ran a batch of queued log phases, this handler's among them: output `log`
    /// held while the batch ran (file-log's lines) is written now. Called after the batch, once
    /// for each of its entries this handler logged (the first call writes, the others find
    /// nothing held). A batch is what queued up while the previous one ran: one request on a
    /// quiet gateway, many under load.
    func logBatchEnded()
    /// Whether `log` has work for this request (asked once the response is sent, only when `logs`
    /// is true): a handler whose log work depends on the exchange spares the others the log phase.
    func needsLog(_ context: ProxyRequestContext) -> Bool
    /// Whether `bodyFilter` does anything: the engine skips the per-chunk call otherwise.
    var filtersBody: Bool { get }
}

extension PluginHandler {
    public func rewrite(_ context: ProxyRequestContext) async -> PluginVerdict { .proceed }
    public func access(_ context: ProxyRequestContext) async -> PluginVerdict { .proceed }
    public func rewriteNow(_ context: ProxyRequestContext) -> PluginVerdict? { nil }
    public func accessNow(_ context: ProxyRequestContext) -> PluginVerdict? { nil }
    public func bodyFilter(_ context: ProxyRequestContext, chunk: inout ByteBuffer, last: Bool) {}
    public var filtersBody: Bool { false }
    public func headerFilter(_ context: ProxyRequestContext, status: Int, headers: inout HTTPHeaders) {}
    public func log(_ context: ProxyRequestContext) {}
    public var logs: Bool { false }
    public func logBatchEnded() {}
    public func needsLog(_ context: ProxyRequestContext) -> Bool { true }
    public func bufferedResponse(_ context: ProxyRequestContext, status: inout Int, headers: inout HTTPHeaders,
                                 body: inout ByteBuffer) {}
    public func inspectResponse(_ context: ProxyRequestContext, status: Int, headers: HTTPHeaders,
                                body: ByteBuffer) async -> PluginExit? { nil }
    public var inspectsResponse: Bool { false }
}

/// A handler without a rewrite phase (none of the bundled plugins has one): its rewrite decides
/// at once. Only for handlers that do not implement `rewrite`: the synchronous walk would skip it.
public protocol WithoutRewritePhase: PluginHandler {}

extension WithoutRewritePhase {
    public func rewriteNow(_ context: ProxyRequestContext) -> PluginVerdict? { .proceed }
}

/// A handler that has neither a rewrite nor an access phase (a logger): both decide at once.
/// Only for handlers that implement neither.
public protocol WithoutRequestPhases: WithoutRewritePhase {}

extension WithoutRequestPhases {
    public func accessNow(_ context: ProxyRequestContext) -> PluginVerdict? { .proceed }
}

public enum PluginVerdict: Sendable {
    case proceed
    case exit(PluginExit)
}

/// A response produced by a plugin instead of the upstream's.
public struct PluginExit: Sendable {
    public enum Body: Sendable {
        /// `kong.response.exit(status, table)`: compact JSON, no request id.
        case json(JSONValue)
        /// `kong.response.error(status, message)`: Kong's error template chosen by `Accept`.
        case error(message: String?)
        /// `kong.response.exit(status, "text")`: the text as is, as `text/plain`.
        case text(String)
        /// A body relayed as is, typed only by the exit's own headers (ai-response-transformer
        /// answering with the upstream's headers).
        case raw(String)
        case empty
    }

    public var status: Int
    public var headers: [(String, String)]
    public var body: Body

    public init(status: Int, headers: [(String, String)] = [], body: Body) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func error(_ status: Int, _ message: String? = nil, headers: [(String, String)] = []) -> PluginExit {
        PluginExit(status: status, headers: headers, body: .error(message: message))
    }
}

/// Builds a plugin's handler from one configured instance. Registered by the Plugins module; the
/// core only knows this shape.
public struct PluginFactory: Sendable {
    public let name: String
    public let priority: Int
    public let make: @Sendable (PluginInstance, GatewayDirectory) throws -> any PluginHandler

    public init(name: String, priority: Int,
                make: @escaping @Sendable (PluginInstance, GatewayDirectory) throws -> any PluginHandler) {
        self.name = name
        self.priority = priority
        self.make = make
    }
}

/// Read-only look-ups a plugin may need at request time (consumers, credentials), from the
/// snapshot the request runs on.
public struct GatewayDirectory: Sendable {
    let consumersByID: [String: Consumer]
    let consumersByUsername: [String: Consumer]
    let keyAuthCredentials: [String: KeyAuthCredential]

    init(snapshot: ConfigSnapshot) {
        consumersByID = Dictionary(snapshot.consumers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var byUsername: [String: Consumer] = [:]
        for consumer in snapshot.consumers { if let u = consumer.username { byUsername[u] = consumer } }
        consumersByUsername = byUsername
        keyAuthCredentials = Dictionary(snapshot.keyAuthCredentials.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public func consumer(id: String) -> Consumer? { consumersByID[id] }
    /// Kong's `anonymous` lookup: by id, else by username.
    public func consumer(idOrUsername value: String) -> Consumer? { consumersByID[value] ?? consumersByUsername[value] }
    public func keyAuthCredential(key: String) -> KeyAuthCredential? { keyAuthCredentials[key] }
}
