import Core

/// The provider drivers' request/response conversions (spec §2.6/§2.7), one nested enum per
/// provider family. Everything here is pure: JSON in, JSON out.
enum LLMDrivers {
    /// The members of a JSON object; empty for anything else (Lua indexing a non-table member
    /// yields nil, which is how Kong's drivers treat malformed parts).
    static func fields(_ value: JSONValue?) -> [String: JSONValue] { value?.objectValue ?? [:] }

    /// A non-empty JSON array (Kong's `type(t) == "table" and #t > 0` on lists).
    static func nonEmptyArray(_ value: JSONValue?) -> [JSONValue]? {
        guard let items = value?.arrayValue, !items.isEmpty else { return nil }
        return items
    }
}

/// The pieces of Lua/cjson semantics Kong's drivers rely on, so the conversions read like the
/// spec rather than like a port.
enum LuaSemantics {
    /// Lua truthiness of a decoded JSON member: absent and `false` are falsy. JSON `null` is
    /// truthy, because cjson decodes it to a sentinel value rather than `nil`.
    static func truthy(_ value: JSONValue?) -> Bool {
        switch value {
        case .none, .some(.bool(false)): return false
        default: return true
        }
    }

    /// Lua's `value or fallback`.
    static func or(_ value: JSONValue?, _ fallback: JSONValue) -> JSONValue {
        truthy(value) ? value! : fallback
    }

    /// What `string.format("%s", v)` / `buffer:put(v)` print for the values Kong feeds them;
    /// nil for values Lua would raise an error on (tables, nil, booleans in `put`).
    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let s): return s
        case .number(let n): return JSONValue.formatNumber(n)
        default: return nil
        }
    }

    /// Lua's `%s` class: space, \t, \n, \v, \f, \r (the C locale's isspace).
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte &- 0x09 < 5  // 0x09...0x0D
    }

    /// `gsub(s, '^%s*(.-)%s*$', '%1')`: trims Lua whitespace only (not Unicode spaces).
    static func trim(_ s: String) -> String {
        let bytes = Array(s.utf8)
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = bytes.lastIndex(where: { !isSpace($0) })!
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}

/// JSON as Kong's cjson encoder writes it: `/` escaped as `\/`. Used for the JSON texts the
/// drivers embed in strings (tool-call `arguments`) and for converted bodies.
enum KongJSON {
    static func encode(_ value: JSONValue) -> String { value.serialized(.kong) }

    /// An empty Lua table encodes as `{}` even where a list was meant (spec §10.1).
    static let emptyTable: JSONValue = .object([:])

    /// A Lua list built by the driver: `{}` when empty, as cjson encodes it.
    static func list(_ items: [JSONValue]) -> JSONValue { items.isEmpty ? emptyTable : .array(items) }
}
