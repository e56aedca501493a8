import NIOHTTP1

/// nginx's realip module as Kong configures it (`set_real_ip_from` = `trusted_ips`): a request
/// from a trusted peer is from the address that peer names in `real_ip_header` — Kong's
/// forwarded client IP (`$remote_addr`, `kong.client.get_forwarded_ip()`).
enum RealIP {
    /// The address the header names, read from the right: its last entry, or with
    /// `real_ip_recursive` the rightmost one that is not itself a trusted proxy. Nil when the
    /// header is absent or its entry is no address (the peer's address stands).
    static func forwardedAddress(_ headers: HTTPHeaders, options: ProxyOptions) -> String? {
        let values = headers[canonicalForm: options.realIPHeader]
        guard !values.isEmpty else { return nil }
        // Several lines read as one list, the last line's entries last (as nginx walks them).
        let entries = values.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var found: String?
        for entry in entries.reversed() {
            guard let address = address(entry) else { return found }
            found = address
            if !options.realIPRecursive || !options.trustedIPs.contains(address) { break }
        }
        return found
    }

    /// An entry as an address: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
    static func address(_ entry: String) -> String? {
        if TrustedIPs.bytes(of: entry) != nil { return entry }
        if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
            let inner = String(entry[entry.index(after: entry.startIndex)..<close])
            return TrustedIPs.bytes(of: inner) != nil ? inner : nil
        }
        if let colon = entry.lastIndex(of: ":"), entry.firstIndex(of: ":") == colon {
            let host = String(entry[..<colon])
            return TrustedIPs.bytes(of: host) != nil && Int(entry[entry.index(after: colon)...]) != nil ? host : nil
        }
        return nil
    }
}
