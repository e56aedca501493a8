import Crypto
import Foundation
import Yams

extension DeclarativeConfig {
    /// The configuration as Kong's `GET /config` exports it: flat lists per entity type,
    /// foreign keys as id strings, every field (nulls included), `_transform: false`.
    public func exportDocument(entityOrder: [String]) -> JSONValue {
        var document: [String: JSONValue] = ["_format_version": "3.0", "_transform": false]
        for entity in entityOrder {
            let rows = self.rows(entity)
            guard !rows.isEmpty else { continue }
            document[entity] = .array(rows.map { row in
                guard case .object(var fields) = row else { return row }
                for (key, value) in fields {
                    if case .object(let reference) = value, reference.count == 1, let id = reference["id"] {
                        fields[key] = id
                    }
                }
                return .object(fields)
            })
        }
        return .object(document)
    }

    /// `exportDocument` as YAML text (keys sorted, so the export is stable).
    public func exportYAML(entityOrder: [String]) -> String {
        let document = exportDocument(entityOrder: entityOrder)
        return (try? Yams.dump(object: document.yamlObject, sortKeys: true)) ?? document.serialized()
    }

    /// Kong's configuration hash: MD5 hex of the text it was loaded from; all zeros when empty.
    public static func hash(of text: String) -> String {
        Insecure.MD5.hash(data: Array(text.utf8)).map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    public static let emptyHash = String(repeating: "0", count: 32)

    /// The hash `/status` reports for this configuration loaded from `text`: zeros when empty.
    public func configurationHash(text: String) -> String {
        entities.values.allSatisfy(\.isEmpty) ? Self.emptyHash : Self.hash(of: text)
    }
}

extension JSONValue {
    /// Plain Foundation values for Yams' emitter.
    var yamlObject: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let n): return n == n.rounded(.towardZero) && abs(n) < 1e15 ? Int(n) as Any : n as Any
        case .string(let s): return s
        case .array(let items): return items.map(\.yamlObject)
        case .object(let members): return members.mapValues(\.yamlObject)
        }
    }
}
