/// Finds the next byte a JSON reader or writer has to act on, sixteen bytes at a time.
///
/// Why: LLM requests carry whole conversations (tens of kilobytes of message text), and nearly
/// every byte of a string needs nothing but copying. Looking at each byte through a `switch`
/// made reading and re-encoding such a body cost more than everything else the gateway does
/// for the request.
enum JSONByteScan {
    private typealias Block = SIMD16<UInt8>
    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")
    private static let slash = UInt8(ascii: "/")

    /// The index of the first `"` or `\` at or after `start`, or `bytes.count`: where a string
    /// being read ends or has an escape. Raw control characters are no stop: Kong's decoder
    /// accepts them inside strings. `sawControl` is set when the bytes passed over hold one.
    static func stringEndOrEscape(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, sawControl: inout Bool) -> Int {
        var index = start
        if let base = bytes.baseAddress {
            let quotes = Block(repeating: quote), backslashes = Block(repeating: backslash)
            let controls = Block(repeating: 0x20)
            var seen = SIMDMask<Block.MaskStorage>(repeating: false)
            while index + Block.scalarCount <= bytes.count {
                let block = UnsafeRawPointer(base + index).loadUnaligned(as: Block.self)
                if any((block .== quotes) .| (block .== backslashes)) { break }
                seen .|= block .< controls
                index += Block.scalarCount
            }
            if any(seen) { sawControl = true }
        }
        while index < bytes.count, bytes[index] != quote, bytes[index] != backslash {
            if bytes[index] < 0x20 { sawControl = true }
            index += 1
        }
        return index
    }

    /// Whether `bytes` are valid UTF-8 (what `String(decoding:as:)` keeps unchanged), checking
    /// sixteen ASCII bytes at a time until the first byte that is not.
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        if let base = bytes.baseAddress {
            let ascii = Block(repeating: 0x80)
            while index + Block.scalarCount <= bytes.count {
                let block = UnsafeRawPointer(base + index).loadUnaligned(as: Block.self)
                if any(block .>= ascii) { break }
                index += Block.scalarCount
            }
        }
        // From a sequence's first byte on (the bytes passed over were all ASCII).
        var iterator = UnsafeBufferPointer(rebasing: bytes[index...]).makeIterator()
        var decoder = Unicode.UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// The index of the first byte a JSON string must escape at or after `start`, or
    /// `bytes.count`: `"`, `\`, control characters, and `/` when `escapeSlashes`.
    static func escapeNeeded(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, escapeSlashes: Bool) -> Int {
        var index = start
        if let base = bytes.baseAddress {
            let quotes = Block(repeating: quote), backslashes = Block(repeating: backslash)
            let controls = Block(repeating: 0x20)
            // When slashes pass unescaped, this lane test repeats the quote test.
            let slashes = Block(repeating: escapeSlashes ? slash : quote)
            while index + Block.scalarCount <= bytes.count {
                let block = UnsafeRawPointer(base + index).loadUnaligned(as: Block.self)
                let hits = (block .< controls) .| (block .== quotes) .| (block .== backslashes) .| (block .== slashes)
                if any(hits) { break }
                index += Block.scalarCount
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x20 || byte == quote || byte == backslash || (escapeSlashes && byte == slash) { break }
            index += 1
        }
        return index
    }
}
