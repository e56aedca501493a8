import NIOCore
import NIOHTTP1

/// Per-request state shared by the plugins of one request (the counterpart of Kong's PDK view of
/// `kong.request`, `kong.service.request`, `kong.client` and `kong.ctx.shared`).
///
/// Confined to the task serving the request: phases run one after another on it, never
/// concurrently, which is why it is a class without locks.
public final class ProxyRequestContext: @unchecked Sendable {
    public let requestID: String
    public let method: HTTPMethod
    /// Request path as sent (no query); what the router normalised is in `match.path`.
    public let rawPath: Substring
    /// The query string without `?`; nil when the target had no `?`. Plugins may rewrite it.
    public var rawQuery: Substring?
    /// The request headers; plugins' changes are what the upstream receives.
    public var headers: HTTPHeaders
    /// The connection's peer (Kong's `kong.client.get_ip()`, nginx's `$realip_remote_addr`).
    public let clientAddress: String
    /// The client as a trusted peer names it in `real_ip_header`, else the peer (Kong's
    /// `kong.client.get_forwarded_ip()`, nginx's `$remote_addr`): the log's `client_ip`,
    /// `X-Real-IP`, the rate limiter's `ip`.
    public let forwardedClientAddress: String
    /// Whether the peer is in `trusted_ips` (its X-Forwarded-* headers are believed).
    public let clientIsTrusted: Bool
    public let isTLS: Bool
    /// The TLS server name (SNI) of the connection, when the client sent one.
    public let serverName: String?
    public internal(set) var match: RouteMatch?

    /// The authenticated identity so far (set by auth plugins).
    public var consumer: Consumer?
    public var credentialID: String?
    /// True when an auth plugin fell back to its `anonymous` consumer.
    public var isAnonymous = false
    /// Kong's `kong.ctx.shared`.
    public var shared = PluginSharedState()
    /// Fields plugins add to the request's log record (Kong's `set_serialize_value`), except the
    /// members set as typed values (`typedLogMembers`); `logRecordValue(_:)` reads a field whole.
    public var logRecord: [String: JSONValue] = [:]
    /// Members of top-level log-record objects kept typed (`ai.proxy`); see `setLogMember`.
    public private(set) var typedLogMembers: [TypedLogMember] = []
    /// Request headers and query arguments holding secrets a plugin set (a provider key): the log
    /// serializer shows their values as `REDACTED`, like Kong's `authorization`.
    public var logRedactions = LogRedactions()

    /// Where the request goes instead of the service's own target, when a plugin re-targets it
    /// (Kong's `kong.service.set_target`, `set_scheme`, `kong.service.request.set_path` and
    /// `set_raw_query`, as ai-proxy does). Set in the access phase.
    public var upstreamTarget: UpstreamTargetOverride?
    /// A plugin needs the whole upstream response before the client sees anything (Kong's
    /// `kong.service.request.enable_buffering`): handlers then get `bufferedResponse`. Set in access.
    public var buffersResponse = false
    /// Set by a body filter: the chunk it just filtered ends the response (nginx's
    /// `ngx.arg[2] = true`, as ai-proxy's stream normalizer sets it). The client's response ends
    /// there; the rest of the upstream body is not read and its connection is closed.
    public var endsResponseBody = false
    /// What the log phase reads about the exchange (Kong's serializer inputs); filled by the engine.
    public internal(set) var exchangeLog = ExchangeLog()

    /// Where the request body comes from until a plugin asks for it whole.
    var bodyProvider: (any RequestBodyProvider)?
    /// The buffered request body once a plugin read it (nil: still streaming from the client).
    public private(set) var bufferedBody: ByteBuffer?
    /// Whether the body was buffered (and possibly replaced) by a plugin.
    public private(set) var bodyWasBuffered = false
    /// Counts replacements of the body: a plugin caching a parse of it knows the parse is current
    /// while this is unchanged.
    public private(set) var bodyVersion = 0

    /// The whole request body, read from the client on first use (`kong.request.get_raw_body`).
    /// Only plugins that call this cause buffering; `limit` caps what is held in memory.
    public func requestBody(limit: Int = 8 << 20) async throws -> ByteBuffer? {
        if bodyWasBuffered { return bufferedBody }
        guard let bodyProvider else { return nil }
        // Marked buffered only once collected: after a failure (too large) the body still
        // streams to the upstream as it would have without the plugin.
        let collected = try await bodyProvider.collect(limit: limit)
        bufferedBody = collected
        bodyWasBuffered = true
        return collected
    }

    /// `requestBody(limit:)` without waiting: the body when it has already arrived whole (or was
    /// buffered before), nil when it is still arriving. A plugin's synchronous access uses it and
    /// leaves the request to its asynchronous access when it gets nil (nothing was taken then).
    public func requestBodyNow(limit: Int = 8 << 20) -> Result<ByteBuffer?, any Error>? {
        if bodyWasBuffered { return .success(bufferedBody) }
        guard let bodyProvider else { return .success(nil) }
        guard let ready = bodyProvider.collectNow(limit: limit) else { return nil }
        if case .success(let collected) = ready {
            bufferedBody = collected
            bodyWasBuffered = true
        }
        return ready
    }

    /// Kong's `set_serialize_value("<field>.<member>", value)` for a value its plugin keeps typed:
    /// it replaces what `logRecord` held under that name. What is written into `logRecord[field]`
    /// afterwards merges over it as `LogSerializer.merged` merges (a later plugin adding to
    /// `ai.proxy` keeps the typed members it does not overwrite).
    public func setLogMember(_ field: String, _ member: String, _ value: any TypedLogValue) {
        switch logRecord[field] {
        case .object(var members)?:
            if members.removeValue(forKey: member) != nil {
                if members.isEmpty { logRecord.removeValue(forKey: field) } else { logRecord[field] = .object(members) }
            }
        case .none: break
        case .some:
            // A plain value written after the field's typed members replaced them whole; it is
            // itself replaced now by an object holding this member.
            forgetReplacedLogMembers(field)
        }
        typedLogMembers.removeAll { $0.field == field && $0.member == member }
        typedLogMembers.append(TypedLogMember(field: field, member: member, value: value))
    }

    /// Whether `field.member` was set as a typed value (it is then not in `logRecord`).
    public func hasLogMember(_ field: String, _ member: String) -> Bool {
        typedLogMembers.contains { $0.field == field && $0.member == member }
    }

    /// For a plugin about to replace `logRecord[field]` with an object: when the field holds a
    /// plain value, that value had replaced the field's typed members, which must not come back
    /// from under the new object. Drops them then, and the plain value.
    public func forgetReplacedLogMembers(_ field: String) {
        guard let written = logRecord[field], written.objectValue == nil else { return }
        logRecord.removeValue(forKey: field)
        typedLogMembers.removeAll { $0.field == field }
    }

    /// The log record's field `field` as a value: its typed members with what `logRecord` holds
    /// merged over them.
    public func logRecordValue(_ field: String) -> JSONValue? {
        let typed = typedLogMembers.filter { $0.field == field }
        guard !typed.isEmpty else { return logRecord[field] }
        var members: [String: JSONValue] = [:]
        for entry in typed { members[entry.member] = entry.value.jsonValue }
        guard let written = logRecord[field] else { return .object(members) }
        return LogSerializer.merged(.object(members), written)
    }

    /// The top-level fields plugins added, typed or not.
    var logRecordFields: [String] {
        // A list, not a set: there are a handful at most, and the log line asks on every request.
        var fields = Array(logRecord.keys)
        for entry in typedLogMembers where !fields.contains(entry.field) { fields.append(entry.field) }
        return fields
    }

    /// Drops the buffered body once nothing will read it again (before the log phase).
    func releaseBody() { bufferedBody = nil }

    /// Replaces the body sent upstream (`kong.service.request.set_raw_body`).
    public func setRequestBody(_ body: ByteBuffer?) {
        bodyWasBuffered = true
        bufferedBody = body
        bodyVersion &+= 1
    }

    public init(requestID: String, method: HTTPMethod, rawPath: Substring, rawQuery: Substring?,
                headers: HTTPHeaders, clientAddress: String, forwardedClientAddress: String? = nil,
                clientIsTrusted: Bool = false, isTLS: Bool,
                serverName: String? = nil) {
        self.clientIsTrusted = clientIsTrusted
        self.requestID = requestID
        self.method = method
        self.rawPath = rawPath
        self.rawQuery = rawQuery
        self.headers = headers
        self.clientAddress = clientAddress
        self.forwardedClientAddress = forwardedClientAddress ?? clientAddress
        self.isTLS = isTLS
        self.serverName = serverName
    }

    /// Kong's `kong.request.get_header(name)`: the first value of the header whose name matches
    /// case-insensitively, `-` and `_` counting as the same character (it reads nginx's
    /// `$http_<name>`, where both are `_`): `x_model` finds `X-Model`.
    public func header(_ name: String) -> String? {
        headers.first { HeaderName.sameForKong($0.name, name) }?.value
    }

    /// Every value of the headers `header(_:)` reads, in order (Kong's `get_headers()[name]`: two
    /// or more make a list, which key-auth refuses as a duplicate key).
    public func headerValues(_ name: String) -> [String] {
        headers.compactMap { HeaderName.sameForKong($0.name, name) ? $0.value : nil }
    }

    /// Removes every header `header(_:)` would read: a credential found through a folded name
    /// (`x_api_key` for `X-Api-Key`) is hidden from the upstream whichever way it was spelled.
    public func removeHeaders(matching name: String) {
        guard headers.contains(where: { HeaderName.sameForKong($0.name, name) }) else { return }
        headers = HTTPHeaders(headers.filter { !HeaderName.sameForKong($0.name, name) }.map { ($0.name, $0.value) })
    }

    /// Query arguments in order, percent-decoded (`a=1&b&a=2` → ("a","1"), ("b",nil), ("a","2")):
    /// a bare argument has a nil value, as Kong's `get_query` gives it `true` rather than a string.
    /// As `ngx.req.get_uri_args` reads them: an argument with an empty name is dropped, and only
    /// the first `maxQueryArguments` count (`lua_max_uri_args`).
    public var queryArguments: [(name: String, value: String?)] {
        guard let rawQuery else { return [] }
        var arguments: [(name: String, value: String?)] = []
        for pair in QueryText.pairs(rawQuery) where !pair.name.isEmpty {
            arguments.append((pair.name, pair.value))
            if arguments.count == Self.maxQueryArguments { break }
        }
        return arguments
    }

    /// nginx's `lua_max_uri_args` default (Kong's, spec §8.5).
    public static let maxQueryArguments = 100

    /// Removes every argument called `name` from the query string sent upstream.
    public func removeQueryArgument(_ name: String) {
        guard let rawQuery else { return }
        let kept = QueryText.pairs(rawQuery).filter { $0.name != name }.map(\.raw)
        // Nothing left: no `?` at all upstream, as Kong sends it once the last argument is gone.
        self.rawQuery = kept.isEmpty ? nil : Substring(kept.joined(separator: "&"))
    }

    /// Whether the query has an argument called `name` (compared decoded, as Kong's `get_query`).
    public func hasQueryArgument(_ name: String) -> Bool {
        guard let rawQuery else { return false }
        return QueryText.pairs(rawQuery).contains { $0.name == name }
    }

    /// Sets argument `name` to `value` in the query sent upstream, replacing any the client sent
    /// (appended last, percent-encoded).
    public func setQueryArgument(_ name: String, _ value: String) {
        removeQueryArgument(name)
        let pair = QueryText.encode(name) + "=" + QueryText.encode(value)
        rawQuery = Substring(rawQuery.map { "\($0)&\(pair)" } ?? pair)
    }
}

/// Names whose values the log serializer hides. Header names are compared lower-cased.
public struct LogRedactions: Sendable {
    public private(set) var headers: Set<String> = []
    public private(set) var queryArguments: Set<String> = []

    public init() {}

    public mutating func redactHeader(_ name: String) { headers.insert(name.lowercased()) }
    public mutating func redactQueryArgument(_ name: String) { queryArguments.insert(name) }

    /// `uri` with the values of redacted query arguments replaced.
    func uri(_ uri: String) -> String {
        guard !queryArguments.isEmpty, let mark = uri.firstIndex(of: "?") else { return uri }
        let pairs = QueryText.pairs(uri[uri.index(after: mark)...]).map { pair -> String in
            queryArguments.contains(pair.name) ? "\(QueryText.encode(pair.name))=REDACTED" : String(pair.raw)
        }
        return uri[..<mark] + "?" + pairs.joined(separator: "&")
    }
}

enum QueryText {
    /// `a=1&b&c=` as (name, value, the pair as written): names and values decoded; a pair without
    /// `=` has a nil value. Empty pairs (`&&`) are skipped.
    static func pairs(_ text: Substring) -> [(name: String, value: String?, raw: Substring)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let pieces = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(pieces[0]), pieces.count > 1 ? decode(pieces[1]) : nil, pair)
        }
    }

    /// Percent-encoding for names and values the gateway writes: RFC 3986 unreserved characters
    /// stay, every other byte becomes `%XX`.
    static func encode(_ text: String) -> String { PercentEncoding.encode(text.utf8) }

    /// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte).
    static func decode(_ text: Substring) -> String {
        let utf8 = text.utf8
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var i = utf8.startIndex
        while i < utf8.endIndex {
            let b = utf8[i]
            if b == UInt8(ascii: "%"), let (value, next) = PercentEncoding.escape(at: i, in: utf8) {
                bytes.append(value)
                i = next
                continue
            }
            bytes.append(b == UInt8(ascii: "+") ? 0x20 : b)
            i = utf8.index(after: i)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

public struct RequestBodyTooLarge: Error, Sendable {}

/// Delivers the whole request body when a plugin asks for it (the proxy buffers it then, and
/// only then).
protocol RequestBodyProvider: Sendable {
    func collect(limit: Int) async throws -> ByteBuffer?
    /// The whole body if it has already arrived (taken, as `collect` takes it); nil otherwise,
    /// with nothing taken.
    func collectNow(limit: Int) -> Result<ByteBuffer?, any Error>?
}

/// An upstream chosen by a plugin instead of the service's host, port, scheme and path.
public struct UpstreamTargetOverride: Sendable, Equatable {
    public var tls: Bool
    public var host: String
    public var port: Int
    /// The request target's path, starting with `/`; the query is the request's (`rawQuery`).
    public var path: String
    /// Verify the upstream's certificate (ai-proxy always does; services follow `tls_verify`).
    public var verifyTLS: Bool

    /// The Host header a re-targeted request goes with (unless the route preserves the client's),
    /// as Kong's balancer sets it: the name, and the port when it is not the scheme's default.
    public var hostHeader: String { port == (tls ? 443 : 80) ? host : "\(host):\(port)" }

    public init(tls: Bool, host: String, port: Int, path: String, verifyTLS: Bool = true) {
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.verifyTLS = verifyTLS
    }
}

/// The facts of one exchange that Kong's log serializer reports, recorded as they happen.
public struct ExchangeLog: Sendable {
    /// The listener's port the request came in on.
    public var localPort = 0
    /// Milliseconds since the epoch when the request arrived.
    public var startedAt: Int64 = 0
    /// Request line, headers and body bytes received from the client.
    public var requestSize = 0
    /// The path and query sent upstream (empty when nothing was proxied).
    public var upstreamURI = ""
    /// The status of the upstream's answer (the last try's).
    public var upstreamStatus: Int?
    /// What nginx records for each try that ended without an answer, in order: 502 for a
    /// connection error, 504 for a timeout (a stale pooled connection counts, as in nginx).
    public var failedTries: [Int] = []
    /// Status, headers and bytes (head and body, in its framing) sent to the client.
    public var status = 0
    public var responseHeaders = HTTPHeaders()
    public var responseSize = 0
    /// What nginx's `ngx.resp.get_headers()` adds to the headers it reports: the connection's
    /// fate, and `transfer-encoding: chunked` for a chunked body.
    public var connection = ResponseConnection.keepAlive
    public var chunked = false

    public enum ResponseConnection: String, Sendable {
        case keepAlive = "keep-alive", close, upgrade
    }

    /// The response headers as Kong's serializer reads them (`ngx.resp.get_headers()`).
    public var reportedResponseHeaders: HTTPHeaders {
        var headers = responseHeaders
        if !headers.contains(name: "connection") { headers.add(name: "Connection", value: connection.rawValue) }
        if chunked, !headers.contains(name: "transfer-encoding") { headers.add(name: "Transfer-Encoding", value: "chunked") }
        return headers
    }
    /// Kong's `latencies`: gateway time, time waiting for the upstream (-1 when not proxied), total.
    public var kongLatency: Int64 = 0
    public var proxyLatency: Int64 = -1
    public var requestLatency: Int64 = 0
    /// Whether the response came from the upstream (`source: "upstream"`) or the gateway.
    public var proxied = false

    public init() {}

    /// nginx's `$upstream_status`, which Kong logs as `upstream_status`: one status per try,
    /// comma-separated (`502, 200`); empty when no upstream was tried.
    public var upstreamStatusText: String {
        guard !failedTries.isEmpty else { return upstreamStatus.map { String($0) } ?? "" }
        var tries = failedTries.map { String($0) }
        if let upstreamStatus { tries.append(String(upstreamStatus)) }
        return tries.joined(separator: ", ")
    }
}

/// Where a request goes when proxied now (Kong's `kong.service` view in the access phase): the
/// plugin override if one is set, else the matched service with the path rules of spec §6.5.
/// ai-response-transformer makes the upstream call itself with it.
public struct UpstreamAddress: Sendable, Equatable {
    public var tls: Bool
    public var host: String
    public var port: Int
    /// Path and query as sent upstream.
    public var target: String
    /// The Host header to send; nil lets the client write `host[:port]` itself.
    public var hostHeader: String?
    public var verifyTLS: Bool

    public init(tls: Bool, host: String, port: Int, target: String, hostHeader: String?, verifyTLS: Bool) {
        self.tls = tls
        self.host = host
        self.port = port
        self.target = target
        self.hostHeader = hostHeader
        self.verifyTLS = verifyTLS
    }

    public var url: String {
        let scheme = tls ? "https" : "http"
        let name = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(name):\(port)\(target)"
    }
}

extension ProxyRequestContext {
    /// Nil before routing or on a route without a service.
    public var upstreamAddress: UpstreamAddress? {
        guard let match else { return nil }
        let preserved = match.route.preserveHost ? headers.first(name: "host") : nil
        if let override = upstreamTarget {
            return UpstreamAddress(tls: override.tls, host: override.host, port: override.port,
                                   target: upstreamRequestTarget(match: match, service: match.service),
                                   hostHeader: preserved ?? override.hostHeader, verifyTLS: override.verifyTLS)
        }
        guard let service = match.service else { return nil }
        return UpstreamAddress(tls: service.usesTLS, host: service.host, port: service.port,
                               target: upstreamRequestTarget(match: match, service: service),
                               hostHeader: preserved, verifyTLS: service.tlsVerify ?? true)
    }

    /// The request target (path and query) sent upstream: a plugin's path as set (model names
    /// stay verbatim, as in Kong's drivers), else the service path joined with the request's
    /// (spec §6.5).
    func upstreamRequestTarget(match: RouteMatch, service: Service?) -> String {
        if let override = upstreamTarget {
            return rawQuery.map { "\(override.path)?\($0)" } ?? override.path
        }
        return RequestPath.upstreamTarget(path: Self.proxiedPath(match: match, service: service), rawQuery: rawQuery)
    }

    /// The path the request goes upstream with when no plugin re-targets it: the service path
    /// joined with the routed one (spec §6.5); the client's path before a route matched.
    public var proxiedPath: String {
        guard let match else { return String(rawPath) }
        return Self.proxiedPath(match: match, service: match.service)
    }

    private static func proxiedPath(match: RouteMatch, service: Service?) -> String {
        RequestPath.upstreamPath(servicePath: service?.path, requestPath: match.path, strippedPrefix: match.strippedPrefix)
    }
}

/// Header names as Kong's request PDK compares them.
enum HeaderName {
    /// Equal ignoring ASCII case, with `-` and `_` interchangeable.
    static func sameForKong(_ a: String, _ b: String) -> Bool {
        var a = a.utf8.makeIterator(), b = b.utf8.makeIterator()
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return true
            case (let x?, let y?): if folded(x) != folded(y) { return false }
            default: return false
            }
        }
    }

    private static func folded(_ byte: UInt8) -> UInt8 {
        if byte == UInt8(ascii: "-") { return UInt8(ascii: "_") }
        return byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }
}

/// Kong's `kong.ctx.shared`: what the plugins of one request hand each other, by name. A request
/// holds a handful of entries and its plugins look them up several times each, so a short list
/// compared by name costs less than a dictionary hashing the name on every look-up.
public struct PluginSharedState: Sendable {
    private var entries: [(key: String, value: any Sendable)] = []

    public init() {}

    public subscript(key: String) -> (any Sendable)? {
        get { entries.first { $0.key == key }?.value }
        set {
            let index = entries.firstIndex { $0.key == key }
            switch (index, newValue) {
            case (let index?, let value?): entries[index].value = value
            case (let index?, nil): entries.remove(at: index)
            case (nil, let value?):
                // A request's plugins keep a few entries: room for them at once, not 1, 2, 4.
                if entries.capacity == 0 { entries.reserveCapacity(4) }
                entries.append((key, value))
            case (nil, nil): break
            }
        }
    }
}

extension ProxyRequestContext {
    /// What Kong's PDK tells a sandboxed function beyond the request itself (`kong.request`'s
    /// host, scheme and port and their forwarded forms, `kong.client`, `kong.router`), by the
    /// names the Lua sandbox reads (`sb_lua_request.facts`).
    public var pdkFacts: [(String, String)] {
        let hostHeader = headers.first(name: "host")
        let host = hostHeader.flatMap { HostAndPort($0, defaultPort: 0).name }?.lowercased() ?? ""
        let scheme = isTLS ? "https" : "http"
        let port = String(exchangeLog.localPort)
        // Kong's forwarded forms believe a trusted peer's X-Forwarded-* values.
        let forwarded = { (name: String) in self.clientIsTrusted ? self.headers.first(name: name).flatMap { $0.isEmpty ? nil : $0 } : nil }
        var facts: [(String, String)] = [
            ("host", host), ("scheme", scheme), ("port", port),
            ("forwarded_host", forwarded("x-forwarded-host").map { $0.lowercased() } ?? host),
            ("forwarded_scheme", forwarded("x-forwarded-proto").map { $0.lowercased() } ?? scheme),
            ("forwarded_port", forwarded("x-forwarded-port").flatMap { Int($0) }.map(String.init) ?? port),
            ("client_ip", clientAddress), ("forwarded_ip", forwardedClientAddress),
        ]
        if let consumer {
            facts.append(("consumer.id", consumer.id))
            if let username = consumer.username { facts.append(("consumer.username", username)) }
            if let customID = consumer.customID { facts.append(("consumer.custom_id", customID)) }
        }
        if let credentialID { facts.append(("credential.id", credentialID)) }
        if let route = match?.route {
            facts.append(("route.id", route.id))
            if let name = route.name { facts.append(("route.name", name)) }
        }
        if let service = match?.service {
            facts.append(("service.id", service.id))
            if let name = service.name { facts.append(("service.name", name)) }
        }
        return facts
    }
}
