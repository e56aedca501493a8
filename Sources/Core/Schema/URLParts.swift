/// URL splitting as LuaSocket's `socket.url.parse` does it, which Kong's `url` typedef and the
/// services `url` shorthand rely on: fragment, scheme, authority, query, params, then path.
public struct URLParts: Sendable, Equatable {
    public var scheme: String?
    public var userinfo: String?
    public var host: String?
    public var port: String?
    public var path: String?
    public var query: String?

    public init(_ text: String) {
        var rest = Substring(text)
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        // scheme: ^([%w][%w%+%-%.]*)%:
        if let colon = rest.firstIndex(of: ":"), let first = rest.first, first.isASCII, first.isLetter || first.isNumber {
            let candidate = rest[..<colon]
            if candidate.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) {
                scheme = String(candidate)
                rest = rest[rest.index(after: colon)...]
            }
        }
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            let end = rest.firstIndex(of: "/") ?? rest.endIndex
            var authority = rest[..<end]
            rest = rest[end...]
            if let at = authority.lastIndex(of: "@") {
                userinfo = String(authority[..<at])
                authority = authority[authority.index(after: at)...]
            }
            if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") { port = String(after.dropFirst()) }
            } else if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                port = String(authority[authority.index(after: colon)...])
            } else {
                host = String(authority)
            }
            if host == "" { host = nil }
            if port == "" { port = nil }
        }
        if let q = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: q)...])
            rest = rest[..<q]
        }
        if let semicolon = rest.firstIndex(of: ";") { rest = rest[..<semicolon] }
        path = rest.isEmpty ? nil : String(rest)
    }
}
