/// A JSON (or YAML-decoded) value as Kong's schema engine sees it.
///
/// Kong works on Lua tables; this is their typed counterpart. Numbers are one case, as in Lua:
/// "integer" is a property of the value (finite, no fractional part), not of its spelling.
/// Objects are plain dictionaries: Kong's key order is not significant, and every place that
/// prints objects sorts the keys so output is deterministic.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue {
    public var isNull: Bool { if case .null = self { return true } else { return false } }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var numberValue: Double? { if case .number(let n) = self { return n } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }

    /// The value as an integer when it is a finite number with no fractional part.
    public var intValue: Int? {
        guard case .number(let n) = self, n.isFinite, n.rounded(.towardZero) == n,
              abs(n) < 9.2e18 else { return nil }
        return Int(n)
    }

    /// Member lookup on objects; `nil` when absent or when self is not an object.
    public subscript(key: String) -> JSONValue? {
        get { objectValue?[key] }
        set {
            guard case .object(var o) = self else { return }
            o[key] = newValue
            self = .object(o)
        }
    }

    /// Kong's notion of "non-empty": not null/absent, not "", not an empty array or object.
    public var isNonEmpty: Bool {
        switch self {
        case .null: return false
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .bool, .number: return true
        }
    }
}

extension Optional where Wrapped == JSONValue {
    /// Absent or JSON null.
    public var isNullOrAbsent: Bool {
        switch self {
        case .none, .some(.null): return true
        default: return false
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}
