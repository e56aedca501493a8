import Foundation

/// Kong's documented route priority (spec §6.3), compared field by field, higher first:
/// matched-field count, plain hosts, header count, regex path, regex_priority, prefix length.
/// See docs/decisions.md for why this, and not Kong 3.10's 32-bit arithmetic, is used.
struct RoutePriority: Comparable, Sendable {
    let fieldCount: Int
    let plainHosts: Bool
    let headerCount: Int
    let regex: Bool
    let regexPriority: Int
    let prefixLength: Int

    static func < (a: RoutePriority, b: RoutePriority) -> Bool {
        (a.fieldCount, a.plainHosts ? 1 : 0, a.headerCount, a.regex ? 1 : 0, a.regexPriority, a.prefixLength)
            < (b.fieldCount, b.plainHosts ? 1 : 0, b.headerCount, b.regex ? 1 : 0, b.regexPriority, b.prefixLength)
    }
}

/// One route (or one path group of a split route), with its predicate prepared for matching.
struct CompiledRoute: Sendable {
    let route: Route
    let service: Service?
    /// The route id, or the virtual id of a path group (UUIDv5 of `<route id>#<n>`).
    let virtualID: String
    let priority: RoutePriority
    let methods: [String]
    let hosts: [HostPattern]
    let plainPaths: [String]
    let regexPaths: [PathRegex]
    let headers: [(name: String, values: [HeaderValue])]
    let snis: [HostPattern]

    static let virtualNamespace = "7f145bf9-0dce-4f91-98eb-debbce4b9f6b"

    /// Splits a route by path group (all regex paths; plain paths of one byte length), as Kong does.
    static func split(_ route: Route, service: Service?) -> [CompiledRoute] {
        var groups: [(regex: Bool, length: Int, paths: [String])] = []
        for path in route.paths {
            let regex = path.hasPrefix("~")
            let length = regex ? -1 : path.utf8.count
            if let i = groups.firstIndex(where: { $0.regex == regex && $0.length == length }) {
                groups[i].paths.append(path)
            } else {
                groups.append((regex, length, [path]))
            }
        }
        if groups.count <= 1 {
            return [CompiledRoute(route: route, service: service, virtualID: route.id, paths: route.paths)]
        }
        return groups.enumerated().map { n, group in
            CompiledRoute(route: route, service: service,
                          virtualID: NameBasedUUID.v5(namespace: virtualNamespace, name: "\(route.id)#\(n + 1)"),
                          paths: group.paths)
        }
    }

    init(route: Route, service: Service?, virtualID: String, paths: [String]) {
        self.route = route
        self.service = service
        self.virtualID = virtualID
        self.methods = route.methods
        self.hosts = route.hosts.map(HostPattern.init)
        self.plainPaths = paths.filter { !$0.hasPrefix("~") }
        self.regexPaths = paths.filter { $0.hasPrefix("~") }.compactMap { PathRegex(String($0.dropFirst())) }
        self.headers = route.headers.keys.sorted().map { name in
            (RouterRequest.normalizedHeaderName(name), route.headers[name]!.map(HeaderValue.init))
        }
        self.snis = route.snis.map(HostPattern.init)
        let fields = [!route.methods.isEmpty, !route.hosts.isEmpty, !route.headers.isEmpty, !paths.isEmpty,
                      !route.snis.isEmpty]
        let isRegex = !regexPaths.isEmpty
        priority = RoutePriority(
            fieldCount: fields.filter { $0 }.count,
            // Kong's `type(hosts) == "table"`: an empty list counts (null does not).
            plainHosts: route.hostsIsList && !route.hosts.contains { $0.contains("*") },
            headerCount: min(route.headers.count, 255),
            regex: isRegex,
            regexPriority: isRegex ? route.regexPriority : 0,
            prefixLength: isRegex ? 0 : (plainPaths.first?.utf8.count ?? 0) & 0x7FFFF)
    }

    func match(_ request: RouterRequest, path: String, host: HostAndPort) -> RouteMatch? {
        if !methods.isEmpty && !methods.contains(request.method) { return nil }
        if !hosts.isEmpty {
            guard let name = host.name, hosts.contains(where: { $0.matches(name, port: host.port) }) else { return nil }
        }
        for (name, values) in headers {
            guard let given = request.headers[name],
                  given.contains(where: { value in values.contains { $0.matches(value) } }) else { return nil }
        }
        if !snis.isEmpty && request.isTLS {
            guard var sni = request.sni else { return nil }
            if sni.hasSuffix(".") { sni.removeLast() }
            guard snis.contains(where: { $0.matches(sni, port: nil) }) else { return nil }
        }
        if plainPaths.isEmpty && regexPaths.isEmpty {
            return RouteMatch(route: route, service: service, path: path, matchedPrefix: nil, captures: [],
                              namedCaptures: [:])
        }
        for prefix in plainPaths where path.utf8.starts(with: prefix.utf8) {
            return RouteMatch(route: route, service: service, path: path, matchedPrefix: prefix, captures: [],
                              namedCaptures: [:])
        }
        for regex in regexPaths {
            if let found = regex.match(path) {
                return RouteMatch(route: route, service: service, path: path, matchedPrefix: found.captures[0],
                                  captures: found.captures, namedCaptures: found.named)
            }
        }
        return nil
    }
}

/// A `hosts` / `snis` entry: exact, `*.suffix`, or `prefix.*`, optionally with `:port`.
struct HostPattern: Sendable {
    enum Kind: Sendable { case exact(String), suffix(String), prefix(String) }
    let kind: Kind
    let port: Int?

    init(_ text: String) {
        var name = Substring(text)
        var port: Int?
        if let colon = name.lastIndex(of: ":"), let p = Int(name[name.index(after: colon)...]) {
            port = p
            name = name[..<colon]
        }
        self.port = port
        if name.hasPrefix("*.") {
            kind = .suffix(String(name.dropFirst()))  // ".example.com"
        } else if name.hasSuffix(".*") {
            kind = .prefix(String(name.dropLast()))  // "example."
        } else {
            kind = .exact(String(name))
        }
    }

    func matches(_ host: String, port requestPort: Int?) -> Bool {
        if let port, port != requestPort { return false }
        switch kind {
        case .exact(let name): return host == name
        case .suffix(let suffix): return host.hasSuffix(suffix) && host.utf8.count > suffix.utf8.count
        case .prefix(let prefix): return host.hasPrefix(prefix) && host.utf8.count > prefix.utf8.count
        }
    }
}

/// A `headers` value: case-insensitive equality, or `~*<regex>` (case-insensitive, unanchored).
struct HeaderValue: Sendable {
    let exact: String?
    let regex: CompiledRegex?

    init(_ text: String) {
        if text.hasPrefix("~*") {
            exact = nil
            regex = CompiledRegex(String(text.dropFirst(2)).lowercased(), caseInsensitive: true)
        } else {
            exact = text.lowercased()
            regex = nil
        }
    }

    func matches(_ lowercasedValue: String) -> Bool {
        if let exact { return exact == lowercasedValue }
        return regex?.firstMatch(in: lowercasedValue, anchored: false) != nil
    }
}

/// A regex path: anchored at the start of the normalised path, with positional and named captures.
struct PathRegex: Sendable {
    let regex: CompiledRegex
    let names: [String]

    init?(_ pattern: String) {
        let icu = RustRegexSyntax.icuPattern(pattern)
        guard let regex = CompiledRegex(icu, caseInsensitive: false) else { return nil }
        self.regex = regex
        self.names = PathRegex.groupNames(in: icu)
    }

    func match(_ path: String) -> (captures: [String?], named: [String: String])? {
        guard let result = regex.firstMatch(in: path, anchored: true) else { return nil }
        let ns = path as NSString
        var captures: [String?] = []
        for i in 0..<result.numberOfRanges {
            let range = result.range(at: i)
            captures.append(range.location == NSNotFound ? nil : ns.substring(with: range))
        }
        var named: [String: String] = [:]
        for name in names {
            let range = result.range(withName: name)
            if range.location != NSNotFound { named[name] = ns.substring(with: range) }
        }
        return (captures, named)
    }

    static func groupNames(in pattern: String) -> [String] {
        var names: [String] = []
        var rest = Substring(pattern)
        while let open = rest.range(of: "(?<") {
            rest = rest[open.upperBound...]
            guard let first = rest.first, first != "=", first != "!", let close = rest.firstIndex(of: ">") else { continue }
            names.append(String(rest[..<close]))
            rest = rest[close...]
        }
        return names
    }
}

/// Kong's router compiles paths with Rust's `regex` crate; Silverback with ICU. Where the two
/// read the same text differently, the pattern is rewritten to mean what Rust means.
enum RustRegexSyntax {
    static func icuPattern(_ rust: String) -> String {
        // Rust's `(?P<name>` spelling is accepted; ICU knows `(?<name>`.
        let named = rust.replacingOccurrences(of: "(?P<", with: "(?<")
        return hasMultiLineFlag(named) ? named : endAnchorsAtEndOfText(named)
    }

    /// Rust's `$` (without the `m` flag) matches at the end of the text only; ICU's also before a
    /// final line terminator, so `/v1/echo$` would route `/v1/echo%0A`. Every `$` outside a class
    /// and not escaped becomes `\\z`.
    static func endAnchorsAtEndOfText(_ pattern: String) -> String {
        var out = ""
        out.reserveCapacity(pattern.utf8.count + 4)
        forEachSyntaxCharacter(of: pattern) { character, _, plain in
            if plain && character == "$" { out.append("\\z") } else { out.append(character) }
        }
        return out
    }

    /// Whether a flag group turns on `m` (`(?m)`, `(?im:…)`): `$` then means end of line in both
    /// (a scoped `(?m:…)` keeps the whole pattern as written). Only real groups count: not an
    /// escaped `\\(` nor a `(` inside a class.
    static func hasMultiLineFlag(_ pattern: String) -> Bool {
        var found = false
        forEachSyntaxCharacter(of: pattern) { character, rest, plain in
            guard !found, plain, character == "(", rest.first == "?" else { return }
            for flag in rest.dropFirst() {
                if flag == "m" { found = true; return }
                if !flag.isLetter { return }  // `-` (flags off), `:`, `)`, `<`…
            }
        }
        return found
    }

    /// Calls `body` with each character, what follows it, and whether it is syntax: neither
    /// escaped nor inside a character class (`[]…]` and `[^]…]` open with a literal `]`).
    private static func forEachSyntaxCharacter(of pattern: String, _ body: (Character, Substring, Bool) -> Void) {
        var escaped = false
        var classDepth = 0
        var previous: (Character?, Character?) = (nil, nil)  // the two characters before
        var index = pattern.startIndex
        while index < pattern.endIndex {
            let character = pattern[index]
            let next = pattern.index(after: index)
            var plain = false
            if escaped {
                escaped = false
            } else {
                switch character {
                case "\\": escaped = true
                case "[": classDepth += 1
                case "]" where classDepth > 0:
                    let opensClass = previous.1 == "[" || (previous.1 == "^" && previous.0 == "[")
                    if !opensClass { classDepth -= 1 }
                default: plain = classDepth == 0
                }
            }
            body(character, pattern[next...], plain)
            previous = (previous.1, character)
            index = next
        }
    }
}

/// An immutable compiled regular expression, safe to share across threads (ICU's matcher is
/// created per call; the pattern object is read-only).
struct CompiledRegex: @unchecked Sendable {
    private let expression: NSRegularExpression

    init?(_ pattern: String, caseInsensitive: Bool) {
        guard let expression = try? NSRegularExpression(pattern: pattern,
                                                        options: caseInsensitive ? [.caseInsensitive] : []) else {
            return nil
        }
        self.expression = expression
    }

    func firstMatch(in text: String, anchored: Bool) -> NSTextCheckingResult? {
        expression.firstMatch(in: text, options: anchored ? [.anchored] : [],
                              range: NSRange(location: 0, length: (text as NSString).length))
    }
}
