import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Where the response of one request goes.
protocol ResponseSink: Sendable {
    func write(_ part: HTTPServerResponsePart) async throws
}

/// What the proxy knows about the client connection a request came in on.
struct ConnectionInfo: Sendable {
    let clientAddress: String
    let localPort: Int
    let isTLS: Bool
}

/// Serves one request: route → access phase → upstream → header filter → streamed body → log
/// (spec §6.4, §7.1, §8). Data flows one way; nothing reads configuration storage.
struct ProxyEngine: Sendable {
    let holder: ConfigurationHolder
    let upstream: UpstreamClient
    let logSink: LogSink

    /// Returns whether the connection may serve another request.
    func serve(head: HTTPRequestHead, body: RequestBodySource, sink: any ResponseSink,
               connection: ConnectionInfo) async throws -> Bool {
        let started = NIODeadline.now()
        let configuration = holder.current
        let (path, query) = Self.splitTarget(head.uri)
        let context = ProxyRequestContext(requestID: RequestID.make(), method: head.method, rawPath: path,
                                          rawQuery: query, headers: head.headers,
                                          clientAddress: connection.clientAddress, isTLS: connection.isTLS)
        context.bodySource = body
        let keepAlive = head.isKeepAlive
        var respond = Responder(sink: sink, context: context, version: head.version, keepAlive: keepAlive,
                                started: started, accept: head.headers.first(name: "accept"),
                                contentType: head.headers.first(name: "content-type"))

        var routerHeaders: [String: [String]] = [:]
        for (name, value) in head.headers {
            routerHeaders[RouterRequest.normalizedHeaderName(name), default: []].append(value)
        }
        let routerRequest = RouterRequest(method: head.method.rawValue, host: head.headers.first(name: "host"),
                                          rawPath: path, headers: routerHeaders, localPort: connection.localPort,
                                          isTLS: connection.isTLS)
        // Rewrite phase: global plugins only, before routing.
        let globals = configuration.pluginOrder.compactMap { configuration.handler($0, match: nil, consumerID: nil) }
        for handler in globals {
            if case .exit(let exit) = await handler.rewrite(context) {
                try await respond.exit(exit, handlers: globals)
                finish(context, handlers: globals)
                return keepAlive
            }
        }
        guard let match = configuration.router.match(routerRequest) else {
            // No route: only global plugins see the response.
            try await respond.error(404, ProxyErrorText.noRoute, handlers: globals)
            finish(context, handlers: globals)
            return keepAlive
        }
        context.match = match

        if let redirect = Self.httpsRedirect(match.route, context: context, head: head) {
            try await respond.exit(redirect, handlers: [])
            return keepAlive
        }

        // Access phase: each plugin's configuration is resolved at its turn, with the consumer
        // authenticated so far (Kong's lazy resolution); the selected handlers run later phases.
        var selected: [any PluginHandler] = []
        for (position, name) in configuration.pluginOrder.enumerated() {
            guard let handler = configuration.handler(name, match: match, consumerID: context.consumer?.id) else {
                continue
            }
            selected.append(handler)
            if case .exit(let exit) = await handler.access(context) {
                // Plugins whose configuration applies still see the response and the log, even
                // though their access handler did not run (Kong's behaviour, spec §7.1).
                for later in configuration.pluginOrder.dropFirst(position + 1) {
                    if let handler = configuration.handler(later, match: match, consumerID: context.consumer?.id) {
                        selected.append(handler)
                    }
                }
                try await respond.exit(exit, handlers: selected)
                finish(context, handlers: selected)
                return keepAlive
            }
        }

        guard let service = match.service else {
            try await respond.error(503, ProxyErrorText.noService, handlers: selected)
            finish(context, handlers: selected)
            return keepAlive
        }

        let request = makeUpstreamRequest(context, match: match, service: service, head: head, body: body,
                                          localPort: connection.localPort)
        let proxyLatency = Self.milliseconds(since: started)
        let upstreamStarted = NIODeadline.now()
        var attempt = 0
        let response: HTTPClientResponse
        while true {
            do {
                response = try await upstream.send(request.request, service: service)
                break
            } catch {
                attempt += 1
                if attempt <= service.retries, error.isRetryable, !request.hasBody { continue }
                try await respond.error(error.status, error.message, handlers: selected, nginxLevel: true)
                finish(context, handlers: selected)
                return keepAlive
            }
        }

        var headers = response.headers
        ProxyHeaders.removeHopByHop(&headers)
        let via = "\(ProxyHeaders.versionToken(head.version)) \(ProxyHeaders.serverToken)"
        if let upstreamVia = headers.first(name: "via") {
            headers.replaceOrAdd(name: "Via", value: "\(upstreamVia), \(via)")
        } else {
            headers.add(name: "Via", value: via)
        }
        if !headers.contains(name: "server") { headers.add(name: "Server", value: ProxyHeaders.serverToken) }
        headers.add(name: "X-Kong-Upstream-Latency", value: String(Self.milliseconds(since: upstreamStarted)))
        headers.add(name: "X-Kong-Proxy-Latency", value: String(proxyLatency))
        headers.add(name: "X-Kong-Request-Id", value: context.requestID)
        let status = Int(response.status.code)
        let bodyFilters = selected.filter(\.filtersBody)
        if !bodyFilters.isEmpty { headers.remove(name: "content-length") }  // filters may change the length
        for handler in selected { handler.headerFilter(context, status: status, headers: &headers) }
        try await respond.head(status: status, headers: headers)
        for try await chunk in response.body {
            var chunk = chunk
            for handler in bodyFilters { handler.bodyFilter(context, chunk: &chunk, last: false) }
            if chunk.readableBytes > 0 { try await sink.write(.body(.byteBuffer(chunk))) }
        }
        if !bodyFilters.isEmpty {
            var tail = ByteBuffer()
            for handler in bodyFilters { handler.bodyFilter(context, chunk: &tail, last: true) }
            if tail.readableBytes > 0 { try await sink.write(.body(.byteBuffer(tail))) }
        }
        try await sink.write(.end(nil))
        finish(context, handlers: selected)
        return keepAlive
    }

    private func finish(_ context: ProxyRequestContext, handlers: [any PluginHandler]) {
        guard !handlers.isEmpty else { return }
        logSink.submit { for handler in handlers { handler.log(context) } }
    }

    struct UpstreamRequest {
        let request: HTTPClientRequest
        let hasBody: Bool
    }

    func makeUpstreamRequest(_ context: ProxyRequestContext, match: RouteMatch, service: Service,
                             head: HTTPRequestHead, body: RequestBodySource, localPort: Int) -> UpstreamRequest {
        let path = RequestPath.upstreamPath(servicePath: service.path, requestPath: match.path,
                                            strippedPrefix: match.strippedPrefix)
        let target = RequestPath.upstreamTarget(path: path, rawQuery: context.rawQuery)
        let scheme = service.protocol == "https" || service.protocol == "grpcs" ? "https" : "http"
        let host = service.host.contains(":") ? "[\(service.host)]" : service.host
        var request = HTTPClientRequest(url: "\(scheme)://\(host):\(service.port)\(target)")
        request.method = context.method
        request.headers = ProxyHeaders.upstreamRequestHeaders(context, match: match, service: service,
                                                              httpVersion: head.version, localPort: localPort)
        request.headers.remove(name: "content-length")
        if context.bodyWasBuffered {
            // A plugin read (and maybe replaced) the body: send what it holds.
            if let buffered = context.bufferedBody, buffered.readableBytes > 0 {
                request.body = .bytes(buffered)
                return UpstreamRequest(request: request, hasBody: true)
            }
            return UpstreamRequest(request: request, hasBody: false)
        }
        let length = head.headers.first(name: "content-length").flatMap { Int($0) }
        let chunked = head.headers[canonicalForm: "transfer-encoding"].contains { $0.lowercased() == "chunked" }
        let hasBody = (length ?? 0) > 0 || chunked
        if hasBody {
            request.body = .stream(body.sequence, length: length.map { .known(Int64($0)) } ?? .unknown)
        }
        return UpstreamRequest(request: request, hasBody: hasBody)
    }

    /// Splits a request target into path and query (nil when there is no `?`).
    static func splitTarget(_ uri: String) -> (Substring, Substring?) {
        guard let q = uri.firstIndex(of: "?") else { return (Substring(uri), nil) }
        return (uri[..<q], uri[uri.index(after: q)...])
    }

    /// Spec §6.4.1: https-only routes answer plain-HTTP requests with 426 or a redirect.
    static func httpsRedirect(_ route: Route, context: ProxyRequestContext, head: HTTPRequestHead) -> PluginExit? {
        guard route.protocols.contains("https"), !route.protocols.contains("http"), !context.isTLS else { return nil }
        let code = route.httpsRedirectStatusCode
        if code == 426 {
            return PluginExit.error(426, ProxyErrorText.httpsRequired,
                                    headers: [("Connection", "Upgrade"), ("Upgrade", "TLS/1.2, HTTP/1.1")])
        }
        let host = head.headers.first(name: "host") ?? ""
        return PluginExit(status: code, headers: [("Location", "https://\(host)\(head.uri)")], body: .empty)
    }

    static func milliseconds(since start: NIODeadline) -> Int64 {
        (NIODeadline.now() - start).nanoseconds / 1_000_000
    }
}

/// Writes gateway-generated responses (errors, plugin exits) with Kong's headers.
struct Responder {
    let sink: any ResponseSink
    let context: ProxyRequestContext
    let version: HTTPVersion
    let keepAlive: Bool
    let started: NIODeadline
    let accept: String?
    let contentType: String?

    mutating func error(_ status: Int, _ message: String, handlers: [any PluginHandler], nginxLevel: Bool = false) async throws {
        try await exit(PluginExit.error(status, message), handlers: handlers, nginxLevel: nginxLevel)
    }

    mutating func exit(_ exit: PluginExit, handlers: [any PluginHandler], nginxLevel: Bool = false) async throws {
        var headers = HTTPHeaders()
        var bodyText = ""
        var status = exit.status
        switch exit.body {
        case .json(let value):
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            bodyText = value.serialized()
        case .error(let message):
            let format = KongErrorResponse.format(accept: accept, contentType: contentType, nginxLevel: nginxLevel)
            let rendered = KongErrorResponse(status: exit.status, message: message, requestID: context.requestID,
                                             format: format)
            status = rendered.status
            headers.add(name: "Content-Type", value: rendered.contentType)
            bodyText = rendered.body
        case .empty:
            break
        }
        for (name, value) in exit.headers { headers.replaceOrAdd(name: name, value: value) }
        headers.replaceOrAdd(name: "Content-Length", value: String(bodyText.utf8.count))
        headers.replaceOrAdd(name: "Server", value: ProxyHeaders.serverToken)
        headers.replaceOrAdd(name: "X-Kong-Response-Latency", value: String(ProxyEngine.milliseconds(since: started)))
        headers.replaceOrAdd(name: "X-Kong-Request-Id", value: context.requestID)
        for handler in handlers { handler.headerFilter(context, status: status, headers: &headers) }
        try await head(status: status, headers: headers)
        if !bodyText.isEmpty {
            try await sink.write(.body(.byteBuffer(ByteBuffer(string: bodyText))))
        }
        try await sink.write(.end(nil))
    }

    func head(status: Int, headers: HTTPHeaders) async throws {
        var headers = headers
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        try await sink.write(.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status),
                                                    headers: headers)))
    }
}

enum RequestID {
    /// 32 lower-case hex characters, as Kong's request ids.
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let a = generator.next() as UInt64, b = generator.next() as UInt64
        return hex16(a) + hex16(b)
    }

    private static func hex16(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
