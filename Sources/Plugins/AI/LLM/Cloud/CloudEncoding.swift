import Core
import Foundation

/// Byte encodings shared by the cloud identities: AWS's `UriEncode`, form bodies, JWT base64url
/// and lower-case hex.
enum CloudEncoding {
    /// Percent-encodes every byte outside `A-Za-z0-9-._~` (and `/` when `keepingSlash`), hex in
    /// upper case: AWS's `UriEncode`, also right for `application/x-www-form-urlencoded` values.
    static func percentEncoded(_ text: String, keepingSlash: Bool = false) -> String {
        PercentEncoding.encode(text.utf8, keepingSlash: keepingSlash)
    }

    /// `%XX` escapes decoded; anything else (including `+` and malformed escapes) kept as is.
    static func percentDecoded(_ text: Substring) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return String(text) }
        return String(decoding: PercentEncoding.decode(text.utf8), as: UTF8.self)
    }

    /// `application/x-www-form-urlencoded` body from name/value pairs, in order.
    static func formBody(_ fields: [(String, String)]) -> String {
        fields.map { "\(percentEncoded($0.0))=\(percentEncoded($0.1))" }.joined(separator: "&")
    }

    /// Base64url without padding (RFC 7515 §2).
    static func base64URL<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var text = Data(bytes).base64EncodedString()
        while text.last == "=" { text.removeLast() }
        return String(text.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(lowerHexDigits[Int(byte >> 4)])
            out.append(lowerHexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let lowerHexDigits = Array("0123456789abcdef".utf8)
}
