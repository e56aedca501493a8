import NIOHTTP1

/// Kong's `kong.log.serialize()` for HTTP requests: the document log plugins (file-log…) write,
/// with the fields plugins added through `context.logRecord` (Kong's `set_serialize_value`) merged
/// in at the top level. Read in the log phase, off the request path.
public enum LogSerializer {
    /// Request headers whose values Kong replaces by this text.
    static let redactedHeaders: Set<String> = ["authorization", "proxy-authorization"]

    public static func serialize(_ context: ProxyRequestContext) -> JSONValue {
        var root = members(context)
        if let route = context.match?.route { root["route"] = route.entity }
        if let service = context.match?.service { root["service"] = service.entity }
        for (key, value) in context.logRecord { root[key] = merged(root[key], value) }
        return .object(root)
    }

    /// `serialize(context).serializedBytes(.kong)`, byte for byte, written straight into bytes:
    /// the log thread writes one per request, and building the document's dictionaries first (then
    /// sorting each one's keys) cost more than the rest of the log phase. The route's and service's
    /// entities are copied from their serialization made with the configuration.
    public static func kongLine(_ context: ProxyRequestContext) -> [UInt8] {
        // A plugin's field that lands on one of the serializer's own merges into it: the general
        // path handles that (no bundled plugin does it).
        guard context.logRecord.keys.allSatisfy({ !KongLogLine.ownFields.contains($0) }) else {
            return serialize(context).serializedBytes(.kong)
        }
        var line = KongLogLine()
        line.write(context)
        return line.out
    }

    /// The document's members but the route, the service and the plugins' fields.
    private static func members(_ context: ProxyRequestContext) -> [String: JSONValue] {
        let log = context.exchangeLog
        let redactions = context.logRedactions
        let uri = redactions.uri(context.rawQuery.map { "\(context.rawPath)?\($0)" } ?? String(context.rawPath))
        let scheme = context.isTLS ? "https" : "http"
        let host = context.headers.first(name: "host").flatMap { HostAndPort($0, defaultPort: 0).name } ?? ""
        let port = log.localPort
        var request: [String: JSONValue] = [
            "uri": .string(uri),
            "url": .string("\(scheme)://\(host):\(port)\(uri)"),
            "querystring": querystring(context),
            "method": .string(context.method.rawValue),
            "headers": headers(context.headers, redacting: redactedHeaders.union(redactions.headers)),
            "size": .number(Double(log.requestSize)),
        ]
        request["id"] = .string(context.requestID)
        var root: [String: JSONValue] = [
            "request": .object(request),
            "upstream_uri": .string(redactions.uri(log.upstreamURI)),
            "response": .object([
                "status": .number(Double(log.status)),
                "headers": headers(log.responseHeaders, redacting: []),
                "size": .number(Double(log.responseSize)),
            ]),
            "latencies": .object([
                "kong": .number(Double(log.kongLatency)),
                "proxy": .number(Double(log.proxyLatency)),
                "request": .number(Double(log.requestLatency)),
                "receive": .number(0),
            ]),
            "client_ip": .string(context.clientAddress),
            "started_at": .number(Double(log.startedAt)),
            "source": .string(log.proxied ? "upstream" : "kong"),
        ]
        if let status = log.upstreamStatus { root["upstream_status"] = .string(String(status)) }
        if let consumer = context.consumer { root["consumer"] = consumer.entity }
        if let credential = context.credentialID {
            var entity: [String: JSONValue] = ["id": .string(credential)]
            if let consumer = context.consumer { entity["consumer_id"] = .string(consumer.id) }
            root["authenticated_entity"] = .object(entity)
        }
        return root
    }

    /// Kong's `get_headers()`: lower-case names; a repeated header becomes an array.
    static func headers(_ headers: HTTPHeaders, redacting redacted: Set<String>) -> JSONValue {
        var out: [String: JSONValue] = [:]
        for (name, value) in headers {
            let key = name.lowercased()
            let shown: JSONValue = redacted.contains(key) ? "REDACTED" : .string(value)
            switch out[key] {
            case nil: out[key] = shown
            case .array(var values)?: values.append(shown); out[key] = .array(values)
            case let single?: out[key] = .array([single, shown])
            }
        }
        return .object(out)
    }

    /// Kong's `get_query()`: `a=1` → "1", a bare `a` → true, repeated keys → an array.
    static func querystring(_ context: ProxyRequestContext) -> JSONValue {
        var out: [String: JSONValue] = [:]
        let redacted = context.logRedactions.queryArguments
        for (name, value) in context.queryArguments {
            let shown: JSONValue = redacted.contains(name) ? "REDACTED" : value.map(JSONValue.string) ?? .bool(true)
            switch out[name] {
            case nil: out[name] = shown
            case .array(var values)?: values.append(shown); out[name] = .array(values)
            case let single?: out[name] = .array([single, shown])
            }
        }
        return .object(out)
    }

    /// Plugins' values merge into objects already there (two AI plugins both write under `ai`).
    static func merged(_ existing: JSONValue?, _ added: JSONValue) -> JSONValue {
        guard case .object(var base)? = existing, case .object(let extra) = added else { return added }
        for (key, value) in extra { base[key] = merged(base[key], value) }
        return .object(base)
    }
}
