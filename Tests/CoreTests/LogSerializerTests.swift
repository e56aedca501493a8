import NIOHTTP1
import Testing
@testable import Core

/// The file-log line, written straight into bytes, against the serializer's document built as a
/// value and encoded the Kong way: the two must agree byte for byte on every field and edge.
struct LogSerializerTests {
    static let snapshot: ConfigSnapshot = {
        let config = try! DeclarativeLoader(registry: EntityRegistry(plugins: [])).load(text: """
        _format_version: "3.0"
        services:
        - name: llm
          url: http://upstream.test:9000/v1
          routes:
          - {name: chat, paths: ["/chat"]}
        routes:
        - {name: serviceless, paths: ["/alone"]}
        consumers:
        - {username: "alice/ops", custom_id: "c-1", tags: ["team\\"a\\""]}
        """, format: .yaml)
        return ConfigSnapshot(config)
    }()

    func context(path: String, query: String?, headers: [(String, String)], tls: Bool = false) -> ProxyRequestContext {
        let context = ProxyRequestContext(requestID: "4f1c/9", method: .POST, rawPath: Substring(path),
                                          rawQuery: query.map { Substring($0) }, headers: HTTPHeaders(headers),
                                          clientAddress: "127.0.0.1", isTLS: tls)
        let router = Router(snapshot: Self.snapshot)
        context.match = router.match(RouterRequest(method: "POST", host: "gw.test", rawPath: Substring(path),
                                                   headers: [:], localPort: 8000))
        var log = ExchangeLog()
        log.localPort = 8000
        log.startedAt = 1_763_800_000_123
        log.requestSize = 312
        log.upstreamURI = "/v1?b=2"
        log.upstreamStatus = 200
        log.status = 200
        log.responseHeaders = HTTPHeaders([("Content-Type", "application/json"), ("Set-Cookie", "a=1"),
                                           ("set-cookie", "b=2"), ("X-Kong-Upstream-Latency", "3")])
        log.responseSize = 1024
        log.kongLatency = 2
        log.proxyLatency = 17
        log.requestLatency = 19
        log.proxied = true
        context.exchangeLog = log
        return context
    }

    func expectSameDocument(_ context: ProxyRequestContext, _ comment: Comment) {
        let line = LogSerializer.kongLine(context)
        let reference = ReferenceSerializer.document(context).serializedBytes(.kong)
        #expect(String(decoding: line, as: UTF8.self) == String(decoding: reference, as: UTF8.self), comment)
    }

    @Test func aProxiedRequestWithRepeatedAndRedactedFields() {
        let c = context(path: "/chat/x", query: "b=2&a&b=%2F3&z=", headers: [
            ("Host", "gw.test:8000"), ("Authorization", "Bearer secret"), ("X-Dup", "1"), ("x-dup", "2"),
            ("X-DUP", "3"), ("Accept", "*/*"), ("x-quote", "say \"hi\"\n\u{1}"), ("Proxy-Authorization", "p"),
        ])
        let line = String(decoding: LogSerializer.kongLine(c), as: UTF8.self)
        #expect(!line.contains("secret"), "the Authorization value is redacted")
        #expect(line.contains(#""x-dup":["1","2","3"]"#), "a repeated header is an array in arrival order: \(line)")
        expectSameDocument(c, "proxied request")
    }

    @Test func aConsumerAndPluginFieldsAroundTheSerializersOwn() {
        let c = context(path: "/chat", query: nil, headers: [("host", "gw.test")], tls: true)
        c.consumer = Self.snapshot.consumers.first
        c.credentialID = "cred-1"
        c.logRecord["ai"] = ["proxy": ["usage": ["prompt_tokens": 10, "cost": 0.000123], "meta": ["provider_name": "openai"]]]
        c.logRecord["aaa"] = "before everything"
        c.logRecord["s"] = .array([.null, true, 1.5, -3])
        c.logRecord["zzz"] = ["after": "everything"]
        c.logRecord["response_x"] = "between response and route"
        c.logRedactions.redactHeader("X-Secret")
        c.logRedactions.redactQueryArgument("b")
        expectSameDocument(c, "consumer, credential and plugin fields")
        let line = String(decoding: LogSerializer.kongLine(c), as: UTF8.self)
        #expect(line.hasPrefix(#"{"aaa":"before everything","ai":"#), "\(line)")
        #expect(line.hasSuffix(#""zzz":{"after":"everything"}}"#), "\(line)")
    }

    @Test func aRequestTheGatewayAnsweredWithoutServiceOrQuery() {
        let c = context(path: "/alone", query: nil, headers: [])
        var log = c.exchangeLog
        log.upstreamStatus = nil
        log.upstreamURI = ""
        log.proxied = false
        log.proxyLatency = -1
        log.responseHeaders = HTTPHeaders()
        c.exchangeLog = log
        #expect(c.match?.service == nil)
        expectSameDocument(c, "no service, no headers, no upstream")
    }

    @Test func aPluginFieldNamedLikeTheSerializersOwnMergesIntoIt() {
        let c = context(path: "/chat", query: "q=1", headers: [("Host", "gw.test")])
        c.logRecord["request"] = ["extra": "merged"]
        c.logRecord["source"] = "replaced"
        expectSameDocument(c, "merged fields")
        let entry = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(c), as: UTF8.self))
        #expect(entry?["request"]?["extra"] == "merged")
        #expect(entry?["request"]?["method"] == "POST", "the serializer's own members stay")
        #expect(entry?["source"] == "replaced")
    }

    /// A value a plugin keeps typed (as ai-proxy keeps `ai.proxy`), writing its members itself.
    struct Typed: TypedLogValue {
        var tokens: Int
        var model: String
        var jsonValue: JSONValue { ["model": .string(model), "tokens": .number(Double(tokens)), "cost": 0.25] }
        func write(to json: inout KongJSONWriter) {
            json.open()
            json.member("cost"); json.number(0.25)
            json.member("model"); json.string(model)
            json.member("tokens"); json.integer(Int64(tokens))
            json.close()
        }
    }

    @Test func aTypedMemberIsWrittenInItsPlaceAmongTheOthers() {
        let c = context(path: "/chat", query: nil, headers: [("host", "gw.test")])
        c.setLogMember("ai", "proxy", Typed(tokens: 3, model: "gpt/4o \"mini\""))
        c.setLogMember("ai", "cache", Typed(tokens: 0, model: "m"))
        c.logRecord["aaa"] = "first"
        expectSameDocument(c, "typed members only")
        let entry = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(c), as: UTF8.self))
        #expect(entry?["ai"]?["proxy"]?["model"] == "gpt/4o \"mini\"")
        #expect(entry?["ai"]?["cache"]?["tokens"] == 0)
        #expect(LogSerializer.serialize(c)["ai"] == entry?["ai"], "the value form agrees")
    }

    /// Kong's `set_serialize_value` semantics: the last write of a name wins, and an object
    /// written later under the same field merges over the typed members.
    @Test func typedMembersFollowSetSerializeValueOrder() {
        let before = context(path: "/chat", query: nil, headers: [])
        before.logRecord["ai"] = ["proxy": ["old": true], "other": "kept"]
        before.setLogMember("ai", "proxy", Typed(tokens: 1, model: "m"))
        expectSameDocument(before, "a typed member replaces the member written before it")
        let replaced = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(before), as: UTF8.self))
        #expect(replaced?["ai"]?["proxy"]?["old"] == nil)
        #expect(replaced?["ai"]?["other"] == "kept")

        let after = context(path: "/chat", query: nil, headers: [])
        after.setLogMember("ai", "proxy", Typed(tokens: 1, model: "m"))
        after.logRecord["ai"] = ["proxy": ["azure-content-safety": ["latency": 4], "model": "n"]]
        expectSameDocument(after, "an object written later merges over the typed member")
        let merged = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(after), as: UTF8.self))
        #expect(merged?["ai"]?["proxy"]?["tokens"] == 1)
        #expect(merged?["ai"]?["proxy"]?["model"] == "n")
        #expect(merged?["ai"]?["proxy"]?["azure-content-safety"]?["latency"] == 4)

        let overwritten = context(path: "/chat", query: nil, headers: [])
        overwritten.setLogMember("ai", "proxy", Typed(tokens: 1, model: "m"))
        overwritten.setLogMember("ai", "proxy", Typed(tokens: 2, model: "m"))
        overwritten.logRecord["s"] = "x"
        overwritten.setLogMember("s", "t", Typed(tokens: 5, model: "m"))
        expectSameDocument(overwritten, "set twice, and a plain value turned into an object")
        let last = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(overwritten), as: UTF8.self))
        #expect(last?["ai"]?["proxy"]?["tokens"] == 2)
        #expect(last?["s"]?["t"]?["tokens"] == 5)
        overwritten.logRecord["s"] = "replaced whole"
        expectSameDocument(overwritten, "a plain value written later replaces the typed member's object")

        let emptied = context(path: "/chat", query: nil, headers: [])
        emptied.logRecord["ai"] = ["proxy": ["old": true]]
        emptied.setLogMember("ai", "proxy", Typed(tokens: 1, model: "m"))
        #expect(emptied.logRecord["ai"] == nil, "the emptied object is removed, not left as null")
        #expect(emptied.hasLogMember("ai", "proxy") && !emptied.hasLogMember("ai", "cache"))
        let emptiedLine = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(emptied), as: UTF8.self))
        #expect(emptiedLine?["ai"] == ["proxy": ["cost": 0.25, "model": "m", "tokens": 1]])

        // A plain value replaced the typed members: an object written after it starts afresh.
        let revived = context(path: "/chat", query: nil, headers: [])
        revived.setLogMember("ai", "proxy", Typed(tokens: 1, model: "m"))
        revived.logRecord["ai"] = "x"
        revived.setLogMember("ai", "cache", Typed(tokens: 2, model: "c"))
        let revivedLine = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(revived), as: UTF8.self))
        #expect(revivedLine?["ai"] == ["cache": ["cost": 0.25, "model": "c", "tokens": 2]])
        expectSameDocument(revived, "typed members replaced by a plain value stay gone")
        let rewritten = context(path: "/chat", query: nil, headers: [])
        rewritten.setLogMember("ai", "proxy", Typed(tokens: 1, model: "m"))
        rewritten.logRecord["ai"] = "x"
        rewritten.forgetReplacedLogMembers("ai")
        rewritten.logRecord["ai"] = ["k": 1]
        let rewrittenLine = try? JSONValue.parse(String(decoding: LogSerializer.kongLine(rewritten), as: UTF8.self))
        #expect(rewrittenLine?["ai"] == ["k": 1])

        let own = context(path: "/chat", query: nil, headers: [])
        own.setLogMember("request", "extra", Typed(tokens: 1, model: "m"))
        expectSameDocument(own, "a typed member under one of the serializer's own fields")
    }

    /// Query names that decode to canonically equivalent text with different bytes (`é` and
    /// `e` + U+0301) are two names, as in Kong's Lua tables, each once in byte order.
    @Test func namesAreComparedByTheirBytes() {
        let c = context(path: "/chat", query: "e%CC%81=1&f=2&%C3%A9=3&e%CC%81=4", headers: [])
        let line = LogSerializer.kongLine(c)
        let expected = Array(#""querystring":{"e\#u{301}":["1","4"],"f":"2","\#u{e9}":"3"}"#.utf8)
        #expect(line.firstRange(of: expected) != nil, "\(String(decoding: line, as: UTF8.self))")
    }

    /// Names are sorted by their first eight bytes as one integer first: names sharing those
    /// bytes and names that are prefixes of others (shorter first) must still come out in byte
    /// order, repeats grouped; a query argument with an empty name is dropped (as
    /// `ngx.req.get_uri_args` drops it).
    @Test func namesSharingTheirFirstBytesSortInByteOrder() {
        let c = context(path: "/chat", query: "x-kong-r=1&x-kong-=2&=3&x-kong-request-id=4&x-kong-r=5&x%00=6&x=7", headers: [
            ("X-Kong-Response-Latency", "1"), ("x-kong-request-id", "2"), ("X-Kong-R", "3"), ("x-kong-", "4"),
            ("X", "5"), ("x-kong-request-id", "6"), ("x-kong-requesT-iD", "7"), ("authorizatioN", "8"),
            ("authorization-x", "9"),
        ])
        let line = String(decoding: LogSerializer.kongLine(c), as: UTF8.self)
        #expect(line.contains(#""headers":{"authorization":"REDACTED","authorization-x":"9","x":"5","x-kong-":"4","x-kong-r":"3","x-kong-request-id":["2","6","7"],"x-kong-response-latency":"1"}"#), "\(line)")
        #expect(line.contains(#""querystring":{"x":"7","x\u0000":"6","x-kong-":"2","x-kong-r":["1","5"],"x-kong-request-id":"4"}"#), "\(line)")
        expectSameDocument(c, "shared prefixes")
    }

    /// A writer reuses the header layout of its last line only for the same names, byte for byte
    /// and in the same order: each line equals the one a fresh writer writes, whatever came before.
    @Test func aWriterReusesTheLastHeaderLayoutOnlyForTheSameNames() {
        let lists: [[(String, String)]] = [
            [("Host", "a"), ("Content-Type", "b"), ("X-Dup", "1"), ("x-dup", "2")],
            [("Host", "c"), ("Content-Type", "d"), ("X-Dup", "3"), ("x-dup", "4")],  // same names: reused
            [("Host", "c"), ("Content-Type", "d"), ("x-dup", "5"), ("X-Dup", "6")],  // same lower-cased, other spelling
            [("Host", "e"), ("Content-Type", "f"), ("X-Dup", "7"), ("X-Other", "8")],  // same count, one name differs
            [("Content-Type", "g"), ("Host", "h"), ("X-Dup", "9"), ("x-dup", "10")],  // reordered
            [("Host", "i"), ("Authorization", "secret"), ("X-Dup", "11"), ("x-dup", "12")],  // redacted at a reused place
            [("Host", "j")],
            [],
            [("Host", "k"), ("Content-Type", "l"), ("X-Dup", "13"), ("x-dup", "14")],
        ]
        var layouts = LogSerializer.LineLayouts()
        for (number, headers) in lists.enumerated() {
            let c = context(path: "/chat", query: nil, headers: headers)
            var log = c.exchangeLog
            // The response's change too (response headers are not redacted: no Authorization there).
            log.responseHeaders = HTTPHeaders(lists[lists.count - 1 - number].filter { $0.0 != "Authorization" })
            c.exchangeLog = log
            var reused: [UInt8] = []
            LogSerializer.appendKongLine(c, to: &reused, layouts: &layouts)
            let fresh = LogSerializer.kongLine(c)
            #expect(String(decoding: reused, as: UTF8.self) == String(decoding: fresh, as: UTF8.self), "line \(number)")
            #expect(!String(decoding: reused, as: UTF8.self).contains("secret"))
            expectSameDocument(c, "line \(number)")
        }
    }

    /// The check the log line makes per request header names exactly the set Kong redacts.
    @Test func theAlwaysRedactedHeadersAreTheSetKongRedacts() {
        #expect(LogSerializer.redactedHeaders.allSatisfy(LogSerializer.isAlwaysRedacted))
        for name in ["authorizatio", "authorizationx", "proxy-authorizatio", "proxy-authorization ", "x-authorization", "", "host"] {
            #expect(!LogSerializer.isAlwaysRedacted(name), "\(name)")
        }
    }

    /// `get_query()` reads at most 100 arguments (`lua_max_uri_args`, spec §8.5).
    @Test func atMostAHundredQueryArgumentsAreRead() {
        let c = context(path: "/chat", query: (1...150).map { "a\($0)=\($0)" }.joined(separator: "&"), headers: [])
        #expect(c.queryArguments.count == 100)
        #expect(c.queryArguments.last?.name == "a100")
        expectSameDocument(c, "a hundred arguments")
    }

    @Test func numbersAreWrittenAsKongsEncoderWritesThem() {
        for n in [0, -0.0, 7, -42, 1e15 - 1, 1e15, -1e15, 1.5, 0.1, 1e-7, 123456789012.75, .nan, .infinity] as [Double] {
            var out: [UInt8] = []
            JSONValue.writeNumber(n, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == JSONValue.formatNumber(n), "\(n)")
        }
    }
}

/// The serializer's document built as dictionaries and encoded by the JSON writer: how the log
/// line was made before `KongLogLine`, kept as the tests' independent oracle.
enum ReferenceSerializer {
    static func document(_ context: ProxyRequestContext) -> JSONValue {
        var root = members(context)
        if let route = context.match?.route { root["route"] = withoutNulls(route.entity) }
        if let service = context.match?.service { root["service"] = withoutNulls(service.entity) }
        // Typed members first, then what `logRecord` holds merged over them.
        var fields: [String: JSONValue] = [:]
        for entry in context.typedLogMembers {
            var members = fields[entry.field]?.objectValue ?? [:]
            members[entry.member] = entry.value.jsonValue
            fields[entry.field] = .object(members)
        }
        for (key, value) in context.logRecord { fields[key] = LogSerializer.merged(fields[key], value) }
        for (key, value) in fields { root[key] = LogSerializer.merged(root[key], value) }
        return .object(root)
    }

    /// An entity as Kong's DAO selects it without `nulls`: unset fields left out.
    static func withoutNulls(_ entity: JSONValue) -> JSONValue {
        .object((entity.objectValue ?? [:]).filter { !$0.value.isNull })
    }

    /// The document's members but the route, the service and the plugins' fields.
    static func members(_ context: ProxyRequestContext) -> [String: JSONValue] {
        let log = context.exchangeLog
        let redactions = context.logRedactions
        let uri = redactions.uri(context.rawQuery.map { "\(context.rawPath)?\($0)" } ?? String(context.rawPath))
        let scheme = context.isTLS ? "https" : "http"
        // nginx's `$host`: lower-cased, without the port; the server name `kong` without a Host.
        let named = context.headers.first(name: "host").flatMap { HostAndPort($0, defaultPort: 0).name } ?? ""
        let host = named.isEmpty ? "kong" : named.lowercased()
        let port = log.localPort
        var request: [String: JSONValue] = [
            "uri": .string(uri),
            "url": .string("\(scheme)://\(host):\(port)\(uri)"),
            "querystring": querystring(context),
            "method": .string(context.method.rawValue),
            "headers": headers(context.headers, redacting: LogSerializer.redactedHeaders.union(redactions.headers)),
            "size": .number(Double(log.requestSize)),
        ]
        request["id"] = .string(context.requestID)
        var root: [String: JSONValue] = [
            "request": .object(request),
            "upstream_uri": .string(redactions.uri(log.upstreamURI)),
            "response": .object([
                "status": .number(Double(log.status)),
                "headers": headers(nginxReported(log), redacting: []),
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
        root["upstream_status"] = .string(log.upstreamStatusText)
        if let consumer = context.consumer { root["consumer"] = withoutNulls(consumer.entity) }
        if let credential = context.credentialID {
            var entity: [String: JSONValue] = ["id": .string(credential)]
            if let consumer = context.consumer { entity["consumer_id"] = .string(consumer.id) }
            root["authenticated_entity"] = .object(entity)
        }
        return root
    }

    /// `ngx.resp.get_headers()`: what was sent, plus `connection` and, for a chunked body,
    /// `transfer-encoding` (nginx reports both from the request's state).
    static func nginxReported(_ log: ExchangeLog) -> HTTPHeaders {
        var headers = log.responseHeaders
        if headers["connection"].isEmpty { headers.add(name: "connection", value: log.connection.rawValue) }
        if log.chunked, headers["transfer-encoding"].isEmpty { headers.add(name: "transfer-encoding", value: "chunked") }
        return headers
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

}
