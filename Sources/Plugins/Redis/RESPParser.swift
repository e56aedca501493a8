/// Reads RESP2/RESP3 values from bytes as they arrive from a socket.
///
/// `parse` returns nil until a whole value is there, so a caller appends what it read and asks
/// again; values are small (counters), so re-reading an incomplete value from its start is
/// cheaper than keeping a resumable state machine. Malformed or oversized input is an error,
/// never a crash: the connection is then closed.
struct RESPParser {
    struct ProtocolError: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// Nesting deeper than this is refused (a hostile peer cannot exhaust the stack).
    static let maxDepth = 32
    /// Largest bulk string or aggregate accepted (Redis's own `proto-max-bulk-len` is 512 MB).
    static let maxLength = 64 << 20

    /// The first value in `bytes[start...]` and the index after it; nil when it is incomplete.
    static func parse(_ bytes: [UInt8], from start: Int = 0) throws(ProtocolError) -> (value: RESPValue, end: Int)? {
        var reader = Reader(bytes: bytes, index: start)
        guard let value = try reader.value(depth: 0) else { return nil }
        return (value, reader.index)
    }

    private struct Reader {
        let bytes: [UInt8]
        var index: Int

        /// The line's text up to CRLF; nil when the CRLF has not arrived.
        mutating func line() throws(ProtocolError) -> String? {
            var i = index
            while i < bytes.count {
                if bytes[i] == 0x0D {
                    guard i + 1 < bytes.count else { return nil }
                    guard bytes[i + 1] == 0x0A else { throw ProtocolError(description: "CR without LF") }
                    let text = String(decoding: bytes[index..<i], as: UTF8.self)
                    index = i + 2
                    return text
                }
                if bytes[i] == 0x0A { throw ProtocolError(description: "LF without CR") }
                i += 1
            }
            return nil
        }

        mutating func integer() throws(ProtocolError) -> Int64? {
            guard let text = try line() else { return nil }
            guard let value = Int64(text) else { throw ProtocolError(description: "invalid integer '\(text.prefix(32))'") }
            return value
        }

        /// A length (`-1` allowed where `allowsNull`), bounded.
        mutating func length(allowsNull: Bool) throws(ProtocolError) -> Int?? {
            guard let value = try integer() else { return nil }
            if value == -1 && allowsNull { return .some(nil) }
            guard value >= 0, value <= RESPParser.maxLength else {
                throw ProtocolError(description: "invalid length \(value)")
            }
            return .some(Int(value))
        }

        /// `count` bytes then CRLF; nil when not all there.
        mutating func blob(_ count: Int) throws(ProtocolError) -> [UInt8]? {
            guard bytes.count - index >= count + 2 else { return nil }
            let blob = Array(bytes[index..<index + count])
            guard bytes[index + count] == 0x0D, bytes[index + count + 1] == 0x0A else {
                throw ProtocolError(description: "bulk string without its CRLF")
            }
            index += count + 2
            return blob
        }

        mutating func values(_ count: Int, depth: Int) throws(ProtocolError) -> [RESPValue]? {
            var items: [RESPValue] = []
            items.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                guard let item = try value(depth: depth + 1) else { return nil }
                items.append(item)
            }
            return items
        }

        mutating func value(depth: Int) throws(ProtocolError) -> RESPValue? {
            guard depth <= RESPParser.maxDepth else { throw ProtocolError(description: "nesting too deep") }
            guard index < bytes.count else { return nil }
            let type = bytes[index]
            index += 1
            switch type {
            case UInt8(ascii: "+"): return try line().map(RESPValue.simpleString)
            case UInt8(ascii: "-"): return try line().map(RESPValue.error)
            case UInt8(ascii: ":"): return try integer().map(RESPValue.integer)
            case UInt8(ascii: "$"):
                guard let length = try length(allowsNull: true) else { return nil }
                guard let length else { return .bulkString(nil) }
                return try blob(length).map { RESPValue.bulkString($0) }
            case UInt8(ascii: "*"):
                guard let count = try length(allowsNull: true) else { return nil }
                guard let count else { return .array(nil) }
                return try values(count, depth: depth).map { RESPValue.array($0) }
            case UInt8(ascii: "_"):
                guard let text = try line() else { return nil }
                guard text.isEmpty else { throw ProtocolError(description: "invalid null") }
                return .null
            case UInt8(ascii: "#"):
                guard let text = try line() else { return nil }
                switch text {
                case "t": return .boolean(true)
                case "f": return .boolean(false)
                default: throw ProtocolError(description: "invalid boolean '\(text.prefix(8))'")
                }
            case UInt8(ascii: ","):
                guard let text = try line() else { return nil }
                switch text {
                case "inf": return .double(.infinity)
                case "-inf": return .double(-.infinity)
                case "nan": return .double(.nan)
                default:
                    guard let value = Double(text) else { throw ProtocolError(description: "invalid double '\(text.prefix(32))'") }
                    return .double(value)
                }
            case UInt8(ascii: "("): return try line().map(RESPValue.bigNumber)
            case UInt8(ascii: "!"):
                guard let length = try length(allowsNull: false), let length else { return nil }
                return try blob(length).map { RESPValue.error(String(decoding: $0, as: UTF8.self)) }
            case UInt8(ascii: "="):
                guard let length = try length(allowsNull: false), let length else { return nil }
                guard let body = try blob(length) else { return nil }
                guard body.count >= 4, body[3] == UInt8(ascii: ":") else { throw ProtocolError(description: "invalid verbatim string") }
                return .verbatimString(String(decoding: body[4...], as: UTF8.self))
            case UInt8(ascii: "%"):
                guard let count = try length(allowsNull: false), let count else { return nil }
                guard count <= RESPParser.maxLength / 2, let items = try values(count * 2, depth: depth) else { return nil }
                return .map(stride(from: 0, to: items.count, by: 2).map { RESPPair(key: items[$0], value: items[$0 + 1]) })
            case UInt8(ascii: "~"):
                guard let count = try length(allowsNull: false), let count else { return nil }
                return try values(count, depth: depth).map { RESPValue.set($0) }
            case UInt8(ascii: ">"):
                guard let count = try length(allowsNull: false), let count else { return nil }
                return try values(count, depth: depth).map { RESPValue.push($0) }
            case UInt8(ascii: "|"):
                // RESP3 attributes annotate the value that follows: read and dropped.
                guard let count = try length(allowsNull: false), let count else { return nil }
                guard try values(count * 2, depth: depth) != nil else { return nil }
                return try value(depth: depth + 1)
            default:
                throw ProtocolError(description: "unknown type byte 0x\(String(type, radix: 16))")
            }
        }
    }
}
