import Foundation

/// What the router needs from a request (spec §6.1).
public struct RouterRequest: Sendable {
    public var method: String
    /// The `Host` header's first value, as sent (may carry `:port`).
    public var host: String?
    /// The request target's path, raw (not yet normalised), without the query.
    public var rawPath: Substring
    /// Header values by normalised name (lower-cased, `_` → `-`); values lower-cased once here,
    /// as Kong compares them, rather than once per candidate route.
    public private(set) var headers: [String: [String]]
    /// The listening port the request arrived on (used when Host carries none).
    public var localPort: Int
    public var sni: String?
    public var isTLS: Bool

    public init(method: String, host: String?, rawPath: Substring, headers: [String: [String]] = [:],
                localPort: Int, sni: String? = nil, isTLS: Bool = false) {
        self.method = method
        self.host = host
        self.rawPath = rawPath
        self.headers = headers.isEmpty ? headers : headers.mapValues { $0.map { $0.lowercased() } }
        self.localPort = localPort
        self.sni = sni
        self.isTLS = isTLS
    }

    /// Kong compares header names case-insensitively with `-` and `_` equivalent.
    public static func normalizedHeaderName(_ name: String) -> String {
        name.lowercased().replacingOccurrences(of: "_", with: "-")
    }
}

/// A successful match: the (original) route, its service, the regex captures and the prefix to
/// strip when the route says so.
public struct RouteMatch: Sendable {
    public let route: Route
    public let service: Service?
    /// The normalised request path the route matched.
    public let path: String
    /// The matched prefix: the plain route path, or the text a regex path matched from the start.
    public let matchedPrefix: String?
    /// Positional captures (0 = whole match); nil entries did not participate.
    public let captures: [String?]
    public let namedCaptures: [String: String]

    /// The prefix to strip from the upstream path (nil when the route keeps the path).
    public var strippedPrefix: String? { route.stripPath ? (matchedPrefix ?? "/") : nil }
}

/// Kong's `traditional_compatible` router compiled from one configuration snapshot (spec §6).
///
/// Routes are split per path group, ranked once by Kong's documented priority, and indexed:
/// plain path prefixes go into a byte trie, so a request only evaluates the routes whose prefix it
/// carries plus those without plain paths (regex or path-less routes). Matching costs
/// O(len(path) + k log k) for k candidate routes, independent of the total number of routes.
public struct Router: Sendable {
    let routes: [CompiledRoute]
    let trie: PrefixTrie
    /// Ranks of routes that must always be evaluated (no plain path).
    let unindexed: [Int]
    /// Whether any route matches on headers: callers build the header map only then.
    public let usesHeaders: Bool

    public init(snapshot: ConfigSnapshot) {
        let services = Dictionary(snapshot.services.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var compiled: [CompiledRoute] = []
        for route in snapshot.routes {
            guard route.protocols.contains(where: { ["http", "https", "grpc", "grpcs"].contains($0) }) else { continue }
            let service = route.serviceID.flatMap { services[$0] }
            if let service, !service.enabled { continue }
            compiled += CompiledRoute.split(route, service: service)
        }
        compiled.sort { a, b in
            if a.priority != b.priority { return a.priority > b.priority }
            return a.virtualID > b.virtualID
        }
        var trie = PrefixTrie()
        var unindexed: [Int] = []
        for (rank, route) in compiled.enumerated() {
            if route.plainPaths.isEmpty {
                unindexed.append(rank)
            } else {
                for path in route.plainPaths { trie.insert(path, rank: rank) }
            }
        }
        self.routes = compiled
        self.trie = trie
        self.unindexed = unindexed
        self.usesHeaders = compiled.contains { !$0.headers.isEmpty }
    }

    public var count: Int { routes.count }

    /// Stands for the Host where no candidate route reads it.
    private static let noHost = HostAndPort(nil, defaultPort: 0)

    /// The highest-priority route whose predicate matches, or nil (→ 404).
    public func match(_ request: RouterRequest) -> RouteMatch? {
        let path = RequestPath.normalize(request.rawPath)
        var candidates = unindexed
        trie.collect(prefixesOf: path, into: &candidates)
        if candidates.count > 1 { candidates.sort() }
        // The Host is split only for a candidate that matches on hosts (most configurations have none).
        var host: HostAndPort?
        var previous = -1
        for rank in candidates where rank != previous {
            previous = rank
            let route = routes[rank]
            if !route.hosts.isEmpty, host == nil { host = HostAndPort(request.host, defaultPort: request.localPort) }
            if let match = route.match(request, path: path, host: host ?? Self.noHost) { return match }
        }
        return nil
    }
}

/// The request's Host split into name and port.
struct HostAndPort: Sendable {
    let name: String?
    let port: Int

    init(_ header: String?, defaultPort: Int) {
        guard let header else {
            name = nil
            port = defaultPort
            return
        }
        if let (colon, p) = Self.port(in: header) {
            name = String(header[..<colon])
            port = p
        } else {
            name = header
            port = defaultPort
        }
    }

    /// The host part of a Host header's value (what `name` holds), without making a string.
    static func name(in header: String) -> Substring {
        port(in: header).map { header[..<$0.colon] } ?? header[...]
    }

    /// Where the header's `:port` starts, and the port; nil without one (the colons inside an
    /// IPv6 literal such as `[::1]` are not one).
    private static func port(in header: String) -> (colon: String.Index, port: Int)? {
        let bytes = header.utf8
        guard let colon = bytes.lastIndex(of: UInt8(ascii: ":")), bytes.last != UInt8(ascii: "]"),
              let port = Int(header[header.index(after: colon)...]) else { return nil }
        return (colon, port)
    }
}

/// Byte trie of plain path prefixes → route ranks.
struct PrefixTrie: Sendable {
    private var children: [[UInt8: Int32]] = [[:]]
    private var ranks: [[Int]] = [[]]

    mutating func insert(_ path: String, rank: Int) {
        var node = 0
        for byte in path.utf8 {
            if let next = children[node][byte] {
                node = Int(next)
            } else {
                children.append([:])
                ranks.append([])
                let next = children.count - 1
                children[node][byte] = Int32(next)
                node = next
            }
        }
        ranks[node].append(rank)
    }

    /// Appends the ranks of every inserted path that is a prefix of `path`.
    func collect(prefixesOf path: String, into out: inout [Int]) {
        var node = 0
        out += ranks[0]
        for byte in path.utf8 {
            guard let next = children[node][byte] else { return }
            node = Int(next)
            out += ranks[node]
        }
    }
}
