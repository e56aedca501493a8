import NIOHTTP1

/// Header rules of spec §8.1 and §8.2: what goes upstream and what comes back. Each direction is
/// one pass over the headers (no repeated scans per header set): this runs on every request.
enum ProxyHeaders {
    static let serverToken = KongVersion.serverToken

    /// Always hop-by-hop (RFC 9110 §7.6.1, plus nginx's `Proxy-Connection`/`Proxy`).
    static let hopByHop: [String] = ["connection", "keep-alive", "proxy-connection", "proxy", "transfer-encoding",
                                     "upgrade", "proxy-authenticate", "te", "trailer"]

    /// Headers the gateway sets itself on the upstream request; client values are read, not copied.
    static let gatewaySet: [String] = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                                       "x-forwarded-port", "x-forwarded-path", "x-forwarded-prefix", "x-real-ip",
                                       "via", "x-kong-request-id", "content-length", "expect"]

    /// Headers sent upstream (spec §8.1). `context.headers` already carries plugin changes.
    /// Content-Length / Transfer-Encoding are added by the caller, which knows the body.
    static func upstreamRequestHeaders(_ context: ProxyRequestContext, match: RouteMatch, service: Service,
                                       options: ProxyOptions,
                                       httpVersion: HTTPVersion, localPort: Int) -> HTTPHeaders {
        let source = context.headers
        let listed = connectionTokens(source)
        let trusted = context.clientIsTrusted
        var forwarded = TrustedForwarded()
        var clientHost: String?, forwardedFor: String?, clientVia: String?
        var trailers = false
        var out = HTTPHeaders()
        out.reserveCapacity(source.count + 10)
        for (name, value) in source {
            if equalsIgnoringCase(name, "host") { if clientHost == nil { clientHost = value }; continue }
            if equalsIgnoringCase(name, "x-forwarded-for") { if forwardedFor == nil { forwardedFor = value }; continue }
            if equalsIgnoringCase(name, "via") { if clientVia == nil { clientVia = value }; continue }
            if equalsIgnoringCase(name, "te") { trailers = trailers || value.lowercased().contains("trailers"); continue }
            if trusted { forwarded.read(name, value) }
            if value.isEmpty || isListed(name, in: hopByHop) || isListed(name, in: gatewaySet)
                || isListed(name, in: listed) { continue }
            out.add(name: name, value: value)
        }
        out.add(name: "Host", value: RequestPath.upstreamHost(service: service, preserveHost: match.route.preserveHost,
                                                              clientHost: clientHost))
        if trailers { out.add(name: "TE", value: "trailers") }
        out.add(name: "X-Forwarded-For", value: forwardedFor.map { "\($0), \(context.clientAddress)" } ?? context.clientAddress)
        // A peer in `trusted_ips` (a load balancer in front) keeps its X-Forwarded-* values; the
        // gateway's own view fills what it did not send, and is all an untrusted peer gets.
        out.add(name: "X-Forwarded-Proto", value: forwarded.proto ?? (context.isTLS ? "https" : "http"))
        let hostName = clientHost.map { HostAndPort($0, defaultPort: localPort).name ?? $0 } ?? ""
        if let host = forwarded.host { out.add(name: "X-Forwarded-Host", value: host) }
        else if !hostName.isEmpty { out.add(name: "X-Forwarded-Host", value: hostName.lowercased()) }
        out.add(name: "X-Forwarded-Port", value: forwarded.port ?? String(localPort))
        if let path = forwarded.path { out.add(name: "X-Forwarded-Path", value: path) }
        else if !context.rawPath.isEmpty { out.add(name: "X-Forwarded-Path", value: String(context.rawPath)) }
        if let prefix = forwarded.prefix { out.add(name: "X-Forwarded-Prefix", value: prefix) }
        else if let prefix = match.strippedPrefix, prefix != "/" { out.add(name: "X-Forwarded-Prefix", value: prefix) }
        out.add(name: "X-Real-IP", value: context.clientAddress)
        let via = "\(versionToken(httpVersion)) \(serverToken)"
        out.add(name: "Via", value: clientVia.map { "\($0), \(via)" } ?? via)
        if options.requestIDUpstream { out.add(name: "X-Kong-Request-Id", value: context.requestID) }
        return out
    }

    /// The client's X-Forwarded-* values, read only from a trusted peer (first value of each).
    struct TrustedForwarded {
        var proto: String?, host: String?, port: String?, path: String?, prefix: String?

        mutating func read(_ name: String, _ value: String) {
            guard !value.isEmpty else { return }
            if equalsIgnoringCase(name, "x-forwarded-proto") { proto = proto ?? value }
            else if equalsIgnoringCase(name, "x-forwarded-host") { host = host ?? value }
            else if equalsIgnoringCase(name, "x-forwarded-port") { port = port ?? value }
            else if equalsIgnoringCase(name, "x-forwarded-path") { path = path ?? value }
            else if equalsIgnoringCase(name, "x-forwarded-prefix") { prefix = prefix ?? value }
        }
    }

    /// Response headers from the upstream with Kong's additions (spec §8.2), in one pass.
    static func downstreamHeaders(_ upstream: HTTPHeaders, requestID: String, version: HTTPVersion,
                                  status: Int, headerSet: ResponseHeaderSet,
                                  upstreamLatency: Int64, proxyLatency: Int64, keepContentLength: Bool) -> HTTPHeaders {
        let listed = connectionTokens(upstream)
        var upstreamVia: String?
        var hasServer = false
        var out = HTTPHeaders()
        out.reserveCapacity(upstream.count + 6)
        for (name, value) in upstream {
            if equalsIgnoringCase(name, "via") { if upstreamVia == nil { upstreamVia = value }; continue }
            if isListed(name, in: hopByHop) || isListed(name, in: listed) { continue }
            if !keepContentLength && equalsIgnoringCase(name, "content-length") { continue }
            if equalsIgnoringCase(name, "server") { hasServer = true }
            out.add(name: name, value: value)
        }
        if headerSet.via {
            let via = "\(versionToken(version)) \(serverToken)"
            out.add(name: "Via", value: upstreamVia.map { "\($0), \(via)" } ?? via)
        } else if let upstreamVia {
            out.add(name: "Via", value: upstreamVia)
        }
        if !hasServer && headerSet.server { out.add(name: "Server", value: serverToken) }
        if headerSet.upstreamLatency { out.add(name: "X-Kong-Upstream-Latency", value: String(upstreamLatency)) }
        if headerSet.proxyLatency { out.add(name: "X-Kong-Proxy-Latency", value: String(proxyLatency)) }
        if headerSet.upstreamStatus { out.add(name: "X-Kong-Upstream-Status", value: String(status)) }
        if headerSet.requestID { out.add(name: "X-Kong-Request-Id", value: requestID) }
        return out
    }

    /// Header names the peer lists in `Connection` (lower-cased); `close`/`keep-alive` included.
    static func connectionTokens(_ headers: HTTPHeaders) -> [String] {
        var tokens: [String] = []
        for (name, value) in headers where equalsIgnoringCase(name, "connection") {
            for token in value.split(separator: ",") {
                let trimmed = token.trimmingASCIISpaces()
                if !trimmed.isEmpty { tokens.append(trimmed.lowercased()) }
            }
        }
        return tokens
    }

    static func isListed(_ name: String, in lowercasedNames: [String]) -> Bool {
        lowercasedNames.contains { equalsIgnoringCase(name, $0) }
    }

    /// ASCII case-insensitive equality against an already lower-case name, without allocating.
    @inline(__always)
    static func equalsIgnoringCase(_ name: String, _ lowercased: String) -> Bool {
        let a = name.utf8, b = lowercased.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            guard x >= 0x41 && x <= 0x5A && x | 0x20 == y else { return false }
        }
        return true
    }

    static func versionToken(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 0): return "1.0"
        case (2, _): return "2"
        default: return "1.1"
        }
    }
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
