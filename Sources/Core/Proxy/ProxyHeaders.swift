import NIOHTTP1

/// Header rules of spec §8.1 and §8.2: what goes upstream and what comes back. Each direction is
/// one pass over the headers (no repeated scans per header set): this runs on every request.
enum ProxyHeaders {
    static let serverToken = KongVersion.serverToken

    /// Always hop-by-hop (RFC 9110 §7.6.1, plus nginx's `Proxy-Connection`/`Proxy`).
    static let hopByHop: [String] = ["connection", "keep-alive", "proxy-connection", "proxy", "transfer-encoding",
                                     "upgrade", "proxy-authenticate", "te", "trailer"]
    /// What Kong 3.10 and nginx drop from an upstream's answer: `Proxy-Authenticate` passes, and
    /// `Trailer` is dropped only when the client did not ask for trailers (`TE: trailers`).
    static let responseHopByHop: [String] = hopByHop.filter { $0 != "proxy-authenticate" && $0 != "trailer" }

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
        var clientHost: String?, forwardedFor: String?, clientVia: String?, upgrade: String?
        var trailers = false
        // Built as a plain list: `HTTPHeaders.add` checks every name again, which these do not need.
        var out: [(String, String)] = []
        out.reserveCapacity(source.count + 10)
        for (name, value) in source {
            if equalsIgnoringCase(name, "host") { if clientHost == nil { clientHost = value }; continue }
            // Repeated lines read as one list, as nginx (1.23+) joins them for `$http_…`.
            if equalsIgnoringCase(name, "x-forwarded-for") { forwardedFor = joined(forwardedFor, value); continue }
            if equalsIgnoringCase(name, "via") { clientVia = joined(clientVia, value); continue }
            if equalsIgnoringCase(name, "te") { trailers = trailers || value.lowercased().contains("trailers"); continue }
            if equalsIgnoringCase(name, "upgrade") { upgrade = joined(upgrade, value); continue }
            if trusted { forwarded.read(name, value) }
            if value.isEmpty || isListed(name, in: hopByHop) || isListed(name, in: gatewaySet)
                || isListed(name, in: listed) { continue }
            out.append((name, value))
        }
        // A plugin's upstream target (ai-proxy's `upstream_url`) names the host, unless the route
        // preserves the client's.
        if let override = context.upstreamTarget, !match.route.preserveHost {
            out.append(("Host", override.hostHeader))
        } else {
            out.append(("Host", RequestPath.upstreamHost(service: service, preserveHost: match.route.preserveHost,
                                                         clientHost: clientHost)))
        }
        if trailers { out.append(("TE", "trailers")) }
        // Kong's `upstream_x_forwarded_for`: the client's list and the peer, else the client as
        // a trusted peer named it.
        out.append(("X-Forwarded-For", forwardedFor.map { "\($0), \(context.clientAddress)" } ?? context.forwardedClientAddress))
        // A peer in `trusted_ips` (a load balancer in front) keeps its X-Forwarded-* values; the
        // gateway's own view fills what it did not send, and is all an untrusted peer gets.
        out.append(("X-Forwarded-Proto", forwarded.proto ?? (context.isTLS ? "https" : "http")))
        let hostName = clientHost.map { String(HostAndPort.name(in: $0)) } ?? ""
        if let host = forwarded.host { out.append(("X-Forwarded-Host", host)) }
        else if !hostName.isEmpty {
            let lowercase = !hostName.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
            out.append(("X-Forwarded-Host", lowercase ? hostName : hostName.lowercased()))
        }
        out.append(("X-Forwarded-Port", forwarded.port ?? String(options.portMaps[localPort] ?? localPort)))
        if let path = forwarded.path { out.append(("X-Forwarded-Path", path)) }
        else if !context.rawPath.isEmpty { out.append(("X-Forwarded-Path", String(context.rawPath))) }
        if let prefix = forwarded.prefix { out.append(("X-Forwarded-Prefix", prefix)) }
        else if let prefix = match.strippedPrefix, prefix != "/", !prefix.isEmpty { out.append(("X-Forwarded-Prefix", prefix)) }
        out.append(("X-Real-IP", context.forwardedClientAddress))
        let via = viaValue(httpVersion)
        out.append(("Via", clientVia.map { "\($0), \(via)" } ?? via))
        if options.requestIDUpstream { out.append(("X-Kong-Request-Id", context.requestID)) }
        if let upgrade, isWebSocketUpgrade(upgrade) {
            out.append(("Connection", "keep-alive, Upgrade"))
            out.append(("Upgrade", "websocket"))
        } else {
            out.append(("Connection", "keep-alive"))
        }
        return HTTPHeaders(out)
    }

    /// Kong passes an upgrade on only to WebSocket (its runloop compares `$http_upgrade`,
    /// lower-cased, with `websocket`); any other protocol's upgrade is dropped as hop-by-hop.
    static func isWebSocketUpgrade(_ upgrade: String) -> Bool {
        equalsIgnoringCase(upgrade, "websocket")
    }

    /// The client asked to switch to WebSocket (its `Upgrade` lines, joined as nginx joins them).
    static func requestsWebSocket(_ headers: HTTPHeaders) -> Bool {
        var upgrade: String?
        for (name, value) in headers where equalsIgnoringCase(name, "upgrade") { upgrade = joined(upgrade, value) }
        return upgrade.map(isWebSocketUpgrade) ?? false
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

    /// `existing, value` (or `value`): repeated header lines as one comma-separated list.
    static func joined(_ existing: String?, _ value: String) -> String {
        guard let existing, !existing.isEmpty else { return value }
        return value.isEmpty ? existing : "\(existing), \(value)"
    }

    /// Response headers from the upstream with Kong's additions (spec §8.2), in one pass. Kong's
    /// own `Via` entry is `1.1 kong/…` whatever the client spoke (`2` only for gRPC).
    static func downstreamHeaders(_ upstream: HTTPHeaders, requestID: String,
                                  status: Int, headerSet: ResponseHeaderSet,
                                  upstreamLatency: Int64, proxyLatency: Int64, keepContentLength: Bool,
                                  clientAcceptsTrailers: Bool = false) -> HTTPHeaders {
        let listed = connectionTokens(upstream)
        var upstreamVia: String?
        var hasServer = false
        // Built as a plain list: `HTTPHeaders.add` checks every name again, which these do not need.
        var out: [(String, String)] = []
        out.reserveCapacity(upstream.count + 6)
        for (name, value) in upstream {
            if equalsIgnoringCase(name, "via") { upstreamVia = joined(upstreamVia, value); continue }
            if isListed(name, in: responseHopByHop) || isListed(name, in: listed) { continue }
            if !clientAcceptsTrailers && equalsIgnoringCase(name, "trailer") { continue }
            if !keepContentLength && equalsIgnoringCase(name, "content-length") { continue }
            if equalsIgnoringCase(name, "server") { hasServer = true }
            out.append((name, value))
        }
        if headerSet.via {
            let via = viaValue(.http1_1)
            out.append(("Via", upstreamVia.map { "\($0), \(via)" } ?? via))
        } else if let upstreamVia {
            out.append(("Via", upstreamVia))
        }
        if !hasServer && headerSet.server { out.append(("Server", serverToken)) }
        if headerSet.upstreamLatency { out.append(("X-Kong-Upstream-Latency", String(upstreamLatency))) }
        if headerSet.proxyLatency { out.append(("X-Kong-Proxy-Latency", String(proxyLatency))) }
        if headerSet.upstreamStatus { out.append(("X-Kong-Upstream-Status", String(status))) }
        if headerSet.requestID { out.append(("X-Kong-Request-Id", requestID)) }
        return HTTPHeaders(out)
    }

    /// Header names the peer lists in `Connection` (lower-cased). `close` and `keep-alive`, the
    /// usual values, are left out: the first names no header and the second is hop-by-hop anyway
    /// (this runs on every request and response).
    static func connectionTokens(_ headers: HTTPHeaders) -> [String] {
        var tokens: [String] = []
        for (name, value) in headers where equalsIgnoringCase(name, "connection") {
            if equalsIgnoringCase(value, "keep-alive") || equalsIgnoringCase(value, "close") { continue }
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
        // Both as contiguous bytes (native strings are): a plain loop, not a zip of iterators.
        let compared = a.withContiguousStorageIfAvailable { x in
            b.withContiguousStorageIfAvailable { y in equalsIgnoringCase(x, y) }
        }
        if let compared, let compared { return compared }
        // Strings not stored as UTF-8 (bridged ones on Darwin): copied first.
        return Array(a).withUnsafeBufferPointer { x in Array(b).withUnsafeBufferPointer { y in equalsIgnoringCase(x, y) } }
    }

    /// Equal-length bytes, ASCII case-insensitively against lower-case `lowercased`.
    private static func equalsIgnoringCase(_ name: UnsafeBufferPointer<UInt8>, _ lowercased: UnsafeBufferPointer<UInt8>) -> Bool {
        for index in 0..<name.count where name[index] != lowercased[index] {
            let x = name[index]
            guard x >= 0x41 && x <= 0x5A && x | 0x20 == lowercased[index] else { return false }
        }
        return true
    }

    /// `Via`'s value for a message of `version` (built once per version, not per request).
    static func viaValue(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 0): return via10
        case (2, _): return via2
        default: return via11
        }
    }
    private static let via10 = "1.0 \(serverToken)", via11 = "1.1 \(serverToken)", via2 = "2 \(serverToken)"
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}

extension HTTPHeaders {
    /// `remove(name:)`, skipped when no such header is there: NIO's removal rebuilds the list
    /// (a copy when it is shared, as a request's headers are with its log) even when nothing
    /// matches. Hot paths remove headers that are usually absent.
    public mutating func removeIfPresent(name: String) {
        if contains(name: name) { remove(name: name) }
    }

    /// `replaceOrAdd(name:value:)`, skipped when the header is already there once with exactly
    /// that value (a request's `Content-Type: application/json`, as ai-proxy sets it).
    public mutating func set(name: String, value: String) {
        var matches = 0, same = false
        let lowercased = name.lowercased()
        for (existing, existingValue) in self where ProxyHeaders.equalsIgnoringCase(existing, lowercased) {
            matches += 1
            same = existingValue.utf8.elementsEqual(value.utf8)
        }
        if matches != 1 || !same { replaceOrAdd(name: name, value: value) }
    }
}
