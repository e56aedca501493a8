import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node settings the proxy path reads on every request, parsed once: Kong's `trusted_ips`,
/// `real_ip_header`, `real_ip_recursive`, `headers`, `headers_upstream`, `allow_debug_header` and
/// `port_maps`.
public struct ProxyOptions: Sendable, Equatable {
    /// Peers whose `X-Forwarded-*` headers are believed (Kong's `trusted_ips`; default none).
    public var trustedIPs = TrustedIPs()
    /// Response headers the gateway adds (Kong's `headers`).
    public var responseHeaders = ResponseHeaderSet.kongDefault
    /// Whether `X-Kong-Request-Id` goes upstream (Kong's `headers_upstream`).
    public var requestIDUpstream = true
    /// A request with a `Kong-Debug` header gets the matched route's and service's id and name
    /// back (Kong's `allow_debug_header`, off by default).
    public var allowDebugHeader = false
    /// The host port each listening port is published as (Kong's `port_maps`, `host:container`):
    /// `X-Forwarded-Port` names the port the client connected to, as seen from outside.
    public var portMaps: [Int: Int] = [:]
    /// How long the gateway waits on a client (nginx's defaults, which Kong keeps).
    public var clientTimeouts = ClientTimeouts()
    /// The most of a chunked request body held in memory for a route's `request_buffering`
    /// (nginx spills to a temporary file past its buffer; a larger body here streams on, chunked).
    public var requestBufferingLimit = 8 << 20
    /// Where a trusted peer names the client (nginx's `real_ip_header`, Kong's default
    /// `X-Real-IP`), lower-cased, and whether addresses of trusted proxies are skipped in it
    /// (`real_ip_recursive`).
    public var realIPHeader = "x-real-ip"
    public var realIPRecursive = false

    public init() {}
}


/// nginx's `client_header_timeout`, `client_body_timeout` and `keepalive_timeout`, set with Kong's
/// `nginx_http_*` directive injection.
public struct ClientTimeouts: Sendable, Equatable {
    /// A request head must arrive whole within this (from its first byte, or from the connection's
    /// opening for its first request); otherwise the connection closes without an answer.
    public var header = TimeAmount.seconds(60)
    /// The longest gap between two reads of a request body the gateway is waiting for; then 408.
    public var body = TimeAmount.seconds(60)
    /// How long a connection may sit idle between requests before it is closed; zero turns
    /// keep-alive off (every answer closes its connection), as `keepalive_timeout 0` does.
    public var keepalive = TimeAmount.seconds(75)

    public init() {}

    /// The shortest wait that is timed (a zero keep-alive is no wait: the connection closes).
    var shortest: TimeAmount { keepalive > .zero ? min(header, body, keepalive) : min(header, body) }
}

/// Kong's `headers` tokens, resolved to the individual headers they enable.
public struct ResponseHeaderSet: Sendable, Equatable {
    public var server = true
    public var via = true
    public var proxyLatency = true
    public var upstreamLatency = true
    public var responseLatency = true
    public var adminLatency = true
    public var requestID = true
    public var upstreamStatus = false

    public static let kongDefault = ResponseHeaderSet()
    public static let none = ResponseHeaderSet(server: false, via: false, proxyLatency: false, upstreamLatency: false,
                                               responseLatency: false, adminLatency: false, requestID: false)

    /// `headers = server_tokens, latency_tokens, X-Kong-Request-Id` (case-insensitive); `off` alone
    /// disables all.
    public static func parse(_ value: String) -> Result<ResponseHeaderSet, SettingsError> {
        var set = ResponseHeaderSet.none
        let tokens = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        for token in tokens {
            switch token {
            case "off":
                guard tokens.count == 1 else { return .failure(SettingsError("'off' cannot be used with other values")) }
            case "server_tokens": set.server = true; set.via = true
            case "latency_tokens":
                set.proxyLatency = true; set.upstreamLatency = true; set.responseLatency = true; set.adminLatency = true
            case "server": set.server = true
            case "via": set.via = true
            case "x-kong-proxy-latency": set.proxyLatency = true
            case "x-kong-upstream-latency": set.upstreamLatency = true
            case "x-kong-response-latency": set.responseLatency = true
            case "x-kong-admin-latency": set.adminLatency = true
            case "x-kong-upstream-status": set.upstreamStatus = true
            case "x-kong-request-id": set.requestID = true
            default: return .failure(SettingsError("invalid header value: \(token)"))
            }
        }
        return .success(set)
    }
}

/// Addresses and CIDR blocks, IPv4 and IPv6, matched against a peer's address text.
public struct TrustedIPs: Sendable, Equatable {
    struct Block: Sendable, Equatable {
        let address: [UInt8]  // 4 or 16 bytes
        let prefixLength: Int
    }
    var blocks: [Block] = []

    public init() {}

    public var isEmpty: Bool { blocks.isEmpty }

    /// `1.2.3.4, 10.0.0.0/8, ::1, 0.0.0.0/0`; Kong's `unix:` entry (trust unix sockets) is accepted
    /// and has nothing to match here (no unix-socket listeners).
    public static func parse(_ value: String) -> Result<TrustedIPs, SettingsError> {
        var ips = TrustedIPs()
        for raw in value.split(separator: ",") {
            let entry = raw.trimmingCharacters(in: .whitespaces)
            if entry.isEmpty || entry == "unix:" { continue }
            let parts = entry.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2, let address = bytes(of: parts[0]) else { return .failure(SettingsError("invalid IP or CIDR range: '\(entry)'")) }
            var length = address.count * 8
            if parts.count == 2 {
                guard let given = Int(parts[1]), (0...address.count * 8).contains(given) else {
                    return .failure(SettingsError("invalid IP or CIDR range: '\(entry)'"))
                }
                length = given
            }
            ips.blocks.append(Block(address: address, prefixLength: length))
        }
        return .success(ips)
    }

    public func contains(_ peer: String) -> Bool {
        guard !blocks.isEmpty, let address = Self.bytes(of: peer) else { return false }
        // An IPv4-mapped IPv6 peer (`::ffff:1.2.3.4`) matches IPv4 blocks.
        if address.count == 16, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xFF, address[11] == 0xFF {
            let v4 = Array(address[12..<16])
            if blocks.contains(where: { Self.matches(v4, $0) }) { return true }
        }
        return blocks.contains { Self.matches(address, $0) }
    }

    static func matches(_ address: [UInt8], _ block: Block) -> Bool {
        guard address.count == block.address.count else { return false }
        var remaining = block.prefixLength
        for i in 0..<address.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if address[i] & mask != block.address[i] & mask { return false }
            remaining -= bits
        }
        return true
    }

    static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
