import Foundation
import NIOCore

/// Kong's `kong.request.get_body()`: the fields of a form-urlencoded, JSON-object or multipart
/// body, and the same body re-encoded without some fields (for `hide_credentials`).
public struct RequestBodyFields: Sendable {
    public enum Kind: Sendable, Equatable { case form, json, multipart(boundary: String) }

    public let kind: Kind
    /// Field name → values in order (a JSON array value counts as several).
    public let values: [String: [String]]
    private let json: [String: JSONValue]?
    private let formPairs: [(name: String, raw: Substring)]
    private let parts: [(name: String?, raw: String)]

    /// Field names in the order they first appear (JSON: sorted).
    public var names: [String] {
        var seen: Set<String> = []
        let ordered: [String]
        switch kind {
        case .form: ordered = formPairs.map(\.name)
        case .multipart: ordered = parts.compactMap(\.name)
        case .json: ordered = values.keys.sorted()
        }
        return ordered.filter { seen.insert($0).inserted }
    }

    /// Nil when the content type is none of the three or the body does not parse (Kong: no fields).
    public init?(contentType: String?, body: ByteBuffer) {
        guard let contentType else { return nil }
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let text = String(buffer: body)
        switch mediaType {
        case "application/x-www-form-urlencoded":
            kind = .form
            var values: [String: [String]] = [:]
            var pairs: [(String, Substring)] = []
            for pair in QueryText.pairs(Substring(text)) {
                values[pair.name, default: []].append(pair.value ?? "")
                pairs.append((pair.name, pair.raw))
            }
            self.values = values
            formPairs = pairs
            json = nil
            parts = []
        case "application/json":
            guard case .object(let object)? = try? JSONValue.parse(text) else { return nil }
            kind = .json
            var values: [String: [String]] = [:]
            for (name, value) in object {
                switch value {
                case .string(let s): values[name] = [s]
                case .array(let items): values[name] = items.map { $0.stringValue ?? $0.serialized() }
                case .null: break
                default: values[name] = [value.serialized()]
                }
            }
            self.values = values
            json = object
            formPairs = []
            parts = []
        case "multipart/form-data":
            guard let boundary = Self.boundary(contentType) else { return nil }
            kind = .multipart(boundary: boundary)
            var values: [String: [String]] = [:]
            var parts: [(String?, String)] = []
            let segments = text.components(separatedBy: "--" + boundary)
            for segment in segments.dropFirst() where !segment.hasPrefix("--") {
                guard let split = segment.range(of: "\r\n\r\n") else { continue }
                let headers = segment[..<split.lowerBound]
                // The part's value ends before the CRLF that precedes the next boundary. Work on
                // bytes: "\r\n" is a single Character in Swift, so character counts would be wrong.
                var valueBytes = Array(segment[split.upperBound...].utf8)
                if valueBytes.suffix(2) == [0x0D, 0x0A] { valueBytes.removeLast(2) }
                let value = String(decoding: valueBytes, as: UTF8.self)
                let name = Self.partName(String(headers))
                if let name { values[name, default: []].append(value) }
                parts.append((name, segment))
            }
            self.values = values
            self.parts = parts
            json = nil
            formPairs = []
        default:
            return nil
        }
    }

    /// What Kong's `kong.request.get_body()[name]` holds, as an authentication plugin reads it.
    public enum FieldValue: Sendable, Equatable {
        case absent
        case string(String)
        /// A Lua table: a repeated form field or part, a JSON array or object (even empty).
        case several
        /// Present but not a string (a JSON number, boolean or null; a form field without `=`):
        /// no key, and no other place is looked at for this name.
        case other
    }

    public func value(of name: String) -> FieldValue {
        switch kind {
        case .json:
            switch json?[name] {
            case nil: return .absent
            case .string(let text)?: return .string(text)
            case .array?, .object?: return .several
            default: return .other
            }
        case .form:
            let pairs = formPairs.filter { $0.name == name }
            guard let pair = pairs.first else { return .absent }
            if pairs.count > 1 { return .several }
            // `a` alone is `true` in `get_post_args`; `a=` is the empty string.
            return pair.raw.contains("=") ? .string(values[name]?.first ?? "") : .other
        case .multipart:
            guard let found = values[name], let first = found.first else { return .absent }
            return found.count > 1 ? .several : .string(first)
        }
    }

    /// The body again, without the named field.
    public func removing(_ name: String) -> ByteBuffer {
        switch kind {
        case .form:
            return ByteBuffer(string: formPairs.filter { $0.name != name }.map { String($0.raw) }.joined(separator: "&"))
        case .json:
            var object = json ?? [:]
            object[name] = nil
            return ByteBuffer(string: JSONValue.object(object).serialized())
        case .multipart(let boundary):
            let kept = parts.filter { $0.name != name }.map(\.raw)
            return ByteBuffer(string: kept.map { "--" + boundary + $0 }.joined() + "--" + boundary + "--\r\n")
        }
    }

    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// The `name="..."` of a part's Content-Disposition (not `filename="..."`).
    static func partName(_ headers: String) -> String? {
        var searchFrom = headers.startIndex
        var found: Range<String.Index>?
        while let range = headers.range(of: "name=\"", range: searchFrom..<headers.endIndex) {
            let before = range.lowerBound == headers.startIndex ? nil : headers[headers.index(before: range.lowerBound)]
            if before == nil || before == " " || before == ";" { found = range; break }
            searchFrom = range.upperBound
        }
        guard let range = found else { return nil }
        let rest = headers[range.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }
}
