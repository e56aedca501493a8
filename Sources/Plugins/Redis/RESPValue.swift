/// A value of the Redis serialization protocol, RESP2 and RESP3 (https://redis.io/docs/latest/develop/reference/protocol-spec/).
///
/// Bulk strings stay bytes: Redis values are binary-safe and the counters read them as numbers.
enum RESPValue: Equatable, Sendable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    /// nil: RESP2's null bulk string (`$-1`).
    case bulkString([UInt8]?)
    /// nil: RESP2's null array (`*-1`).
    case array([RESPValue]?)
    /// RESP3 `_`.
    case null
    case boolean(Bool)
    case double(Double)
    case bigNumber(String)
    /// RESP3 `=`: the text after its `xxx:` encoding prefix.
    case verbatimString(String)
    /// RESP3 `%`: key/value pairs in the order sent.
    case map([RESPPair])
    case set([RESPValue])
    /// RESP3 `>`: out-of-band messages (not replies to a command).
    case push([RESPValue])

    /// The value as text, for replies that carry one (simple, bulk and verbatim strings, numbers).
    var text: String? {
        switch self {
        case .simpleString(let s), .verbatimString(let s), .bigNumber(let s): return s
        case .bulkString(let bytes?): return String(decoding: bytes, as: UTF8.self)
        case .integer(let n): return String(n)
        case .double(let d): return String(d)
        default: return nil
        }
    }

    /// The value as a number: an integer, a double, or a string holding one (INCRBYFLOAT and GET
    /// answer bulk strings).
    var number: Double? {
        switch self {
        case .integer(let n): return Double(n)
        case .double(let d): return d
        default: return text.flatMap(Double.init)
        }
    }

    /// The wire form (what a server sends; the tests' mock server and round-trip checks use it).
    var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    func encode(into out: inout [UInt8]) {
        func line(_ prefix: Character, _ text: String) {
            out.append(UInt8(ascii: prefix.unicodeScalars.first!))
            out.append(contentsOf: text.utf8)
            out.append(contentsOf: [0x0D, 0x0A])
        }
        switch self {
        case .simpleString(let s): line("+", s)
        case .error(let s): line("-", s)
        case .integer(let n): line(":", String(n))
        case .bulkString(nil): line("$", "-1")
        case .bulkString(let bytes?):
            line("$", String(bytes.count))
            out.append(contentsOf: bytes)
            out.append(contentsOf: [0x0D, 0x0A])
        case .array(nil): line("*", "-1")
        case .array(let items?):
            line("*", String(items.count))
            for item in items { item.encode(into: &out) }
        case .null: line("_", "")
        case .boolean(let b): line("#", b ? "t" : "f")
        case .double(let d):
            line(",", d.isInfinite ? (d < 0 ? "-inf" : "inf") : d.isNaN ? "nan" : String(d))
        case .bigNumber(let s): line("(", s)
        case .verbatimString(let s):
            let body = Array("txt:\(s)".utf8)
            line("=", String(body.count))
            out.append(contentsOf: body)
            out.append(contentsOf: [0x0D, 0x0A])
        case .map(let pairs):
            line("%", String(pairs.count))
            for pair in pairs { pair.key.encode(into: &out); pair.value.encode(into: &out) }
        case .set(let items):
            line("~", String(items.count))
            for item in items { item.encode(into: &out) }
        case .push(let items):
            line(">", String(items.count))
            for item in items { item.encode(into: &out) }
        }
    }

    /// A command as the client sends it: an array of bulk strings.
    static func command(_ arguments: [String]) -> [UInt8] {
        RESPValue.array(arguments.map { .bulkString(Array($0.utf8)) }).encoded
    }
}

/// One entry of a RESP3 map (a struct, so that `RESPValue` stays `Equatable`).
struct RESPPair: Equatable, Sendable {
    let key: RESPValue
    let value: RESPValue
}
