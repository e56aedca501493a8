/// A rejected declarative configuration, in the three forms Kong gives it (spec §5.6):
/// the nested code-14 object, the flattened one (`?flatten_errors=1`), and the CLI text.
public struct DeclarativeError: Error, Sendable, Equatable {
    /// Mirrors the input document: arrays by position, reference errors keyed by entity name/id.
    public let tree: ErrorRecord
    /// Errors attributable to one input entity (nested children become their own items).
    public let entityErrors: [FlattenedEntityError]
    /// Errors not attributable to an entity (e.g. `_format_version`).
    public let documentErrors: ErrorRecord

    public var kongError: KongError {
        KongError(code: .invalidDeclarativeConfiguration,
                  message: "declarative config is invalid: \(LuaLiteral.render(tree))",
                  fields: tree.json)
    }

    public var flattenedKongError: KongError {
        KongError(code: .invalidDeclarativeConfiguration,
                  message: "declarative config is invalid: \(LuaLiteral.render(documentErrors))",
                  fields: documentErrors.json,
                  extra: ["flattened_errors": .array(entityErrors.map(\.json))])
    }

    /// Kong's `pretty_print_error`: one line per node, two spaces per level.
    public var text: String { ErrorText.lines(for: tree, indent: 0).joined(separator: "\n") }
}

public struct FlattenedEntityError: Sendable, Equatable {
    public let entityType: String
    public let entity: JSONValue
    public let errors: [JSONValue]

    public var json: JSONValue {
        var o: [String: JSONValue] = ["entity_type": .string(entityType), "entity": entity, "errors": .array(errors)]
        if let id = entity["id"]?.stringValue, UUIDText.isValid(id) { o["entity_id"] = .string(id) }
        if let name = entity["name"]?.stringValue, !name.isEmpty { o["entity_name"] = .string(name) }
        if let tags = entity["tags"]?.arrayValue, tags.allSatisfy({ $0.stringValue != nil }) {
            o["entity_tags"] = .array(tags)
        }
        return .object(o)
    }

    /// Flattens an entity's error tree into `{"type":"field","field":"a.b.1",...}` /
    /// `{"type":"entity",...}` items.
    static func items(from errors: ErrorRecord, prefix: String = "") -> [JSONValue] {
        // Kong's `categorize_errors`: an `@entity` list at any depth gives entity items, without
        // a field (a nested record's check reads like its entity's own).
        var out: [JSONValue] = errors.entity.map { ["type": "entity", "message": .string($0)] }
        for key in errors.fields.keys.sorted() {
            out += items(from: errors.fields[key]!, path: prefix + key)
        }
        return out
    }

    private static func items(from error: FieldError, path: String) -> [JSONValue] {
        switch error {
        case .message(let m): return [["type": "field", "field": .string(path), "message": .string(m)]]
        case .record(let r): return items(from: r, prefix: path + ".")
        case .list(let list):
            return list.keys.sorted().flatMap { items(from: list[$0]!, path: "\(path).\($0 + 1)") }
        }
    }
}

enum ErrorText {
    static func lines(for record: ErrorRecord, indent: Int) -> [String] {
        let pad = String(repeating: "  ", count: indent)
        var out: [String] = []
        if !record.entity.isEmpty {
            out.append("\(pad)in '@entity':")
            for (i, message) in record.entity.enumerated() {
                out.append("\(pad)  - in entry \(i + 1) of '@entity': \(message)")
            }
        }
        for key in record.fields.keys.sorted() {
            out += lines(for: record.fields[key]!, key: key, indent: indent)
        }
        return out
    }

    static func lines(for error: FieldError, key: String, indent: Int) -> [String] {
        let pad = String(repeating: "  ", count: indent)
        switch error {
        case .message(let m): return ["\(pad)in '\(key)': \(m)"]
        case .record(let r): return ["\(pad)in '\(key)':"] + lines(for: r, indent: indent + 1)
        case .list(let items):
            var out = ["\(pad)in '\(key)':"]
            for index in items.keys.sorted() {
                switch items[index]! {
                case .message(let m):
                    out.append("\(pad)  - in entry \(index + 1) of '\(key)': \(m)")
                case .record(let r):
                    out.append("\(pad)  - in entry \(index + 1) of '\(key)':")
                    out += lines(for: r, indent: indent + 2)
                case .list:
                    out.append("\(pad)  - in entry \(index + 1) of '\(key)':")
                    out += lines(for: items[index]!, key: key, indent: indent + 2)
                }
            }
            return out
        }
    }
}
