#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small JSON reader and writer for `JSONValue`.
///
/// Why not Foundation: its JSONSerialization blurs booleans and numbers on Linux, rejects the raw
/// control characters inside strings that Kong's decoder accepts, and is slow enough to matter
/// once this runs on the proxy path.
public struct JSONParseError: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public let offset: Int
    public var description: String { "\(message) at character \(offset + 1)" }
}

extension JSONValue {
    /// Parses one JSON document (surrounding whitespace allowed).
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try parse(bytes: Array(text.utf8))
    }

    /// Reads the bytes where they are when they are contiguous (an `Array`, a `ByteBuffer`'s
    /// view): a request body is not copied to be parsed.
    public static func parse<Bytes: Collection>(bytes: Bytes) throws(JSONParseError) -> JSONValue
    where Bytes.Element == UInt8 {
        let result = bytes.withContiguousStorageIfAvailable(parse(buffer:))
            ?? Array(bytes).withUnsafeBufferPointer(parse(buffer:))
        return try result.get()
    }

    private static func parse(buffer: UnsafeBufferPointer<UInt8>) -> Result<JSONValue, JSONParseError> {
        parse(buffer: buffer, recordingMemberRanges: false).map(\.value)
    }

    /// The document when it is an object of which only the members named in `keeping` are
    /// needed: the others are read to check they are JSON (the same errors as a full parse) but
    /// not built, and stand in as their Lua truthiness (`null` and `false` as themselves, any
    /// other value as `true`). Why: ai-proxy forwards an OpenAI-format answer as the upstream
    /// wrote it and reads only its `usage` and `model`; building `choices` (or an embedding's
    /// thousands of numbers) only to drop them was most of the answer's cost.
    public static func parse(bytes: [UInt8], skimmingAllBut keeping: Set<String>) throws(JSONParseError) -> JSONValue {
        let result = bytes.withUnsafeBufferPointer { buffer -> Result<JSONValue, JSONParseError> in
            var reader = JSONReader(bytes: buffer)
            reader.kept = keeping
            return reader.readDocument()
        }
        return try result.get()
    }

    /// The document, and where each top-level member's value sits in `buffer` when
    /// `recordingMemberRanges` (and the document is an object). `keeping`: only those top-level
    /// members are built, as `parse(bytes:skimmingAllBut:)` builds them.
    static func parse(buffer: UnsafeBufferPointer<UInt8>, recordingMemberRanges: Bool, keeping: Set<String>? = nil)
        -> Result<(value: JSONValue, memberRanges: [String: Range<Int>]), JSONParseError>
    {
        var reader = JSONReader(bytes: buffer)
        reader.recordsMemberRanges = recordingMemberRanges
        reader.kept = keeping
        return reader.readDocument().map { ($0, reader.memberRanges) }
    }
}

/// Reads one document from bytes that stay valid while it runs (`JSONValue.parse` lends them).
private struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    static let maxDepth = 512

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var atEnd: Bool { index >= bytes.count }

    func error(_ message: String) -> JSONParseError { JSONParseError(message: message, offset: index) }

    /// The one value the bytes hold, with nothing but whitespace around it.
    mutating func readDocument() -> Result<JSONValue, JSONParseError> {
        do throws(JSONParseError) {
            skipWhitespace()
            let value = try readValue(depth: 0)
            skipWhitespace()
            guard atEnd else { throw error("Expected the end but found invalid token") }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func readValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < Self.maxDepth else { throw error("Too many nested data structures") }
        guard index < bytes.count else { throw error("Expected value but found T_END") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try readObject(depth: depth)
        case UInt8(ascii: "["): return try readArray(depth: depth)
        case UInt8(ascii: "\""):
            if discarding { try skipString(); return .null }
            return .string(try readString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try readNumber())
        default: throw error("Expected value but found invalid token")
        }
    }

    mutating func expectWord(_ word: StaticString) throws(JSONParseError) {
        let start = index
        for byte in UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount) {
            guard index < bytes.count, bytes[index] == byte else {
                index = start
                throw error("Expected value but found invalid token")
            }
            index += 1
        }
    }

    /// Members of the objects being read, innermost last: an object's dictionary is made once
    /// its members are known, at its final size, instead of growing (and rehashing) per member.
    var members: [(key: String, value: JSONValue)] = []
    /// Whether `memberRanges` is filled: the byte range of each value of the document's own
    /// (top-level) object, the last one of a repeated key, when those bytes are what the writer
    /// would write for the value up to JSON's own equivalences (escapes, spacing).
    var recordsMemberRanges = false
    var memberRanges: [String: Range<Int>] = [:]
    /// Whether the top-level member being read was spelled in a way only a lenient reader takes
    /// or the writer would change: a raw control character or invalid UTF-8 in a string, an
    /// escaped lone surrogate, a number not in the writer's form (`1.0`, `-0`, `1e2`, `007`).
    /// Reset before each top-level member and read only when recording; the checks that cost
    /// anything (UTF-8, number text) run only then.
    var lenient = false
    /// When set, the only top-level members built (`JSONValue.parse(bytes:skimmingAllBut:)`).
    var kept: Set<String>?
    /// Whether the value being read is checked but not built (a top-level member not kept).
    var discarding = false

    mutating func readObject(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object([:]) }
        let first = members.count
        // The scratch list is shared by every object of the document: room for a typical one at
        // once instead of growing 1, 2, 4, 8 on the first.
        if members.capacity == 0 { members.reserveCapacity(8) }
        if recordsMemberRanges && depth == 0 && memberRanges.isEmpty { memberRanges.reserveCapacity(8) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw error("Expected object key string but found invalid token")
            }
            // A member of a value being skipped: checked, not built (its key is not made either).
            let key: String
            if discarding { try skipString(); key = "" } else { key = try readString() }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw error("Expected colon but found invalid token")
            }
            index += 1
            skipWhitespace()
            let valueStart = index
            if depth == 0 { lenient = false }
            let value: JSONValue
            if depth == 0, let kept, !kept.contains(key) {
                discarding = true
                _ = try readValue(depth: depth + 1)
                discarding = false
                switch bytes[valueStart] {
                case UInt8(ascii: "n"): value = .null
                case UInt8(ascii: "f"): value = .bool(false)
                default: value = .bool(true)
                }
            } else {
                value = try readValue(depth: depth + 1)
            }
            if !discarding {
                if recordsMemberRanges && depth == 0 {
                    memberRanges[key] = lenient ? nil : valueStart..<index
                }
                members.append((key, value))
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("Expected comma or object end but found T_END") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; break }
            throw error("Expected comma or object end but found invalid token")
        }
        if discarding { return .null }
        var object = [String: JSONValue](minimumCapacity: members.count - first)
        for member in members[first...] { object[member.key] = member.value }  // a repeated key: the last wins
        members.removeSubrange(first...)
        return .object(object)
    }

    mutating func readArray(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1
        var array: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
        while true {
            skipWhitespace()
            let item = try readValue(depth: depth + 1)
            if !discarding { array.append(item) }
            skipWhitespace()
            guard index < bytes.count else { throw error("Expected comma or array end but found T_END") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
            throw error("Expected comma or array end but found invalid token")
        }
    }

    /// Reads a string starting at the opening quote. Raw control characters are accepted, as
    /// Kong's decoder does (LLM-produced JSON often carries literal newlines).
    mutating func readString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Raw control characters make the value one the writer would write otherwise.
        var sawControl = false
        defer { if sawControl { lenient = true } }
        let stop = JSONByteScan.stringEndOrEscape(in: bytes, from: start, sawControl: &sawControl)
        // Most strings have no escape: made straight from their bytes, without a copy to build.
        if stop < bytes.count, bytes[stop] == UInt8(ascii: "\"") {
            index = stop + 1
            return makeString(UnsafeBufferPointer(rebasing: bytes[start..<stop]))
        }
        var scalars: [UInt8] = []
        scalars.reserveCapacity(stop - start + 64)
        var runStart = start, runEnd = stop
        while true {
            // The run up to the next quote or backslash, copied whole.
            scalars.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<runEnd]))
            index = runEnd
            guard index < bytes.count else { throw error("Expected string end but found T_END") }
            if bytes[index] == UInt8(ascii: "\"") { index += 1; break }
            index += 1
            guard index < bytes.count else { throw error("Expected escape but found T_END") }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append(0x22)
            case UInt8(ascii: "\\"): scalars.append(0x5C)
            case UInt8(ascii: "/"): scalars.append(0x2F)
            case UInt8(ascii: "b"): scalars.append(0x08)
            case UInt8(ascii: "f"): scalars.append(0x0C)
            case UInt8(ascii: "n"): scalars.append(0x0A)
            case UInt8(ascii: "r"): scalars.append(0x0D)
            case UInt8(ascii: "t"): scalars.append(0x09)
            case UInt8(ascii: "u"):
                var code = try readHex4()
                if (0xD800...0xDBFF).contains(code), index + 1 < bytes.count,
                   bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    index += 2
                    let low = try readHex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        Self.appendUTF8(0xFFFD, to: &scalars)
                        lenient = true
                        code = low
                    }
                }
                if Unicode.Scalar(code) == nil {  // a lone surrogate
                    lenient = true
                    code = 0xFFFD
                }
                Self.appendUTF8(code, to: &scalars)
            default:
                index -= 1
                throw error("Expected valid escape but found invalid token")
            }
            runStart = index
            runEnd = JSONByteScan.stringEndOrEscape(in: bytes, from: index, sawControl: &sawControl)
        }
        return scalars.withUnsafeBufferPointer { makeString($0) }
    }

    /// Reads past a string starting at its opening quote, checking its escapes as `readString`
    /// does, without making it. When recording member ranges it notes, as `readString` does, a
    /// spelling the writer would change (a raw control character, invalid UTF-8, a lone
    /// surrogate): a skipped member's bytes are copied only when they are what would be written.
    mutating func skipString() throws(JSONParseError) {
        var sawControl = false
        let checks = recordsMemberRanges && !lenient
        defer { if sawControl && checks { lenient = true } }
        index += 1
        while true {
            let runStart = index
            var sawNonASCII = false
            index = JSONByteScan.stringEndOrEscape(in: bytes, from: index, sawControl: &sawControl, sawNonASCII: &sawNonASCII)
            if checks && sawNonASCII && !lenient
                && !JSONByteScan.isValidUTF8(UnsafeBufferPointer(rebasing: bytes[runStart..<min(index, bytes.count)])) {
                lenient = true
            }
            guard index < bytes.count else { throw error("Expected string end but found T_END") }
            if bytes[index] == UInt8(ascii: "\"") { index += 1; return }
            index += 1
            guard index < bytes.count else { throw error("Expected escape but found T_END") }
            switch bytes[index] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                 UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                index += 1
            case UInt8(ascii: "u"):
                index += 1
                let code = try readHex4()
                guard checks else { continue }
                if (0xD800...0xDBFF).contains(code), index + 1 < bytes.count,
                   bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    // A high surrogate and its low one make one scalar; anything else is lone.
                    index += 2
                    if !(0xDC00...0xDFFF).contains(try readHex4()) { lenient = true }
                } else if (0xD800...0xDFFF).contains(code) {
                    lenient = true
                }
            default:
                throw error("Expected valid escape but found invalid token")
            }
        }
    }

    /// Invalid UTF-8 is repaired (U+FFFD), and noted when recording: the string's bytes then
    /// differ from the ones read.
    private mutating func makeString(_ utf8: UnsafeBufferPointer<UInt8>) -> String {
        var string = String(decoding: utf8, as: UTF8.self)
        if recordsMemberRanges && !lenient {
            let unchanged = string.withUTF8 { decoded in
                decoded.count == utf8.count
                    && (decoded.isEmpty || memcmp(decoded.baseAddress!, utf8.baseAddress!, decoded.count) == 0)
            }
            if !unchanged { lenient = true }
        }
        return string
    }

    mutating func readHex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("Expected unicode escape but found T_END") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("Expected unicode escape but found invalid token")
            }
            value = value * 16 + digit
            index += 1
        }
        return value
    }

    static func appendUTF8(_ code: UInt32, to out: inout [UInt8]) {
        guard let scalar = Unicode.Scalar(code), let encoded = UTF8.encode(scalar) else { return }
        out.append(contentsOf: encoded)
    }

    mutating func readNumber() throws(JSONParseError) -> Double {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        func digits(_ r: inout JSONReader) -> Int {
            let s = r.index
            while r.index < r.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(r.bytes[r.index]) {
                r.index += 1
            }
            return r.index - s
        }
        guard digits(&self) > 0 else { throw error("Expected value but found invalid number") }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw error("Expected value but found invalid number") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard digits(&self) > 0 else { throw error("Expected value but found invalid number") }
        }
        // A plain integer small enough to be exact is read without going through text.
        let count = index - start
        if count <= 15, !bytes[start..<index].contains(where: { $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") }) {
            var value = 0
            for byte in bytes[start..<index] where byte != UInt8(ascii: "-") { value = value * 10 + Int(byte - UInt8(ascii: "0")) }
            // `-0` is written `0`; a leading zero (`007`) is JSON only to a lenient reader.
            let firstDigit = bytes[start] == UInt8(ascii: "-") ? start + 1 : start
            if bytes[firstDigit] == UInt8(ascii: "0") && (index - firstDigit > 1 || firstDigit > start) { lenient = true }
            if bytes[start] == UInt8(ascii: "-") { return value == 0 ? -0.0 : -Double(value) }
            return Double(value)
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard let value = Double(text) else { throw error("Expected value but found invalid number") }
        if recordsMemberRanges && !lenient && JSONValue.formatNumber(value) != text { lenient = true }
        return value
    }
}

// MARK: - Writing

public struct JSONWriteOptions: Sendable {
    /// Sort object keys: deterministic output for tests, hashes and exports.
    public var sortedKeys = true
    /// Kong's encoder (lua-cjson) escapes `/` as `\/` and DEL as `\u007f`.
    public var escapeSlashes = false
    public var pretty = false
    public init(sortedKeys: Bool = true, escapeSlashes: Bool = false, pretty: Bool = false) {
        self.sortedKeys = sortedKeys
        self.escapeSlashes = escapeSlashes
        self.pretty = pretty
    }
}

extension JSONWriteOptions {
    /// Kong's encoder (cjson) as clients see it: `/` escaped; keys sorted for determinism.
    public static let kong = JSONWriteOptions(sortedKeys: true, escapeSlashes: true)
}

extension JSONValue {
    public func serialized(_ options: JSONWriteOptions = JSONWriteOptions()) -> String {
        String(decoding: serializedBytes(options), as: UTF8.self)
    }

    /// The UTF-8 encoding, written into one byte buffer (log lines and bodies are built here on
    /// every request: no per-character String appends). `capacity`: the expected size, when
    /// known (a re-encoded request body is about as long as the one received), so a large body
    /// is not grown and copied a dozen times.
    public func serializedBytes(_ options: JSONWriteOptions = JSONWriteOptions(), reservingCapacity capacity: Int = 256) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        write(to: &out, options: options, indent: 0)
        return out
    }

    /// Appends the serialization to `out` (no indentation).
    func write(into out: inout [UInt8], options: JSONWriteOptions) {
        write(to: &out, options: options, indent: 0)
    }

    private func write(to out: inout [UInt8], options: JSONWriteOptions, indent: Int) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): JSONValue.writeNumber(n, to: &out)
        case .string(let s): JSONValue.writeString(s, to: &out, escapeSlashes: options.escapeSlashes)
        case .array(let items):
            if items.isEmpty { out.append(contentsOf: "[]".utf8); return }
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if options.pretty { JSONValue.newline(&out, indent: indent + 1) }
                item.write(to: &out, options: options, indent: indent + 1)
            }
            if options.pretty { JSONValue.newline(&out, indent: indent) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            if members.isEmpty { out.append(contentsOf: "{}".utf8); return }
            out.append(UInt8(ascii: "{"))
            func writeMember(_ key: String, _ value: JSONValue, first: Bool) {
                if !first { out.append(UInt8(ascii: ",")) }
                if options.pretty { JSONValue.newline(&out, indent: indent + 1) }
                JSONValue.writeString(key, to: &out, escapeSlashes: options.escapeSlashes)
                out.append(UInt8(ascii: ":"))
                if options.pretty { out.append(UInt8(ascii: " ")) }
                value.write(to: &out, options: options, indent: indent + 1)
            }
            if options.sortedKeys {
                // Sorted by the keys' UTF-8 bytes (code point order): String's `<` compares Unicode
                // canonically, which costs far more and orders the same keys the same way here.
                // The members' positions, sorted on the stack: no array of copied members.
                withUnsafeTemporaryAllocation(of: (prefix: UInt64, index: [String: JSONValue].Index).self,
                                              capacity: members.count) { keyed in
                    var count = 0
                    var index = members.startIndex
                    while index != members.endIndex {
                        keyed.initializeElement(at: count, to: (JSONValue.utf8SortPrefix(members[index].key), index))
                        count += 1
                        members.formIndex(after: &index)
                    }
                    var sorted = UnsafeMutableBufferPointer(rebasing: keyed[..<count])
                    sorted.sort { a, b in
                        JSONValue.utf8Order(members[a.index].key, prefix: a.prefix, members[b.index].key, prefix: b.prefix) < 0
                    }
                    for (i, entry) in sorted.enumerated() {
                        let member = members[entry.index]
                        writeMember(member.key, member.value, first: i == 0)
                    }
                    _ = sorted.deinitialize()
                }
            } else {
                // In the dictionary's own order: no array of its members to make.
                var first = true
                for (key, value) in members {
                    writeMember(key, value, first: first)
                    first = false
                }
            }
            if options.pretty { JSONValue.newline(&out, indent: indent) }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Whether `a` sorts before `b` by UTF-8 bytes.
    static func utf8Precedes(_ a: String, _ b: StaticString) -> Bool {
        var a = a
        return a.withUTF8 { x in
            let common = min(x.count, b.utf8CodeUnitCount)
            if common > 0, let px = x.baseAddress {
                let order = memcmp(px, b.utf8Start, common)
                if order != 0 { return order < 0 }
            }
            return x.count < b.utf8CodeUnitCount
        }
    }

    /// A string's first eight UTF-8 bytes as one big-endian integer, zero-padded (a shorter string
    /// sorts first among those sharing its bytes, as in byte order): strings whose prefixes differ
    /// are ordered by one integer comparison; only equal prefixes need `utf8Order`.
    static func utf8SortPrefix(_ string: String) -> UInt64 {
        var string = string
        return string.withUTF8 { bytes in
            let count = min(bytes.count, 8)
            var prefix: UInt64 = 0
            for index in 0..<count { prefix = prefix << 8 | UInt64(bytes[index]) }
            return count == 0 ? 0 : prefix << (8 * UInt64(8 - count))
        }
    }

    /// `utf8Order(a, b)` given their `utf8SortPrefix` values: one integer comparison unless the
    /// prefixes are equal.
    static func utf8Order(_ a: String, prefix aPrefix: UInt64, _ b: String, prefix bPrefix: UInt64) -> Int {
        aPrefix != bPrefix ? (aPrefix < bPrefix ? -1 : 1) : utf8Order(a, b)
    }

    /// `a` compared with `b` by UTF-8 bytes: negative, zero or positive.
    static func utf8Order(_ a: String, _ b: String) -> Int {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                let common = min(x.count, y.count)
                if common > 0, let px = x.baseAddress, let py = y.baseAddress {
                    let order = memcmp(px, py, common)
                    if order != 0 { return Int(order) }
                }
                return x.count - y.count
            }
        }
    }

    /// Whether `a` sorts before `b` by UTF-8 bytes.
    static func utf8Precedes(_ a: String, _ b: String) -> Bool { utf8Order(a, b) < 0 }

    private static func newline(_ out: inout [UInt8], indent: Int) {
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * indent))
    }

    /// Integral values print without a fractional part (as Kong does); others in the shortest
    /// form that reads back to the same Double.
    public static func formatNumber(_ n: Double) -> String {
        if n.isNaN || n.isInfinite { return "null" }
        if n == n.rounded(.towardZero), abs(n) < 1e15 { return String(Int64(n)) }
        return "\(n)"
    }

    /// `formatNumber(n)`, appended without making a string for the common integral case.
    static func writeNumber(_ n: Double, to out: inout [UInt8]) {
        guard n == n.rounded(.towardZero), abs(n) < 1e15 else {
            out.append(contentsOf: formatNumber(n).utf8)  // NaN and infinities too
            return
        }
        let value = Int64(n)
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64) = (0, 0)  // 16 bytes: |value| < 10^15 has at most 15 digits
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: buffer[start...])
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Copies runs of bytes that need no escaping in one go; UTF-8 above ASCII is kept as is.
    static func writeString(_ s: String, to out: inout [UInt8], escapeSlashes: Bool) {
        out.append(UInt8(ascii: "\""))
        writeEscaped(s, to: &out, escapeSlashes: escapeSlashes)
        out.append(UInt8(ascii: "\""))
    }

    /// A string's contents as they appear between its quotes. Runs that need no escape are
    /// found a block at a time and copied whole.
    static func writeEscaped(_ s: String, to out: inout [UInt8], escapeSlashes: Bool) {
        var text = s
        text.withUTF8 { writeEscaped($0, to: &out, escapeSlashes: escapeSlashes) }
    }

    static func writeEscaped(_ s: Substring, to out: inout [UInt8], escapeSlashes: Bool) {
        var text = s
        text.withUTF8 { writeEscaped($0, to: &out, escapeSlashes: escapeSlashes) }
    }

    private static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8], escapeSlashes: Bool) {
        var runStart = 0
        while true {
            let stop = JSONByteScan.escapeNeeded(in: bytes, from: runStart, escapeSlashes: escapeSlashes)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<stop]))
            guard stop < bytes.count else { return }
            appendEscape(bytes[stop], to: &out)
            runStart = stop + 1
        }
    }

    /// The escape of one byte `JSONByteScan.escapeNeeded` stopped at.
    private static func appendEscape(_ byte: UInt8, to out: inout [UInt8]) {
        let escape: StaticString
        switch byte {
        case UInt8(ascii: "\""): escape = "\\\""
        case UInt8(ascii: "\\"): escape = "\\\\"
        case UInt8(ascii: "/"): escape = "\\/"
        case UInt8(ascii: "\n"): escape = "\\n"
        case UInt8(ascii: "\r"): escape = "\\r"
        case UInt8(ascii: "\t"): escape = "\\t"
        case 0x08: escape = "\\b"
        case 0x0C: escape = "\\f"
        default:
            out.append(contentsOf: "\\u00".utf8)
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0xF)])
            return
        }
        out.append(contentsOf: UnsafeBufferPointer(start: escape.utf8Start, count: escape.utf8CodeUnitCount))
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { serialized() }
}
