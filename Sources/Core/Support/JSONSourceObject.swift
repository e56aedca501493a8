import NIOCore

/// A JSON object parsed from bytes that are kept: encoding it, or an object made from it, copies
/// each top-level member whose value did not change from those bytes instead of writing it again.
///
/// Why: an LLM request is nearly all `messages`, and ai-proxy sends most of it on unchanged (an
/// OpenAI-format provider gets the client's object with `model` and `stream` set). Re-encoding
/// that text byte by byte was a fifth of the gateway's work on a long conversation. A copied
/// member is the client's own spelling of the same value (`\u00e9` stays escaped, `/` stays
/// unescaped, spacing is kept), as equal to the re-encoded one as JSON can tell. Members spelled
/// in a way only a lenient reader takes, or the writer would change, are always written: raw
/// control characters or invalid UTF-8 in strings, lone surrogates, numbers like `1.0`, `-0`,
/// `1e2` or `007` (Kong's encoder writes `1`, `0`, `100`, `7`).
public struct JSONSourceObject: Sendable {
    /// The parsed members (a repeated key keeps its last value, as Kong's decoder does). In a
    /// skim, the members not kept hold their Lua truthiness (`null` and `false` as themselves,
    /// any other value as `true`), as `JSONValue.parse(bytes:skimmingAllBut:)` gives them.
    public let members: [String: JSONValue]
    /// The members built when this is a skim (`init(parsing:skimmingAllBut:)`); nil when all were.
    public let kept: Set<String>?
    private let source: ByteBuffer
    /// Where each member's value sits in `source`'s readable bytes.
    private let valueRanges: [String: Range<Int>]

    /// nil when the bytes are JSON but not an object.
    public init?(parsing source: ByteBuffer) throws(JSONParseError) {
        try self.init(parsing: source, keeping: nil)
    }

    /// Builds only the members named in `keeping`; the others are checked and stand in as their
    /// truthiness. Encoding copies them from the source bytes, so a skim serves a caller that
    /// reads only the kept members and passes the rest on. A member not kept whose bytes are not
    /// what the writer would write (see the type's note) could not be copied and is not built:
    /// then the whole object is parsed instead (`kept` is nil). nil when not an object.
    public init?(parsing source: ByteBuffer, skimmingAllBut keeping: Set<String>) throws(JSONParseError) {
        guard let skim = try JSONSourceObject(parsing: source, keeping: keeping) else { return nil }
        if skim.members.keys.contains(where: { !keeping.contains($0) && skim.valueRanges[$0] == nil }) {
            try self.init(parsing: source, keeping: nil)
        } else {
            self = skim
        }
    }

    private init?(parsing source: ByteBuffer, keeping: Set<String>?) throws(JSONParseError) {
        let parsed = source.withUnsafeReadableBytes { raw in
            JSONValue.parse(buffer: raw.assumingMemoryBound(to: UInt8.self), recordingMemberRanges: true, keeping: keeping)
        }
        let document = try parsed.get()
        guard case .object(let members) = document.value else { return nil }
        self.members = members
        kept = keeping
        self.source = source
        valueRanges = document.memberRanges
    }

    /// Whether member `key` is a non-empty array; read from its bytes when it was skimmed.
    public func isNonEmptyArray(_ key: String) -> Bool {
        guard let kept, !kept.contains(key) else { return members[key]?.arrayValue.map { !$0.isEmpty } ?? false }
        guard let range = valueRanges[key] else { return false }
        return source.withUnsafeReadableBytes { raw in
            guard raw[range.lowerBound] == UInt8(ascii: "[") else { return false }
            // The bytes are JSON: the first one after `[` and its whitespace says whether an item follows.
            var index = range.lowerBound + 1
            while index < range.upperBound, raw[index] == 0x20 || raw[index] == 0x09 || raw[index] == 0x0A || raw[index] == 0x0D {
                index += 1
            }
            return index < range.upperBound && raw[index] != UInt8(ascii: "]")
        }
    }

    /// `object` as JSON, in the dictionary's order. A member whose key and value this object
    /// has too is copied from the source bytes (equal values share storage, so the comparison
    /// stops at once for what was passed on untouched); the others are written.
    public func encode(_ object: [String: JSONValue], escapeSlashes: Bool = false) -> [UInt8] {
        let options = JSONWriteOptions(sortedKeys: false, escapeSlashes: escapeSlashes)
        var out: [UInt8] = []
        out.reserveCapacity(source.readableBytes + 256)
        out.append(UInt8(ascii: "{"))
        source.withUnsafeReadableBytes { raw in
            var first = true
            for (key, value) in object {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSONValue.writeString(key, to: &out, escapeSlashes: options.escapeSlashes)
                out.append(UInt8(ascii: ":"))
                if let range = valueRanges[key], let parsed = members[key], Self.same(parsed, value) {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[range]))
                } else {
                    value.write(into: &out, options: options)
                }
            }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `==`, with strings compared by their bytes: Swift's `==` takes canonically equivalent
    /// spellings (`é` and `e` + U+0301) as equal, and a member set to the other spelling must be
    /// written as set.
    private static func same(_ parsed: JSONValue, _ value: JSONValue) -> Bool {
        if case .string(let a) = parsed, case .string(let b) = value { return a.utf8.elementsEqual(b.utf8) }
        return parsed == value
    }
}
