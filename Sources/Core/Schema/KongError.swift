/// Kong's database error objects (`kong/db/errors.lua`): `{"code", "name", "message", "fields"}`.
/// Every layer (CLI, Admin API, `/config`) renders errors from this one type.
public struct KongError: Error, Sendable, Equatable {
    public enum Code: Int, Sendable {
        case invalidPrimaryKey = 1
        case schemaViolation = 2
        case primaryKeyViolation = 3
        case foreignKeyViolation = 4
        case uniqueViolation = 5
        case notFound = 6
        case invalidOffset = 7
        case databaseError = 8
        case invalidSize = 9
        case invalidUniqueField = 10
        case invalidOptions = 11
        case operationUnsupported = 12
        case foreignKeysUnresolved = 13
        case invalidDeclarativeConfiguration = 14
        case transformationError = 15

        public var kongName: String {
            switch self {
            case .invalidPrimaryKey: return "invalid primary key"
            case .schemaViolation: return "schema violation"
            case .primaryKeyViolation: return "primary key violation"
            case .foreignKeyViolation: return "foreign key violation"
            case .uniqueViolation: return "unique constraint violation"
            case .notFound: return "not found"
            case .invalidOffset: return "invalid offset"
            case .databaseError: return "database error"
            case .invalidSize: return "invalid size"
            case .invalidUniqueField: return "invalid unique field"
            case .invalidOptions: return "invalid options"
            case .operationUnsupported: return "operation unsupported"
            case .foreignKeysUnresolved: return "foreign keys unresolved"
            case .invalidDeclarativeConfiguration: return "invalid declarative configuration"
            case .transformationError: return "transformation error"
            }
        }
    }

    public let code: Code
    public let message: String
    /// The raw error tree (`fields`), absent when there is none.
    public let fields: JSONValue?
    /// Additional members, e.g. `flattened_errors` of `/config`.
    public var extra: [String: JSONValue]

    public init(code: Code, message: String, fields: JSONValue? = nil, extra: [String: JSONValue] = [:]) {
        self.code = code
        self.message = message
        self.fields = fields
        self.extra = extra
    }

    public var name: String { code.kongName }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["code": .number(Double(code.rawValue)), "name": .string(name),
                                           "message": .string(message)]
        if let fields { object["fields"] = fields }
        for (k, v) in extra { object[k] = v }
        return .object(object)
    }

    /// Code 2, with Kong's message composition: entity errors first, then field errors sorted
    /// by name, nested tables one entry per sub-key (`service.protocol: ...`, `protocols.1: ...`).
    public static func schemaViolation(_ errors: ErrorRecord) -> KongError {
        let entries = schemaViolationEntries(errors)
        let message: String
        if entries.count == 1 {
            message = "schema violation (\(entries[0]))"
        } else {
            message = "\(entries.count) schema violations (\(entries.joined(separator: "; ")))"
        }
        return KongError(code: .schemaViolation, message: message, fields: errors.json)
    }

    static func schemaViolationEntries(_ errors: ErrorRecord) -> [String] {
        var entries = errors.entity
        for name in errors.fields.keys.sorted() {
            switch errors.fields[name]! {
            case .message(let m):
                entries.append("\(name): \(m)")
            case .list(let items):
                for index in items.keys.sorted() {
                    entries.append("\(name).\(index + 1): \(entryText(items[index]!))")
                }
            case .record(let inner):
                if !inner.entity.isEmpty {
                    entries.append("\(name).@entity: \(LuaLiteral.render(.list(Dictionary(uniqueKeysWithValues: inner.entity.enumerated().map { ($0.offset, FieldError.message($0.element)) }))))")
                }
                for key in inner.fields.keys.sorted() {
                    entries.append("\(name).\(key): \(entryText(inner.fields[key]!))")
                }
            }
        }
        return entries
    }

    /// A sub-entry's text: messages as they are, deeper tables as Lua table literals.
    private static func entryText(_ error: FieldError) -> String {
        if case .message(let m) = error { return m }
        return LuaLiteral.render(error)
    }
}

/// Kong prints error tables inside messages as compact Lua table literals
/// (`{services={{host="required field missing"}}}`). Keys sorted; arrays positional, holes as `[n]=`.
public enum LuaLiteral {
    public static func render(_ error: FieldError) -> String {
        switch error {
        case .message(let m): return quote(m)
        case .record(let r): return render(r)
        case .list(let items): return renderList(items.mapValues(render))
        }
    }

    public static func render(_ record: ErrorRecord) -> String {
        var members: [(String, String)] = record.fields.map { ($0.key, render($0.value)) }
        if !record.entity.isEmpty {
            members.append(("@entity", renderList(Dictionary(uniqueKeysWithValues:
                record.entity.enumerated().map { ($0.offset, quote($0.element)) }))))
        }
        return renderTable(members)
    }

    public static func render(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return JSONValue.formatNumber(n)
        case .string(let s): return quote(s)
        case .array(let items):
            var byIndex: [Int: String] = [:]
            for (i, item) in items.enumerated() where !item.isNull { byIndex[i] = render(item) }
            return renderList(byIndex)
        case .object(let o): return renderTable(o.map { ($0.key, render($0.value)) })
        }
    }

    /// Renders a table whose values are already rendered.
    static func renderTable(_ members: [(String, String)]) -> String {
        let parts = members.sorted { $0.0 < $1.0 }.map { key, value in "\(luaKey(key))=\(value)" }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// 0-based positions; a run starting at position 0 prints bare, the rest as `[n]=`.
    static func renderList(_ items: [Int: String]) -> String {
        var parts: [String] = []
        var sequential = true
        for index in items.keys.sorted() {
            if sequential && index == parts.count {
                parts.append(items[index]!)
            } else {
                sequential = false
                parts.append("[\(index + 1)]=\(items[index]!)")
            }
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    static func luaKey(_ key: String) -> String {
        let isIdentifier = key.first.map { $0.isLetter || $0 == "_" } ?? false
            && key.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }
        return isIdentifier ? key : "[\(quote(key))]"
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out + "\""
    }
}
