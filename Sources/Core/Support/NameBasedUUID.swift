import Crypto

/// RFC 4122 name-based UUIDs (version 5, SHA-1), as Kong's declarative loader generates them.
public enum NameBasedUUID {
    public static func v5(namespace: String, name: String) -> String {
        var bytes = parse(namespace)
        bytes.append(contentsOf: Array(name.utf8))
        var digest = Array(Insecure.SHA1.hash(data: bytes).prefix(16))
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        return format(digest)
    }

    static func parse(_ uuid: String) -> [UInt8] {
        let hex = Array(uuid.replacingOccurrences(of: "-", with: "").utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 1 < hex.count {
            out.append(UInt8(String(decoding: hex[i...i + 1], as: UTF8.self), radix: 16) ?? 0)
            i += 2
        }
        return out
    }

    static func format(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { b -> String in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
        let h = Array(hex)
        return [h[0..<8], h[8..<12], h[12..<16], h[16..<20], h[20..<32]].map { String($0) }.joined(separator: "-")
    }
}
