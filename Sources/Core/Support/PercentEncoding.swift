/// RFC 3986 percent-encoding, one implementation for the proxy (paths, query arguments) and the
/// plugins (AWS's `UriEncode`, form bodies): hex digits upper case on output, either case on input.
public enum PercentEncoding {
    /// Encodes every byte outside the unreserved set `A-Za-z0-9-._~` (and `/` when
    /// `keepingSlash`). Right for query names and values, form values, and AWS's `UriEncode`.
    public static func encode<Bytes: Collection>(_ bytes: Bytes, keepingSlash: Bool = false) -> String
        where Bytes.Element == UInt8
    {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for byte in bytes {
            if isUnreserved(byte) || (keepingSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                appendEscape(byte, to: &out)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `%XX` escapes decoded; anything else (`+` and malformed escapes included) kept as is.
    /// Bytes, so escapes that are not UTF-8 (`%FF`) survive a round trip.
    public static func decode<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            if bytes[i] == UInt8(ascii: "%"), let (value, next) = escape(at: i, in: bytes) {
                out.append(value)
                i = next
            } else {
                out.append(bytes[i])
                i = bytes.index(after: i)
            }
        }
        return out
    }

    /// The byte a `%XX` at `index` stands for and the index after it; nil when it is not a
    /// complete escape.
    @inline(__always)
    static func escape<Bytes: Collection>(at index: Bytes.Index, in bytes: Bytes) -> (UInt8, Bytes.Index)?
        where Bytes.Element == UInt8
    {
        let h1 = bytes.index(after: index)
        guard h1 != bytes.endIndex else { return nil }
        let h2 = bytes.index(after: h1)
        guard h2 != bytes.endIndex, let hi = hexValue(bytes[h1]), let lo = hexValue(bytes[h2]) else { return nil }
        return (hi << 4 | lo, bytes.index(after: h2))
    }

    /// `%XX` for `byte`.
    @inline(__always)
    public static func appendEscape(_ byte: UInt8, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "%"))
        out.append(upperHexDigit(byte >> 4))
        out.append(upperHexDigit(byte & 0x0F))
    }

    @inline(__always)
    public static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// The value of one hex digit, either case.
    @inline(__always)
    public static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    @inline(__always)
    public static func upperHexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }
}
