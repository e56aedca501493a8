/// Finds the next byte a JSON reader or writer has to act on, eight bytes at a time.
///
/// Why: LLM requests carry whole conversations (tens of kilobytes of message text), and nearly
/// every byte of a string needs nothing but copying. Looking at each byte through a `switch`
/// made reading and re-encoding such a body cost more than everything else the gateway does
/// for the request.
///
/// Each step tests a 64-bit word with the bit tricks below rather than a `SIMD16` block: the
/// standard library reduces a SIMD mask (`any`) through a generic `min()` call, which `perf`
/// showed costing as much as the scan itself; and the strings between escapes are often short,
/// which eight-byte steps cover better than sixteen.
enum JSONByteScan {
    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")
    private static let slash = UInt8(ascii: "/")
    /// DEL: lua-cjson's `char2escape` writes it as `\u007f`, so Kong's encoder mode escapes it.
    private static let delete: UInt8 = 0x7F

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// Whether a byte of `word` is zero (exact as a yes/no answer).
    @inline(__always) private static func hasZeroByte(_ word: UInt64) -> Bool {
        (word &- ones) & ~word & highBits != 0
    }

    /// Whether a byte of `word` equals `byte`.
    @inline(__always) private static func has(_ word: UInt64, _ byte: UInt8) -> Bool {
        hasZeroByte(word ^ (ones &* UInt64(byte)))
    }

    /// Whether a byte of `word` is below 0x20 (a control character; bytes from 0x80 are not).
    @inline(__always) private static func hasControl(_ word: UInt64) -> Bool {
        (word &- ones &* 0x20) & ~word & highBits != 0
    }

    @inline(__always) private static func word(_ base: UnsafePointer<UInt8>, _ index: Int) -> UInt64 {
        UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
    }

    /// The index of the first `"` or `\` at or after `start`, or `bytes.count`: where a string
    /// being read ends or has an escape. Raw control characters are no stop: Kong's decoder
    /// accepts them inside strings. `sawControl` is set when the bytes passed over hold one.
    static func stringEndOrEscape(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, sawControl: inout Bool) -> Int {
        var sawNonASCII = false
        return stringEndOrEscape(in: bytes, from: start, sawControl: &sawControl, sawNonASCII: &sawNonASCII)
    }

    /// `stringEndOrEscape`, also setting `sawNonASCII` when the bytes passed over hold a byte from
    /// 0x80 (only such a run needs its UTF-8 checked).
    static func stringEndOrEscape(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, sawControl: inout Bool,
                                  sawNonASCII: inout Bool) -> Int {
        var index = start
        if let base = bytes.baseAddress {
            var control = false
            var high: UInt64 = 0
            while index + 8 <= bytes.count {
                let w = word(base, index)
                if has(w, quote) || has(w, backslash) { break }
                control = control || hasControl(w)
                high |= w
                index += 8
            }
            if control { sawControl = true }
            if high & highBits != 0 { sawNonASCII = true }
        }
        while index < bytes.count, bytes[index] != quote, bytes[index] != backslash {
            if bytes[index] < 0x20 { sawControl = true }
            if bytes[index] >= 0x80 { sawNonASCII = true }
            index += 1
        }
        return index
    }

    /// Whether `bytes` are valid UTF-8 (RFC 3629: what `String(decoding:as:)` keeps unchanged),
    /// passing over ASCII eight bytes at a time.
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var index = 0
        while index < count {
            if index + 8 <= count, word(base, index) & highBits == 0 { index += 8; continue }
            let lead = base[index]
            if lead < 0x80 { index += 1; continue }
            // The sequence's length and the range of its second byte (which rules out overlong
            // forms, surrogates and code points past U+10FFFF); the others are 0x80...0xBF.
            let length: Int, second: ClosedRange<UInt8>
            switch lead {
            case 0xC2...0xDF: length = 2; second = 0x80...0xBF
            case 0xE0: length = 3; second = 0xA0...0xBF
            case 0xE1...0xEC, 0xEE...0xEF: length = 3; second = 0x80...0xBF
            case 0xED: length = 3; second = 0x80...0x9F
            case 0xF0: length = 4; second = 0x90...0xBF
            case 0xF1...0xF3: length = 4; second = 0x80...0xBF
            case 0xF4: length = 4; second = 0x80...0x8F
            default: return false
            }
            guard index + length <= count, second.contains(base[index + 1]) else { return false }
            for offset in 2..<length where base[index + offset] & 0xC0 != 0x80 { return false }
            index += length
        }
        return true
    }

    /// The index of the first byte a JSON string must escape at or after `start`, or
    /// `bytes.count`: `"`, `\`, control characters, and `/` and DEL when `escapeSlashes`.
    static func escapeNeeded(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, escapeSlashes: Bool) -> Int {
        var index = start
        if let base = bytes.baseAddress {
            // When slashes and DEL pass unescaped, these tests repeat the quote test.
            let slashes = escapeSlashes ? slash : quote
            let delete = escapeSlashes ? Self.delete : quote
            while index + 8 <= bytes.count {
                let w = word(base, index)
                if hasControl(w) || has(w, quote) || has(w, backslash) || has(w, slashes) || has(w, delete) { break }
                index += 8
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x20 || byte == quote || byte == backslash || (escapeSlashes && (byte == slash || byte == Self.delete)) { break }
            index += 1
        }
        return index
    }
}
