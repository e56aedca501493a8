import NIOHTTP1

/// The log serializer's document for one request, written as Kong's encoder writes it (keys in
/// UTF-8 byte order at every level, `/` escaped, integral numbers without a fraction), without
/// building it as a `JSONValue` first. The tests check it byte for byte against the document
/// built as dictionaries, the way it was before.
struct KongLogLine {
    private var json = KongJSONWriter()
    var out: [UInt8] { json.out }
    /// Plugins' top-level fields (`ai`…) not written yet, in byte order: each is written at its
    /// place among the serializer's own.
    private var pendingPluginFields: ArraySlice<String> = []
    private var context: ProxyRequestContext?
    /// The header names of the line written before this one (a writer's lines share them).
    private var layouts = HeaderLayouts()

    /// The top-level fields the serializer writes itself (a plugin's field of the same name
    /// merges into it: `kongLine` then takes the general path).
    static let ownFields: Set<String> = [
        "authenticated_entity", "client_ip", "consumer", "latencies", "request", "response",
        "route", "service", "source", "started_at", "upstream_status", "upstream_uri",
    ]

    init() { json.out.reserveCapacity(2048) }

    /// Writes the document (with the plugins' fields) after what `bytes` holds, into its storage.
    /// `layouts`: the header names of the writer's previous line, reused when they match.
    static func append(_ context: ProxyRequestContext, to bytes: inout [UInt8], layouts: inout HeaderLayouts) {
        var line = KongLogLine(continuing: [])
        swap(&line.json.out, &bytes)
        swap(&line.layouts, &layouts)
        line.write(context)
        swap(&line.json.out, &bytes)
        swap(&line.layouts, &layouts)
    }

    private init(continuing out: [UInt8]) { json = KongJSONWriter(appendingTo: out) }

    /// The document; without the plugins' fields when `withPluginFields` is false.
    mutating func write(_ context: ProxyRequestContext, withPluginFields: Bool = true) {
        let log = context.exchangeLog
        if withPluginFields {
            self.context = context
            pendingPluginFields = context.typedLogMembers.isEmpty
                ? context.logRecord.keys.sorted(by: JSONValue.utf8Precedes)[...]
                : context.logRecordFields.sorted(by: JSONValue.utf8Precedes)[...]
        }
        open()
        writePluginFields(before: "authenticated_entity")
        if let credential = context.credentialID {
            member("authenticated_entity")
            open()
            if let consumer = context.consumer { member("consumer_id"); string(consumer.id) }
            member("id"); string(credential)
            close()
        }
        writePluginFields(before: "client_ip")
        member("client_ip"); string(context.forwardedClientAddress)
        writePluginFields(before: "consumer")
        if let consumer = context.consumer {
            member("consumer")
            json.encoded(consumer.kongSerializedEntity)
        }
        writePluginFields(before: "latencies")
        member("latencies")
        open()
        member("kong"); integer(log.kongLatency)
        member("proxy"); integer(log.proxyLatency)
        member("receive"); integer(0)
        member("request"); integer(log.requestLatency)
        close()
        writePluginFields(before: "request")
        member("request")
        writeRequest(context, log: log)
        writePluginFields(before: "response")
        member("response")
        open()
        let responseHeaders = log.reportedResponseHeaders
        member("headers"); headers(responseHeaders, redactions: nil, layout: Self.layout(responseHeaders, reusing: &layouts.response))
        member("size"); integer(Int64(log.responseSize))
        member("status"); integer(Int64(log.status))
        close()
        writePluginFields(before: "route")
        if let route = context.match?.route { member("route"); json.encoded(route.kongSerializedEntity) }
        writePluginFields(before: "service")
        if let service = context.match?.service { member("service"); json.encoded(service.kongSerializedEntity) }
        writePluginFields(before: "source")
        member("source"); string(log.proxied ? "upstream" : "kong")
        writePluginFields(before: "started_at")
        member("started_at"); integer(log.startedAt)
        writePluginFields(before: "upstream_status")
        // Kong writes `var.upstream_status or ""`: present, empty when no upstream answered.
        member("upstream_status"); string(log.upstreamStatusText)
        writePluginFields(before: "upstream_uri")
        member("upstream_uri"); string(context.logRedactions.uri(log.upstreamURI))
        writePluginFields(before: nil)
        close()
    }

    /// Writes the plugins' fields that sort before `field` (all that are left when nil).
    private mutating func writePluginFields(before field: StaticString?) {
        while let key = pendingPluginFields.first, field.map({ JSONValue.utf8Precedes(key, $0) }) ?? true {
            pendingPluginFields.removeFirst()
            member(escaping: key)
            writePluginField(key)
        }
    }

    /// A field's typed members are written by their values themselves, unless something written
    /// into `logRecord` under the same field merges over them: then the merged value is.
    private mutating func writePluginField(_ key: String) {
        let context = context!
        guard context.logRecord[key] == nil else { return json.value(context.logRecordValue(key)!) }
        var typed = context.typedLogMembers.filter { $0.field == key }
        typed.sort { JSONValue.utf8Precedes($0.member, $1.member) }
        json.open()
        for entry in typed {
            json.member(escaping: entry.member)
            entry.value.write(to: &json)
        }
        json.close()
    }

    private mutating func writeRequest(_ context: ProxyRequestContext, log: ExchangeLog) {
        let redactions = context.logRedactions
        let uri = redactions.uri(context.rawQuery.map { "\(context.rawPath)?\($0)" } ?? String(context.rawPath))
        open()
        member("headers"); headers(context.headers, redactions: redactions, layout: Self.layout(context.headers, reusing: &layouts.request))
        member("id"); string(context.requestID)
        member("method"); string(context.method.rawValue)
        member("querystring"); querystring(context)
        member("size"); integer(Int64(log.requestSize))
        member("uri"); string(uri)
        member("url")
        json.literal("\"")
        json.literal(context.isTLS ? #"https:\/\/"# : #"http:\/\/"#)
        // nginx's `$host`: the Host header's name, lower-cased; the server's name (`kong` in Kong's
        // template) without one.
        if let header = context.headers.first(name: "host"), case let host = HostAndPort.name(in: header), !host.isEmpty {
            if host.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
                JSONValue.writeEscaped(host.lowercased(), to: &json.out, escapeSlashes: true)
            } else {
                JSONValue.writeEscaped(host, to: &json.out, escapeSlashes: true)
            }
        } else {
            json.literal("kong")
        }
        json.literal(":")
        integer(Int64(log.localPort))
        JSONValue.writeEscaped(uri, to: &json.out, escapeSlashes: true)
        json.literal("\"")
        close()
    }

    /// Kong's `get_headers()`: lower-case names; a repeated header becomes an array (in the order
    /// received); `Authorization`, `Proxy-Authorization` and the headers plugins redacted read
    /// `REDACTED` in request headers.
    private mutating func headers(_ headers: HTTPHeaders, redactions: LogRedactions?, layout: NameLayout) {
        let names = layout.names
        let redactedByPlugins = redactions.map { !$0.headers.isEmpty } ?? false
        grouped(layout) { line, index in
            if let redactions, LogSerializer.isAlwaysRedacted(names[index])
                || (redactedByPlugins && redactions.headers.contains(names[index])) {
                line.string("REDACTED")
            } else {
                line.string(headers[headers.index(headers.startIndex, offsetBy: index)].value)
            }
        }
    }

    /// `headers`' layout: `last` when the names are the same, else a new one, kept in `last`.
    private static func layout(_ headers: HTTPHeaders, reusing last: inout NameLayout) -> NameLayout {
        if !last.fits(headers) { last = NameLayout(headers.map(\.name), lowercasing: true) }
        return last
    }

    /// Kong's `get_query()`: `a=1` → "1", a bare `a` → true, repeated names → an array.
    private mutating func querystring(_ context: ProxyRequestContext) {
        let arguments = context.queryArguments
        let redacted = context.logRedactions.queryArguments
        grouped(NameLayout(arguments.map(\.name), lowercasing: false)) { line, index in
            let argument = arguments[index]
            if redacted.contains(argument.name) {
                line.string("REDACTED")
            } else if let value = argument.value {
                line.string(value)
            } else {
                line.json.literal("true")
            }
        }
    }

    /// An object with one member per distinct name, in the layout's order; a name seen more than
    /// once holds an array of its values in their original order.
    private mutating func grouped(_ layout: NameLayout, value: (inout KongLogLine, Int) -> Void) {
        open()
        var start = 0
        for end in layout.runEnds {
            member(escaping: layout.names[layout.order[start]])
            if end - start == 1 {
                value(&self, layout.order[start])
            } else {
                json.openArray()
                for position in start..<end {
                    if position > start { json.separator() }
                    value(&self, layout.order[position])
                }
                json.closeArray()
            }
            start = end
        }
        close()
    }

    /// The request's and the response's header names of the line written last.
    struct HeaderLayouts: Sendable {
        var request = NameLayout()
        var response = NameLayout()
    }

    /// Names (lower-cased for headers) in the order Kong's encoder writes a table's keys: by their
    /// bytes, as Kong's Lua tables key them (Swift's `==` would merge canonically equivalent
    /// spellings, such as a decoded query name's `é` and `e` + U+0301, which byte order sorts
    /// apart), repeats grouped in arrival order.
    ///
    /// Why kept: a route's requests and answers carry the same header names in the same order
    /// line after line, and lower-casing and sorting them again was a third of the log line's
    /// cost. A writer keeps the last layout and reuses it while the names match byte for byte.
    struct NameLayout: Sendable {
        /// The names as they came, to recognise the next list.
        private var received: [String] = []
        /// The names as written, in arrival order.
        private(set) var names: [String] = []
        /// Arrival positions in output order.
        private(set) var order: [Int] = []
        /// Where each run of equal names ends in `order`.
        private(set) var runEnds: [Int] = []

        init() {}

        init(_ received: [String], lowercasing: Bool) {
            self.received = received
            names = lowercasing ? received.map(KongLogLine.lowercased) : received
            let names = self.names
            // Most names differ in their first eight bytes: those compare as one integer, and only
            // names sharing them (`x-kong-r…`) are compared in full.
            var keys = names.indices.map { (prefix: JSONValue.utf8SortPrefix(names[$0]), index: $0) }
            func order(_ a: (prefix: UInt64, index: Int), _ b: (prefix: UInt64, index: Int)) -> Int {
                JSONValue.utf8Order(names[a.index], prefix: a.prefix, names[b.index], prefix: b.prefix)
            }
            keys.sort { a, b in
                let byBytes = order(a, b)
                return byBytes != 0 ? byBytes < 0 : a.index < b.index
            }
            self.order = keys.map(\.index)
            var position = 0
            while position < keys.count {
                var end = position + 1
                while end < keys.count, order(keys[end], keys[position]) == 0 { end += 1 }
                runEnds.append(end)
                position = end
            }
        }

        /// Whether `headers` has the names this layout was made for, byte for byte, in order.
        func fits(_ headers: HTTPHeaders) -> Bool {
            guard headers.count == received.count else { return false }
            var position = 0
            for (name, _) in headers {
                guard JSONValue.utf8Order(name, received[position]) == 0 else { return false }
                position += 1
            }
            return true
        }
    }

    // MARK: Tokens

    private mutating func open() { json.open() }
    private mutating func close() { json.close() }
    private mutating func member(_ name: StaticString) { json.member(name) }
    private mutating func member(escaping name: String) { json.member(escaping: name) }
    private mutating func string(_ value: String) { json.string(value) }
    private mutating func integer(_ value: Int64) { json.integer(value) }

    /// `name.lowercased()`, without a new string for a name already in lower-case ASCII (most
    /// header names clients send).
    static func lowercased(_ name: String) -> String {
        name.utf8.contains(where: { ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 >= 0x80 })
            ? name.lowercased() : name
    }
}
