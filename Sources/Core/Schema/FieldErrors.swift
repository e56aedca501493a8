/// The error tree of a failed validation, shaped as Kong's `fields` object: field errors keyed by
/// field name (nested for records, positional for arrays), entity-check errors under `@entity`.
public struct ErrorRecord: Error, Sendable, Equatable {
    public var fields: [String: FieldError] = [:]
    public var entity: [String] = []

    public init(fields: [String: FieldError] = [:], entity: [String] = []) {
        self.fields = fields
        self.entity = entity
    }

    public var isEmpty: Bool { fields.isEmpty && entity.isEmpty }

    public subscript(field: String) -> FieldError? {
        get { fields[field] }
        set { fields[field] = newValue }
    }

    /// Kong's `set_field`: a dotted name addresses nested records.
    public mutating func set(path: String, _ error: FieldError) {
        guard let dot = path.firstIndex(of: ".") else {
            fields[path] = error
            return
        }
        let head = String(path[..<dot])
        let tail = String(path[path.index(after: dot)...])
        var inner: ErrorRecord
        if case .record(let existing) = fields[head] { inner = existing } else { inner = ErrorRecord() }
        inner.set(path: tail, error)
        fields[head] = .record(inner)
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = fields.mapValues(\.json)
        if !entity.isEmpty { object["@entity"] = .array(entity.map(JSONValue.string)) }
        return .object(object)
    }
}

public indirect enum FieldError: Sendable, Equatable {
    case message(String)
    /// Element errors by 0-based position (rendered as a JSON array with nulls at valid positions).
    case list([Int: FieldError])
    case record(ErrorRecord)

    public var json: JSONValue {
        switch self {
        case .message(let m): return .string(m)
        case .record(let r): return r.json
        case .list(let items):
            let count = (items.keys.max() ?? -1) + 1
            return .array((0..<count).map { items[$0]?.json ?? .null })
        }
    }

    public var message: String? { if case .message(let m) = self { return m } else { return nil } }
}

/// Kong's error messages (`kong/db/schema/init.lua` validation_errors), in one place.
enum SchemaMessages {
    static let required = "required field missing"
    static let unknownField = "unknown field"
    static let requiredForEntityCheck = "field required for entity check"
    static let missingPrimaryKey = "missing primary key"

    static func typeMismatch(_ kind: Field.Kind) -> String {
        switch kind {
        case .string: return "expected a string"
        case .integer: return "expected an integer"
        case .number: return "expected a number"
        case .boolean: return "expected a boolean"
        case .array: return "expected an array"
        case .set: return "expected a set"
        case .map: return "expected a map"
        case .record, .abstractRecord, .foreign: return "expected a record"
        }
    }

    /// `'a', 'b'`
    static func quoted(_ names: [String]) -> String { names.map { "'\($0)'" }.joined(separator: ", ") }

    static func atLeastOneOf(_ list: String, updating: Bool) -> String {
        (updating ? "when updating, " : "") + "at least one of these fields must be non-empty: \(list)"
    }
}

extension JSONValue {
    /// Lua's `tostring` as Kong's messages use it: strings bare, integral numbers without `.0`.
    var luaText: String {
        switch self {
        case .string(let s): return s
        case .number(let n): return JSONValue.formatNumber(n)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array, .object: return serialized()
        }
    }
}
