import NIOHTTP1

/// Header rules of spec §8.1 and §8.2: what goes upstream and what comes back.
enum ProxyHeaders {
    static let serverToken = "kong/3.10.0"

    /// Hop-by-hop headers never forwarded, plus those the peer lists in `Connection`.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        let listed = headers[canonicalForm: "connection"].map { $0.lowercased() }
        for name in listed where !name.isEmpty { headers.remove(name: String(name)) }
        for name in ["connection", "keep-alive", "proxy-connection", "proxy", "transfer-encoding", "upgrade",
                     "proxy-authenticate"] {
            headers.remove(name: name)
        }
    }

    /// Headers sent upstream (spec §8.1). `context.headers` already carries plugin changes.
    static func upstreamRequestHeaders(_ context: ProxyRequestContext, match: RouteMatch, service: Service,
                                       httpVersion: HTTPVersion, localPort: Int) -> HTTPHeaders {
        var headers = context.headers
        let clientHost = headers.first(name: "host")
        let te = headers[canonicalForm: "te"].contains { $0.lowercased() == "trailers" }
        removeHopByHop(&headers)
        headers.remove(name: "te")
        if te { headers.add(name: "TE", value: "trailers") }
        headers.replaceOrAdd(name: "Host", value: RequestPath.upstreamHost(
            service: service, preserveHost: match.route.preserveHost, clientHost: clientHost))

        let forwardedFor = headers.first(name: "x-forwarded-for")
        headers.replaceOrAdd(name: "X-Forwarded-For",
                             value: forwardedFor.map { "\($0), \(context.clientAddress)" } ?? context.clientAddress)
        // No trusted_ips yet: the gateway's own view always wins.
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: context.isTLS ? "https" : "http")
        let hostName = clientHost.map { HostAndPort($0, defaultPort: localPort).name ?? $0 } ?? ""
        headers.replaceOrAdd(name: "X-Forwarded-Host", value: hostName.lowercased())
        headers.replaceOrAdd(name: "X-Forwarded-Port", value: String(localPort))
        headers.replaceOrAdd(name: "X-Forwarded-Path", value: String(context.rawPath))
        if let prefix = match.strippedPrefix, prefix != "/" {
            headers.replaceOrAdd(name: "X-Forwarded-Prefix", value: prefix)
        } else {
            headers.remove(name: "x-forwarded-prefix")
        }
        headers.replaceOrAdd(name: "X-Real-IP", value: context.clientAddress)
        let via = "\(versionToken(httpVersion)) \(serverToken)"
        if let clientVia = headers.first(name: "via") {
            headers.replaceOrAdd(name: "Via", value: "\(clientVia), \(via)")
        } else {
            headers.replaceOrAdd(name: "Via", value: via)
        }
        headers.replaceOrAdd(name: "X-Kong-Request-Id", value: context.requestID)
        // Headers with empty values are not sent.
        let empty = headers.filter { $0.value.isEmpty }.map(\.name)
        for name in empty { headers.remove(name: name) }
        return headers
    }

    static func versionToken(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 0): return "1.0"
        case (2, _): return "2"
        default: return "1.1"
        }
    }
}
