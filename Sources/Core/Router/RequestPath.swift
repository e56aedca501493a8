/// Request-path handling of Kong's router (spec §6.1): the path a route sees, and the upstream
/// path and Host built from it (spec §6.5).
public enum RequestPath {
    /// Characters that stay percent-encoded when a request path is normalised.
    static let reserved: Set<UInt8> = Set("!*'();:@&=+$,/?%#[]".utf8)

    /// Kong's router normalisation: `%XX` decoded unless it encodes a reserved character (which
    /// stays encoded, hex upper-cased), dot segments resolved, repeated `/` merged.
    public static func normalize(_ raw: Substring) -> String {
        // Most paths need nothing: no escapes, no repeated slashes, no dot segments.
        var previous: UInt8 = 0
        var clean = true
        for byte in raw.utf8 {
            if byte == UInt8(ascii: "%") || (byte == UInt8(ascii: "/") && previous == UInt8(ascii: "/"))
                || (byte == UInt8(ascii: ".") && previous == UInt8(ascii: "/")) {
                clean = false
                break
            }
            previous = byte
        }
        if clean { return String(raw) }
        let bytes = Array(raw.utf8)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "%"), let (value, next) = PercentEncoding.escape(at: i, in: bytes) {
                if reserved.contains(value) {
                    PercentEncoding.appendEscape(value, to: &decoded)
                } else {
                    decoded.append(value)
                }
                i = next
                continue
            }
            if b == UInt8(ascii: "/"), decoded.last == UInt8(ascii: "/") {
                i += 1
                continue
            }
            decoded.append(b)
            i += 1
        }
        let text = String(decoding: decoded, as: UTF8.self)
        return text.contains("/.") ? PathSyntax.removeDotSegments(text) : text
    }

    /// Kong's `v0` upstream path composition (spec §6.5). `servicePath` nil means `/`;
    /// `strippedPrefix` is the matched prefix when the route strips it, else nil.
    public static func upstreamPath(servicePath: String?, requestPath: String, strippedPrefix: String?) -> String {
        let s = servicePath ?? "/"
        let r = requestPath
        let sEndsWithSlash = s.hasSuffix("/")
        guard let prefix = strippedPrefix else {
            if sEndsWithSlash { return s + r.dropFirst() }
            return r == "/" ? s : s + r
        }
        var post = Substring(String(decoding: r.utf8.dropFirst(prefix.utf8.count), as: UTF8.self))
        if post.hasPrefix("./") { post = post.dropFirst(2) } else if post.hasPrefix("../") { post = post.dropFirst(3) }
        if post == "." || post == ".." { post = "" }
        if sEndsWithSlash {
            if post.isEmpty {
                if s == "/" { return "/" }
                return r.hasSuffix("/") ? s : String(s.dropLast())
            }
            if post.hasPrefix("/") { return String(s.dropLast()) + post }
            return s + post
        }
        if post.isEmpty { return r.hasSuffix("/") && r != "/" ? s + "/" : s }
        if post.hasPrefix("/") { return s + post }
        return s + "/" + post
    }

    /// Bytes sent as they are in an upstream path; the others are percent-encoded. A table by
    /// byte value (this runs on every byte of every proxied path).
    static let upstreamSafe: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!#$&'()*+,/:;=?@[]%".utf8 {
            table[Int(byte)] = true
        }
        return table
    }()

    /// Percent-encodes bytes outside Kong's safe set, then appends the raw query when the request
    /// target had a `?` (even an empty one).
    public static func upstreamTarget(path: String, rawQuery: Substring?) -> String {
        let safe = upstreamSafe
        if rawQuery == nil, path.utf8.allSatisfy({ safe[Int($0)] }) { return path }  // the usual case: no copy
        var out: [UInt8] = []
        out.reserveCapacity(path.utf8.count + (rawQuery?.utf8.count ?? 0) + 1)
        for b in path.utf8 {
            if safe[Int(b)] {
                out.append(b)
            } else {
                PercentEncoding.appendEscape(b, to: &out)
            }
        }
        if let rawQuery {
            out.append(UInt8(ascii: "?"))
            out.append(contentsOf: rawQuery.utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The `Host` sent upstream: the client's with `preserve_host`, else the service host with
    /// `:port` unless it is the scheme's default port.
    public static func upstreamHost(service: Service, preserveHost: Bool, clientHost: String?) -> String {
        if preserveHost, let clientHost { return clientHost }
        let defaultPort: Int
        switch service.protocol {
        case "https", "grpcs": defaultPort = 443
        default: defaultPort = 80
        }
        return service.port == defaultPort ? service.host : "\(service.host):\(service.port)"
    }
}
