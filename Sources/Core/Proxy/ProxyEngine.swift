#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1

/// What the request phases decided for one request.
enum ProxyDecision {
    /// Answer from the gateway (no route, plugin exit, no service...). `handlers` still see the
    /// response (header_filter) and the log.
    case respond(PluginExit, handlers: [any PluginHandler])
    /// Proxy to the service with the handlers selected in the access phase.
    case proxy(RouteMatch, Service, handlers: [any PluginHandler])
}

/// The request phases up to the upstream call (spec §6.4, §7.1): rewrite (global plugins),
/// routing, the HTTPS check, access (plugins resolved lazily in PRIORITY order), service check.
/// Pure decisions over the request context; the connection handler does all I/O.
///
/// A walk is tried synchronously first (`decideNow`): each handler's `rewriteNow`/`accessNow`.
/// The first handler that needs to wait hands the rest of the walk, from its own call on, to
/// `decide(continuing:)` in a task. Both drivers share the walk, so the two paths cannot disagree.
struct RequestPhaseWalk: Sendable {
    enum Phase { case rewrite, access }

    /// The next thing the driver must do.
    enum Step {
        case call(any PluginHandler, Phase)
        case decided(ProxyDecision)
    }

    let context: ProxyRequestContext
    let head: HTTPRequestHead
    let configuration: GatewayConfiguration
    let localPort: Int

    private enum Stage { case rewrite(Int), routing, access(Int) }
    private var stage: Stage = .rewrite(0)
    private var match: RouteMatch?
    private var selected: [any PluginHandler] = []
    /// [EE] The route's access order (positions in `pluginOrder`) when its plugins reorder it;
    /// nil: priority order. `selectedAt` then keeps each selected handler's priority position.
    private var accessOrder: [Int]?
    private var selectedAt: [Int] = []

    init(_ context: ProxyRequestContext, head: HTTPRequestHead, configuration: GatewayConfiguration, localPort: Int) {
        self.context = context
        self.head = head
        self.configuration = configuration
        self.localPort = localPort
    }

    /// The next plugin call (asked again until its verdict is recorded), or the decision.
    mutating func next() -> Step {
        while true {
            switch stage {
            case .rewrite(let index):
                let globals = configuration.globalHandlers
                if index < globals.count { return .call(globals[index], .rewrite) }
                stage = .routing
            case .routing:
                switch RequestPhases.routed(context, head: head, configuration: configuration, localPort: localPort) {
                case .failure(let answer):
                    // Collection never happened: the global plugins only see the answer.
                    return .decided(.respond(answer.exit, handlers: configuration.globalHandlers))
                case .success(let found):
                    match = found
                    accessOrder = configuration.accessOrders.isEmpty ? nil : configuration.accessOrders[ObjectIdentifier(found.route)]
                    // At most one handler per configured plugin name: one allocation, not one per growth.
                    selected.reserveCapacity(configuration.pluginOrder.count)
                    stage = .access(0)
                }
            case .access(var position):
                let count = configuration.pluginOrder.count
                while position < count {
                    if let handler = configuration.handler(at: accessOrder?[position] ?? position, match: match!,
                                                           consumerID: context.consumer?.id) {
                        stage = .access(position)
                        return .call(handler, .access)
                    }
                    position += 1
                }
                stage = .access(position)
                guard let service = match!.service else {
                    return .decided(.respond(.error(503, ProxyErrorText.noService), handlers: selectedInPriorityOrder()))
                }
                return .decided(.proxy(match!, service, handlers: selectedInPriorityOrder()))
            }
        }
    }

    /// The handlers the later phases run: in priority order, whatever order access ran them in.
    private func selectedInPriorityOrder() -> [any PluginHandler] {
        guard accessOrder != nil else { return selected }
        return zip(selectedAt, selected).sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// The verdict of the call `next()` gave; a decision when it ends the phases.
    mutating func record(_ verdict: PluginVerdict, of handler: any PluginHandler) -> ProxyDecision? {
        switch stage {
        case .rewrite(let index):
            if case .exit(let exit) = verdict { return .respond(exit, handlers: configuration.globalHandlers) }
            stage = .rewrite(index + 1)
        case .access(let position):
            selected.append(handler)
            if let accessOrder { selectedAt.append(accessOrder[position]) }
            if case .exit(let exit) = verdict {
                // Plugins whose configuration applies still see the response and the log, even
                // though their access handler did not run (Kong's behaviour, spec §7.1).
                for later in configuration.pluginOrder.indices.dropFirst(position + 1) {
                    let at = accessOrder?[later] ?? later
                    if let handler = configuration.handler(at: at, match: match!, consumerID: context.consumer?.id) {
                        selected.append(handler)
                        if accessOrder != nil { selectedAt.append(at) }
                    }
                }
                return .respond(exit, handlers: selectedInPriorityOrder())
            }
            stage = .access(position + 1)
        case .routing:
            preconditionFailure("no plugin call during routing")
        }
        return nil
    }
}

enum RequestPhases {
    /// The phases without suspending: the decision, or nil when a handler needs to wait (the walk
    /// then stands at that handler's call, for `decide(continuing:)`).
    static func decideNow(_ walk: inout RequestPhaseWalk) -> ProxyDecision? {
        while true {
            switch walk.next() {
            case .decided(let decision): return decision
            case .call(let handler, let phase):
                let verdict = phase == .rewrite ? handler.rewriteNow(walk.context) : handler.accessNow(walk.context)
                guard let verdict else { return nil }
                if let decision = walk.record(verdict, of: handler) { return decision }
            }
        }
    }

    /// The phases from where `decideNow` stopped; they may suspend (a plugin reads the body or
    /// calls out).
    static func decide(continuing start: RequestPhaseWalk) async -> ProxyDecision {
        var walk = start
        while true {
            switch walk.next() {
            case .decided(let decision): return decision
            case .call(let handler, let phase):
                let verdict = phase == .rewrite ? await handler.rewrite(walk.context) : await handler.access(walk.context)
                if let decision = walk.record(verdict, of: handler) { return decision }
            }
        }
    }

    /// A gateway answer instead of a route (no match, or the route's protocol check).
    struct RoutingAnswer: Error { let exit: PluginExit }

    /// Routing and the protocol check (spec §6.4), the walk's routing step.
    static func routed(_ context: ProxyRequestContext, head: HTTPRequestHead, configuration: GatewayConfiguration,
                       localPort: Int) -> Result<RouteMatch, RoutingAnswer> {
        guard let match = route(context, head: head, configuration: configuration, localPort: localPort) else {
            return .failure(RoutingAnswer(exit: .error(404, ProxyErrorText.noRoute)))
        }
        context.match = match
        if let answer = protocolCheck(match.route, context: context, head: head) { return .failure(RoutingAnswer(exit: answer)) }
        return .success(match)
    }

    static func route(_ context: ProxyRequestContext, head: HTTPRequestHead, configuration: GatewayConfiguration,
                      localPort: Int) -> RouteMatch? {
        var routerHeaders: [String: [String]] = [:]
        if configuration.router.usesHeaders {
            for (name, value) in head.headers {
                routerHeaders[RouterRequest.normalizedHeaderName(name), default: []].append(value)
            }
        }
        let request = RouterRequest(method: head.method.rawValue, host: head.headers.first(name: "host"),
                                    rawPath: context.rawPath, headers: routerHeaders, localPort: localPort,
                                    sni: context.serverName, isTLS: context.isTLS)
        return configuration.router.match(request)
    }

    /// Spec §6.4.1–2: https-only routes answer plain-HTTP requests with 426 or a redirect; gRPC
    /// routes need a gRPC request over HTTP/2 (this gateway speaks HTTP/1.1 to clients, so a
    /// gRPC request gets Kong's 426 asking for HTTP/2).
    static func protocolCheck(_ route: Route, context: ProxyRequestContext, head: HTTPRequestHead) -> PluginExit? {
        let grpcOnly = !route.protocols.isEmpty && route.protocols.allSatisfy { $0 == "grpc" || $0 == "grpcs" }
        if grpcOnly {
            let contentType = head.headers.first(name: "content-type")?.lowercased() ?? ""
            if !contentType.hasPrefix("application/grpc") {
                return .error(415, "Non-gRPC request matched gRPC route")
            }
            return .error(426, "Please use HTTP2 protocol", headers: [("Connection", "Upgrade"), ("Upgrade", "HTTP/2")])
        }
        // The effective scheme: a trusted peer's X-Forwarded-Proto (a TLS-terminating balancer
        // in front), else the connection's own.
        let forwardedProto = context.clientIsTrusted ? head.headers.first(name: "x-forwarded-proto") : nil
        let https = forwardedProto.map { $0.lowercased() == "https" } ?? context.isTLS
        guard route.protocols.contains("https"), !route.protocols.contains("http"), !https else { return nil }
        let code = route.protocolCheckStatusCode
        if code == 426 {
            return PluginExit.error(426, ProxyErrorText.httpsRequired,
                                    headers: [("Connection", "Upgrade"), ("Upgrade", "TLS/1.2, HTTP/1.1")])
        }
        // Kong's forwarded host: a trusted peer's X-Forwarded-Host, else the Host header's name,
        // lower-cased, without the port.
        let trustedHost = context.clientIsTrusted ? head.headers.first(name: "x-forwarded-host").flatMap { $0.isEmpty ? nil : $0 } : nil
        let host = trustedHost ?? head.headers.first(name: "host").flatMap { HostAndPort($0, defaultPort: 443).name }?.lowercased() ?? ""
        return PluginExit(status: code, headers: [("Location", "https://\(host)\(head.uri)")], body: .empty)
    }

    /// Splits a request target into path and query (nil when there is no `?`).
    static func splitTarget(_ uri: String) -> (Substring, Substring?) {
        guard let q = uri.firstIndex(of: "?") else { return (Substring(uri), nil) }
        return (uri[..<q], uri[uri.index(after: q)...])
    }

    /// The request line and headers sent upstream (spec §6.5, §8.1).
    static func upstreamHead(_ context: ProxyRequestContext, match: RouteMatch, service: Service, options: ProxyOptions,
                             head: HTTPRequestHead, localPort: Int) -> HTTPRequestHead {
        var headers = ProxyHeaders.upstreamRequestHeaders(context, match: match, service: service, options: options,
                                                          httpVersion: head.version, localPort: localPort)
        let target = context.upstreamRequestTarget(match: match, service: service)
        if context.bodyWasBuffered {
            headers.add(name: "Content-Length", value: String(context.bufferedBody?.readableBytes ?? 0))
        } else if let length = head.headers.first(name: "content-length") {
            headers.add(name: "Content-Length", value: length)
        } else if head.headers[canonicalForm: "transfer-encoding"].contains(where: { $0.lowercased() == "chunked" }) {
            headers.add(name: "Transfer-Encoding", value: "chunked")
        }
        return HTTPRequestHead(version: .http1_1, method: context.method, uri: target, headers: headers)
    }

    /// How long a request that went to the upstream waited, for the answer to a failed try.
    struct ProxiedLatencies {
        let upstream: Int64
        let proxy: Int64
    }

    /// A gateway-generated response (error template, plugin JSON, empty), with Kong's headers.
    /// `proxied`: the answer to a request that went to the upstream and failed there (a refused
    /// connection, a timeout, an invalid answer). Kong marks such a request proxied before its
    /// balancer runs, so it gets a proxied answer's headers (`Via`, the upstream and proxy
    /// latencies, `X-Kong-Upstream-Status`), not `X-Kong-Response-Latency`.
    static func generatedResponse(_ exit: PluginExit, context: ProxyRequestContext, head: HTTPRequestHead,
                                  headerSet: ResponseHeaderSet, started: NIODeadline, nginxLevel: Bool,
                                  proxied: ProxiedLatencies? = nil) -> (status: Int, headers: HTTPHeaders, body: String) {
        var headers = HTTPHeaders()
        var body = ""
        var status = exit.status
        switch exit.body {
        case .json(let value):
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            body = value.serialized(.kong)  // cjson, as `kong.response.exit` encodes: `/` escaped
        case .error(let message):
            let accept = head.headers["accept"]
            let format = KongErrorResponse.format(accept: accept.isEmpty ? nil : accept.joined(separator: ","),
                                                  contentType: head.headers.first(name: "content-type"),
                                                  nginxLevel: nginxLevel)
            let rendered = KongErrorResponse(status: exit.status, message: message, requestID: context.requestID,
                                             format: format)
            status = rendered.status
            headers.add(name: "Content-Type", value: rendered.contentType)
            body = rendered.body
        case .text(let text):
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            body = text
        case .raw(let text):
            body = text
        case .empty:
            break
        }
        // A name the exit sets replaces the gateway's, and all of its values are kept (a relayed
        // upstream answer may carry several Set-Cookie).
        var replaced: Set<String> = []
        for (name, value) in exit.headers {
            if replaced.insert(name.lowercased()).inserted { headers.remove(name: name) }
            headers.add(name: name, value: value)
        }
        headers.replaceOrAdd(name: "Content-Length", value: String(body.utf8.count))
        if headerSet.server { headers.replaceOrAdd(name: "Server", value: ProxyHeaders.serverToken) }
        if let proxied {
            if headerSet.upstreamLatency { headers.replaceOrAdd(name: "X-Kong-Upstream-Latency", value: String(proxied.upstream)) }
            if headerSet.proxyLatency { headers.replaceOrAdd(name: "X-Kong-Proxy-Latency", value: String(proxied.proxy)) }
            if headerSet.via { headers.replaceOrAdd(name: "Via", value: ProxyHeaders.viaValue(.http1_1)) }
            if headerSet.upstreamStatus { headers.replaceOrAdd(name: "X-Kong-Upstream-Status", value: String(status)) }
        } else if headerSet.responseLatency {
            headers.replaceOrAdd(name: "X-Kong-Response-Latency", value: String(milliseconds(since: started)))
        }
        if headerSet.requestID { headers.replaceOrAdd(name: "X-Kong-Request-Id", value: context.requestID) }
        return (status, headers, body)
    }

    static func milliseconds(since start: NIODeadline) -> Int64 {
        (NIODeadline.now() - start).nanoseconds / 1_000_000
    }
}

/// Kong-style request ids: 32 lower-case hex characters. One generator per client connection,
/// seeded once from the system's random source, so ids cost no system call per request.
struct RequestIDGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    /// wyrand: fast, well-distributed 64-bit output.
    private mutating func next() -> UInt64 {
        state &+= 0xA0761D6478BD642F
        let product = state.multipliedFullWidth(by: state ^ 0xE7037ED1A0B428DB)
        return product.high ^ product.low
    }

    /// 32 lowercase hex digits, written straight into one string (one allocation).
    mutating func make() -> String {
        let a = next(), b = next()
        return String(unsafeUninitializedCapacity: 32) { buffer in
            Self.writeHex(a, into: buffer, at: 0)
            Self.writeHex(b, into: buffer, at: 16)
            return 32
        }
    }

    private static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) {
        for i in 0..<16 {
            let digit = UInt8(truncatingIfNeeded: (value >> (60 - 4 * UInt64(i))) & 0xF)
            buffer[start + i] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
        }
    }
}

/// Wall-clock time for logs (`started_at`); the proxy measures durations on the monotonic clock.
enum WallClock {
    static func milliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
