import Yams

/// Reads a declarative configuration document (YAML or JSON) into a `JSONValue`.
public enum DocumentFormat: Sendable {
    case json, yaml

    /// Text without a file name (a `POST /config` body, the kept configuration): JSON when it
    /// starts like a JSON object, else YAML (which also reads JSON).
    public static func sniff(_ text: String) -> DocumentFormat {
        text.drop(while: \.isWhitespace).first == "{" ? .json : .yaml
    }

    /// Kong picks the parser by file extension.
    public static func forPath(_ path: String) -> DocumentFormat? {
        let lower = path.lowercased()
        if lower.hasSuffix(".json") { return .json }
        if lower.hasSuffix(".yml") || lower.hasSuffix(".yaml") { return .yaml }
        return nil
    }
}

public struct DocumentReadError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

public enum DocumentReader {
    /// Text without a file name (a `POST /config` body, `declarative_config_string`, the kept
    /// configuration), as Kong's `parse_string` reads it: JSON first, then YAML (a YAML flow
    /// mapping starts with `{` too); text neither reads gets YAML's error.
    public static func read(unnamed text: String) throws(DocumentReadError) -> JSONValue {
        if DocumentFormat.sniff(text) == .json, let json = try? read(text, format: .json) { return json }
        return try read(text, format: .yaml)
    }

    public static func read(_ text: String, format: DocumentFormat) throws(DocumentReadError) -> JSONValue {
        switch format {
        case .json:
            do { return try JSONValue.parse(text) } catch {
                throw DocumentReadError(message: "failed parsing declarative configuration: \(error)")
            }
        case .yaml:
            do {
                guard let node = try Yams.compose(yaml: text, yamlResolver) else {
                    throw DocumentReadError(message: "failed parsing declarative configuration: empty document")
                }
                return try convert(node)
            } catch let error as DocumentReadError {
                throw error
            } catch {
                throw DocumentReadError(message: "failed parsing declarative configuration: \(error)")
            }
        }
    }

    /// YAML 1.1 core types without timestamps: Kong's YAML reader yields strings for dates.
    private static let yamlResolver = Resolver.default.removing(.timestamp)

    private static func convert(_ node: Node) throws(DocumentReadError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            let tag = node.tag
            if tag == Tag(.null) { return .null }
            if tag == Tag(.bool) { return node.bool.map(JSONValue.bool) ?? .string(scalar.string) }
            if tag == Tag(.int) { return node.int.map { .number(Double($0)) } ?? .string(scalar.string) }
            if tag == Tag(.float) { return node.float.map(JSONValue.number) ?? .string(scalar.string) }
            return .string(scalar.string)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for item in sequence { items.append(try convert(item)) }
            return .array(items)
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let k) = key else {
                    throw DocumentReadError(message: "failed parsing declarative configuration: map keys must be strings")
                }
                object[k.string] = try convert(value)
            }
            return .object(object)
        case .alias:
            throw DocumentReadError(message: "failed parsing declarative configuration: unresolved YAML alias")
        }
    }
}
