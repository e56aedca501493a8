import Core
import Foundation
import NIOCore

/// Admin API request bodies (spec §3.1): JSON, form-urlencoded or multipart, with Kong's dotted
/// and bracket keys (`config.key_names[1]=apikey`, `paths[]=/a`, `service.id=<uuid>`) and
/// schema-driven coercion of form values.
enum RequestBodyDecoder {
    enum Failure: Error {
        case unsupportedMediaType
        case invalidJSON
        case multipleContentTypes
    }

    static func decode(_ request: AdminRequest, schema: RecordSchema?) throws(Failure) -> [String: JSONValue] {
        try decode(request) { _ in schema }
    }

    /// `coercions`: the schema a form body's values are coerced with, chosen from the body as
    /// assembled (a plugin's fields depend on its `name`).
    static func decode(_ request: AdminRequest,
                       coercions: ([String: JSONValue]) -> RecordSchema?) throws(Failure) -> [String: JSONValue] {
        if (request.headers["content-type"]?.count ?? 0) > 1 { throw .multipleContentTypes }
        guard !request.body.isEmpty else { return [:] }
        let contentType = request.header("content-type")?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        switch mediaType {
        case "application/json":
            guard case .object(let object)? = try? JSONValue.parse(bytes: request.body) else { throw .invalidJSON }
            return object
        case "application/x-www-form-urlencoded", "multipart/form-data":
            // One parser for form bodies, shared with the proxy's `kong.request.get_body()`.
            // The boundary is case-sensitive: hand over the header as sent.
            guard let fields = RequestBodyFields(contentType: request.header("content-type"), body: ByteBuffer(bytes: request.body)) else {
                return [:]
            }
            let pairs = fields.names.flatMap { name in (fields.values[name] ?? []).map { (name, $0) } }
            let assembled = assemble(pairs)
            return coerce(assembled, schema: coercions(assembled))
        default:
            throw .unsupportedMediaType
        }
    }

    /// Builds nested values from `a.b[1]`-style keys; repeated keys become arrays.
    /// Bounds on form keys: nesting depth and array positions (a key like `a[999999999]` must not
    /// make the decoder allocate without limit).
    static let maxDepth = 16
    static let maxIndex = 1000

    static func assemble(_ pairs: [(String, String)]) -> [String: JSONValue] {
        var root = JSONValue.object([:])
        for (key, value) in pairs {
            let path = parseKey(key)
            guard !path.isEmpty, path.count <= maxDepth else { continue }
            if path.contains(where: { if case .index(let i?) = $0 { return i > maxIndex || i < 0 } else { return false } }) {
                continue
            }
            insert(.string(value), at: path[...], into: &root)
        }
        return root.objectValue ?? [:]
    }

    enum KeyStep { case name(String), index(Int?) }

    static func parseKey(_ key: String) -> [KeyStep] {
        var steps: [KeyStep] = []
        var current = ""
        var i = key.startIndex
        while i < key.endIndex {
            let c = key[i]
            if c == "." {
                if !current.isEmpty { steps.append(.name(current)); current = "" }
            } else if c == "[" {
                if !current.isEmpty { steps.append(.name(current)); current = "" }
                guard let close = key[i...].firstIndex(of: "]") else { current.append(c); i = key.index(after: i); continue }
                let inside = key[key.index(after: i)..<close]
                steps.append(.index(Int(inside)))
                i = key.index(after: close)
                continue
            } else {
                current.append(c)
            }
            i = key.index(after: i)
        }
        if !current.isEmpty { steps.append(.name(current)) }
        return steps
    }

    static func insert(_ value: JSONValue, at path: ArraySlice<KeyStep>, into node: inout JSONValue) {
        guard let step = path.first else { return }
        let rest = path.dropFirst()
        switch step {
        case .name(let name):
            var object = node.objectValue ?? [:]
            if rest.isEmpty {
                if let existing = object[name] {
                    // A repeated key becomes an array.
                    object[name] = .array((existing.arrayValue ?? [existing]) + [value])
                } else {
                    object[name] = value
                }
            } else {
                var child = object[name] ?? (isIndex(rest.first) ? .array([]) : .object([:]))
                insert(value, at: rest, into: &child)
                object[name] = child
            }
            node = .object(object)
        case .index(let position):
            var array = node.arrayValue ?? []
            let index = position.map { max(0, $0 - 1) } ?? array.count  // 1-based as in Kong; `[]` appends
            while array.count <= index { array.append(.null) }
            if rest.isEmpty {
                array[index] = value
            } else {
                var child = array[index].isNull ? (isIndex(rest.first) ? .array([]) : .object([:])) : array[index]
                insert(value, at: rest, into: &child)
                array[index] = child
            }
            node = .array(array)
        }
    }

    static func isIndex(_ step: KeyStep?) -> Bool {
        if case .index? = step { return true }
        return false
    }

    /// Form values are strings: make them what the schema expects.
    static func coerce(_ object: [String: JSONValue], schema: RecordSchema?) -> [String: JSONValue] {
        guard let schema else { return object }
        var out = object
        for (name, value) in object {
            guard let field = schema.field(named: name) else { continue }
            out[name] = coerce(value, field: field)
        }
        return out
    }

    static func coerce(_ value: JSONValue, field: Field) -> JSONValue {
        if case .string(let s) = value, s.isEmpty { return .null }
        switch field.kind {
        case .integer, .number:
            if case .string(let s) = value, let n = Double(s) { return .number(n) }
        case .boolean:
            if value == "true" { return true }
            if value == "false" { return false }
        case .array(let element), .set(let element):
            let items = value.arrayValue ?? [value]
            return .array(items.map { coerce($0, field: element) })
        case .record(let record):
            if case .object(let members) = value { return .object(coerce(members, schema: record)) }
        case .foreign:
            if case .string(let s) = value { return ["id": .string(s)] }
        default:
            break
        }
        return value
    }

}
