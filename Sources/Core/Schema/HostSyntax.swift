/// Host / IP syntax checks behind Kong's `host`, `wildcard_host`, `sni` and `ip` typedefs
/// (`kong.tools.ip` `normalize_ip` and `hostname_type`).
public enum HostSyntax {
    public enum Kind: Sendable, Equatable { case ipv4, ipv6, name }

    public struct Parsed: Sendable, Equatable {
        public var kind: Kind
        public var host: String
        public var port: Int?
    }

    public enum Failure: Error, Equatable { case invalid, invalidPort }

    /// Splits `host[:port]` and classifies it.
    public static func parse(_ address: String) -> Result<Parsed, Failure> {
        if address.contains(":") && (address.hasPrefix("[") || address.filter({ $0 == ":" }).count > 1) {
            return parseIPv6(address)
        }
        var name = Substring(address)
        var port: Int?
        if let colon = name.lastIndex(of: ":") {
            let digits = name[name.index(after: colon)...]
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let p = Int(digits) else { return .failure(.invalid) }
            guard p <= 65535 else { return .failure(.invalidPort) }
            port = p
            name = name[..<colon]
        }
        if name.allSatisfy({ $0.isASCIIDigit || $0 == "." }) {
            return isIPv4(name) ? .success(Parsed(kind: .ipv4, host: String(name), port: port)) : .failure(.invalid)
        }
        guard !name.isEmpty,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) else {
            return .failure(.invalid)
        }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            if label.isEmpty || label.hasPrefix("-") || label.hasSuffix("-") { return .failure(.invalid) }
        }
        return .success(Parsed(kind: .name, host: String(name), port: port))
    }

    public static func isIPv4(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCIIDigit) && Int($0)! <= 255 }
    }

    private static func parseIPv6(_ address: String) -> Result<Parsed, Failure> {
        var text = Substring(address)
        var port: Int?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(.invalid) }
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), after.dropFirst().allSatisfy(\.isASCIIDigit)
                else { return .failure(.invalid) }
                guard p <= 65535 else { return .failure(.invalidPort) }
                port = p
            }
            text = text[text.index(after: text.startIndex)..<close]
        }
        return isIPv6(text) ? .success(Parsed(kind: .ipv6, host: String(text), port: port)) : .failure(.invalid)
    }

    public static func isIPv6(_ s: Substring) -> Bool {
        guard s.contains(":"), s.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
        let doubleColons = s.components(separatedBy: "::").count - 1
        guard doubleColons <= 1 else { return false }
        var groups = s.split(separator: ":", omittingEmptySubsequences: true)
        var width = 8
        if let last = groups.last, last.contains(".") {
            guard isIPv4(last) else { return false }
            groups.removeLast()
            width = 6
        }
        guard groups.allSatisfy({ $0.count <= 4 && !$0.contains(".") }) else { return false }
        return doubleColons == 1 ? groups.count < width : groups.count == width
    }

    /// `ip` or `cidr` as Kong's `ip_or_cidr` typedef accepts them.
    public static func isIPOrCIDR(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return false }
        let ip = parts[0]
        let isV4 = isIPv4(ip), isV6 = !isV4 && isIPv6(ip)
        guard isV4 || isV6 else { return false }
        if parts.count == 2 {
            guard let bits = Int(parts[1]), parts[1].allSatisfy(\.isASCIIDigit) else { return false }
            return bits >= 0 && bits <= (isV4 ? 32 : 128)
        }
        return true
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
