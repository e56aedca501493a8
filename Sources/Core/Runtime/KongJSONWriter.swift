/// Writes JSON token by token as Kong's encoder writes it (cjson: `/` escaped, integral numbers
/// without a fraction), for documents whose member order the caller knows: nothing is sorted
/// here, so members must come in the UTF-8 byte order of their names, as `JSONWriteOptions.kong`
/// orders a dictionary's keys. The log line and the typed log values write through it.
public struct KongJSONWriter {
    public internal(set) var out: [UInt8]
    /// Whether the object being written has no member yet (one flag is enough: members are written
    /// depth first, and every nested object is finished before its parent continues).
    private var firstMember = true

    public init(appendingTo out: [UInt8] = []) { self.out = out }

    public mutating func open() {
        out.append(UInt8(ascii: "{"))
        firstMember = true
    }

    public mutating func close() {
        out.append(UInt8(ascii: "}"))
        firstMember = false  // the object just closed is a member of its parent
    }

    public mutating func member(_ name: StaticString) {
        if !firstMember { out.append(UInt8(ascii: ",")) }
        firstMember = false
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        out.append(contentsOf: "\":".utf8)
    }

    /// A name known only at run time, escaped as needed. (Named apart from the `StaticString`
    /// overload: given a literal, Swift would pick a `String` overload, its default literal type,
    /// and scan every fixed name for escapes.)
    public mutating func member(escaping name: String) {
        if !firstMember { out.append(UInt8(ascii: ",")) }
        firstMember = false
        JSONValue.writeString(name, to: &out, escapeSlashes: true)
        out.append(UInt8(ascii: ":"))
    }

    public mutating func string(_ value: String) {
        JSONValue.writeString(value, to: &out, escapeSlashes: true)
    }

    /// The string, or `null` when there is none.
    public mutating func string(orNull value: String?) {
        if let value { string(value) } else { null() }
    }

    /// As `JSONValue.number` writes it.
    public mutating func number(_ value: Double) {
        JSONValue.writeNumber(value, to: &out)
    }

    /// As `JSONValue.number(Double(value))` writes it.
    public mutating func integer(_ value: Int64) {
        JSONValue.writeNumber(Double(value), to: &out)
    }

    public mutating func null() {
        out.append(contentsOf: "null".utf8)
    }

    public mutating func literal(_ text: StaticString) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A whole value, written as `JSONWriteOptions.kong` writes it (its objects' keys sorted).
    public mutating func value(_ value: JSONValue) {
        value.write(into: &out, options: .kong)
    }

    /// Bytes that already are JSON in Kong's encoding (an entity serialized once per configuration).
    mutating func encoded(_ bytes: [UInt8]) {
        out.append(contentsOf: bytes)
    }

    /// An array's brackets and separators; `firstMember` is kept for the object around it.
    mutating func openArray() { out.append(UInt8(ascii: "[")) }
    mutating func closeArray() { out.append(UInt8(ascii: "]")) }
    mutating func separator() { out.append(UInt8(ascii: ",")) }
}

/// A value in the log record that its plugin keeps typed and writes itself (ai-proxy's
/// `ai.proxy`): the log line then writes it straight to bytes, without building and sorting
/// dictionaries on the request's loop and again on the log thread.
public protocol TypedLogValue: Sendable {
    /// The same document as a value (the serializer's value form, and merges with what other
    /// plugins put under the same name).
    var jsonValue: JSONValue { get }
    /// Writes exactly what `jsonValue` writes with `JSONWriteOptions.kong`.
    func write(to json: inout KongJSONWriter)
}

/// A member of a top-level log-record object (`ai` → `proxy`) kept as a `TypedLogValue`.
public struct TypedLogMember: Sendable {
    public let field: String
    public let member: String
    public let value: any TypedLogValue
}
