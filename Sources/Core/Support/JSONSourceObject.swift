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
    /// The parsed members (a repeated key keeps its last value, as Kong's decoder does).
    public let members: [String: JSONValue]
    private let source: ByteBuffer
    /// Where each member's value sits in `source`'s readable bytes.
    private let valueRanges: [String: Range<Int>]

    /// nil when the bytes are JSON but not an object.
    public init?(parsing source: ByteBuffer) throws(JSONParseError) {
        let parsed = source.withUnsafeReadableBytes { raw in
            JSONValue.parse(buffer: raw.assumingMemoryBound(to: UInt8.self), recordingMemberRanges: true)
        }
        let document = try parsed.get()
        guard case .object(let members) = document.value else { return nil }
        self.members = members
        self.source = source
        valueRanges = document.memberRanges
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
