import Core

/// Request-derived model configuration (spec §2.4): any string inside `config.model` may hold one
/// `$(source.key)` placeholder, filled per request from the route's named captures, a request
/// header or a query argument.
public struct LLMModelTemplate: Sendable {
    /// Where placeholder values come from for one request.
    public struct Sources: Sendable {
        public var uriCaptures: [String: String]
        /// Header values by lower-cased name (first value).
        public var header: @Sendable (String) -> String?
        public var queryParameter: @Sendable (String) -> String?

        public init(uriCaptures: [String: String], header: @escaping @Sendable (String) -> String?,
                    queryParameter: @escaping @Sendable (String) -> String?) {
            self.uriCaptures = uriCaptures
            self.header = header
            self.queryParameter = queryParameter
        }
    }

    /// The `model` record as configured.
    public let record: JSONValue
    /// Whether any string in it holds `$(`: when not, resolving is free.
    public let isTemplated: Bool

    public init(record: JSONValue) {
        self.record = record
        isTemplated = Self.containsPlaceholder(record)
    }

    /// The model configuration for one request. Errors carry Kong's 400 texts.
    public func resolve(_ sources: Sources) throws(LLMConversionError) -> JSONValue {
        guard isTemplated else { return record }
        return try Self.resolve(record, sources)
    }

    static func containsPlaceholder(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let s): return s.contains("$(")
        case .object(let o): return o.values.contains(where: containsPlaceholder)
        case .array(let a): return a.contains(where: containsPlaceholder)
        default: return false
        }
    }

    static func resolve(_ value: JSONValue, _ sources: Sources) throws(LLMConversionError) -> JSONValue {
        switch value {
        case .string(let s): return .string(try substitute(s, sources))
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for (key, member) in o { out[key] = try resolve(member, sources) }
            return .object(out)
        case .array(let a):
            var out: [JSONValue] = []
            for member in a { out.append(try resolve(member, sources)) }
            return .array(out)
        default: return value
        }
    }

    /// Replaces the first `$(…)` of `text` (Kong substitutes only the first placeholder).
    static func substitute(_ text: String, _ sources: Sources) throws(LLMConversionError) -> String {
        guard let open = text.range(of: "$("), let close = text[open.upperBound...].firstIndex(of: ")") else {
            return text
        }
        let expression = text[open.upperBound..<close]
        let parts = expression.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !parts[1].contains(".") else {
            throw LLMConversionError("cannot parse expression for field '\(text)'")
        }
        let source = String(parts[0]), key = String(parts[1])
        let value: String?
        switch source {
        case "uri_captures": value = sources.uriCaptures[key]
        case "headers": value = sources.header(key.lowercased())
        case "query_params": value = sources.queryParameter(key)
        default: throw LLMConversionError("source '\(source)' is not supported")
        }
        guard let value else { throw LLMConversionError("\(source) key \(key) was not provided") }
        return String(text[..<open.lowerBound]) + value + String(text[text.index(after: close)...])
    }
}
