import Core

/// One of ai-prompt-template's `templates[].template` texts (spec ai-plugins §9 step 5), parsed once
/// per configuration snapshot and rendered per request with the request's `properties`.
///
/// Kong's templater replaces every `{{name}}` (name = ASCII letters, digits, `_`) with the
/// property's value JSON-string-escaped, then reports the placeholders left in the result. This
/// keeps that exactly and adds expressions (beyond Kong, docs/decisions.md): a `{{ … }}` whose
/// content starts with `.`, `(` or a function's name is an expression — `{{ .x }}`, `{{ len .x }}`,
/// `{{ jsonify (slice_to_index_map .replies 1) }}` — with the functions of `TemplateFunction`.
/// Any other `{{` is plain text, as it is for Kong.
struct PromptTemplate: Sendable {
    enum Segment: Sendable {
        case text([UInt8])
        /// Kong's `{{name}}`.
        case placeholder(String)
        case expression(TemplateInsertion)
    }

    let segments: [Segment]
    /// Whether any `{{ … }}` is an expression: only then may property values be other than strings.
    let usesExpressions: Bool
    private let byteCount: Int

    init(_ text: String) throws(PromptTemplateSyntaxError) {
        let bytes = Array(text.utf8)
        segments = try TemplateScanner(bytes: bytes).segments()
        usesExpressions = segments.contains { if case .expression = $0 { return true } else { return false } }
        byteCount = bytes.count
    }

    /// The schema's check of `templates[].template`: nil when the text parses, else why not.
    static func validationMessage(for text: String) -> String? {
        do {
            _ = try PromptTemplate(text)
            return nil
        } catch {
            return "template error: \(error)"
        }
    }

    /// The rendered text (the new upstream body), or the client-visible reason it cannot be.
    func render(properties: JSONValue) throws(PromptTemplateError) -> [UInt8] {
        guard case .object(let values) = properties else { throw PromptTemplateError("properties must be an object") }
        // Kong refuses every non-string value up front, used or not; expressions may use them.
        if !usesExpressions, let type = Self.firstNonStringType(values) {
            throw PromptTemplateError("property values must be a string, got \(type)")
        }

        var out: [UInt8] = []
        out.reserveCapacity(byteCount + 256)
        // Missing expression properties, by where their output would have gone: reported in
        // result order together with the placeholders the final scan finds.
        var unresolved: [(offset: Int, names: [String])] = []
        // A failure is reported only when nothing is missing: a missing property is the likelier
        // cause and the more useful message.
        var failure: String?
        for segment in segments {
            switch segment {
            case .text(let bytes):
                out.append(contentsOf: bytes)
            case .placeholder(let name):
                switch values[name] {
                case .string(let value)?:
                    JSONStringEscaping.append(value, to: &out)
                case nil:
                    // Left in place, as Kong's gsub leaves it, for the scan below to report.
                    out.append(contentsOf: "{{".utf8)
                    out.append(contentsOf: name.utf8)
                    out.append(contentsOf: "}}".utf8)
                case let other?:
                    failure = failure ?? "property values must be a string, got \(Self.luaType(other))"
                }
            case .expression(let insertion):
                let missing = insertion.paths.filter { TemplateExpression.resolve($0, in: values) == nil }
                if !missing.isEmpty {
                    unresolved.append((out.count, missing.map { $0.joined(separator: ".") }))
                    continue
                }
                do {
                    try insertion.append(to: &out, properties: values)
                } catch {
                    failure = failure ?? "template error: \(error.message)"
                }
            }
        }
        let missing = Self.missingParameters(in: out, unresolved: unresolved)
        if !missing.isEmpty {
            throw PromptTemplateError("missing template parameters: " + missing.map { "[\($0)]" }.joined(separator: ", "))
        }
        if let failure { throw PromptTemplateError(failure) }
        return out
    }

    /// Kong's final `gmatch("{{([%w_]+)}}")` over the result (so a property value that itself
    /// holds `{{x}}` is reported too, as Kong does), merged with the expressions' missing
    /// properties by position; first occurrence order, each name once.
    private static func missingParameters(in out: [UInt8], unresolved: [(offset: Int, names: [String])]) -> [String] {
        var names: [String] = []
        var seen: Set<String> = []
        func note(_ name: String) { if seen.insert(name).inserted { names.append(name) } }
        var pending = unresolved[...]
        var i = 0
        while i < out.count {
            while let next = pending.first, next.offset <= i {
                next.names.forEach(note)
                pending = pending.dropFirst()
            }
            if let (name, end) = TemplateScanner.placeholder(in: out, at: i) {
                note(name)
                i = end
            } else {
                i += 1
            }
        }
        for entry in pending { entry.names.forEach(note) }
        return names
    }

    /// The Lua type of the non-string value with the smallest key (Kong's `pairs` order is
    /// arbitrary; this one is at least stable).
    private static func firstNonStringType(_ values: [String: JSONValue]) -> String? {
        var first: (key: String, type: String)?
        for (key, value) in values {
            if case .string = value { continue }
            if first == nil || key < first!.key { first = (key, luaType(value)) }
        }
        return first?.type
    }

    /// What Lua's `type()` says of a decoded JSON value (cjson decodes `null` to a userdata).
    static func luaType(_ value: JSONValue) -> String {
        switch value {
        case .string: return "string"
        case .number: return "number"
        case .bool: return "boolean"
        case .object, .array: return "table"
        case .null: return "userdata"
        }
    }
}

/// A client-visible rendering failure: the text of the 400's `error.message`.
struct PromptTemplateError: Error, Equatable, Sendable {
    let message: String
    init(_ message: String) { self.message = message }
}

/// A template whose expression does not parse: `reason` and the `{{ … }}` it is about.
struct PromptTemplateSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    let reason: String
    let expression: String
    var description: String { "\(reason) in \(expression)" }
}

/// An expression that parsed but cannot be evaluated with these properties (a type mismatch).
struct TemplateEvaluationError: Error, Equatable, Sendable {
    let message: String
}

// MARK: - Expressions

/// The functions a template expression may call.
enum TemplateFunction: String, Sendable, CaseIterable {
    /// Element count of an array or object, character count of a string.
    case len
    /// Compact JSON text of its argument; at the top of a `{{ }}` inserted as is.
    case jsonify
    /// An object from key/value argument pairs.
    case makeJSONObject = "make_json_object"
    /// `slice_to_index_map list start`: an object mapping `String(start + i)` to element `i`.
    case sliceToIndexMap = "slice_to_index_map"

    /// Why `count` arguments do not fit, nil when they do.
    func arityProblem(_ count: Int) -> String? {
        let got = "got \(count) argument\(count == 1 ? "" : "s")"
        switch self {
        case .len, .jsonify:
            return count == 1 ? nil : "\(rawValue) takes 1 argument, \(got)"
        case .sliceToIndexMap:
            return count == 2 ? nil : "\(rawValue) takes 2 arguments (a list and its first index), \(got)"
        case .makeJSONObject:
            return count % 2 == 0 ? nil : "\(rawValue) takes key/value pairs, \(got)"
        }
    }

    static let names = allCases.map(\.rawValue).joined(separator: ", ")
}

indirect enum TemplateExpression: Sendable, Equatable {
    /// `.a.b`: the path through the properties.
    case property([String])
    case string(String)
    case integer(Int)
    case call(TemplateFunction, [TemplateExpression])

    /// The property paths read, in source order.
    var propertyPaths: [[String]] {
        switch self {
        case .property(let path): return [path]
        case .string, .integer: return []
        case .call(_, let arguments): return arguments.flatMap(\.propertyPaths)
        }
    }

    static func resolve(_ path: [String], in properties: [String: JSONValue]) -> JSONValue? {
        guard let first = path.first, var current = properties[first] else { return nil }
        for name in path.dropFirst() {
            guard case .object(let members) = current, let next = members[name] else { return nil }
            current = next
        }
        return current
    }

    func evaluate(_ properties: [String: JSONValue]) throws(TemplateEvaluationError) -> JSONValue {
        switch self {
        case .property(let path):
            guard let value = Self.resolve(path, in: properties) else {
                throw TemplateEvaluationError(message: "missing property .\(path.joined(separator: "."))")
            }
            return value
        case .string(let text):
            return .string(text)
        case .integer(let n):
            return .number(Double(n))
        case .call(let function, let arguments):
            var values: [JSONValue] = []
            values.reserveCapacity(arguments.count)
            for argument in arguments { values.append(try argument.evaluate(properties)) }
            return try Self.apply(function, values)
        }
    }

    private static func apply(_ function: TemplateFunction, _ arguments: [JSONValue]) throws(TemplateEvaluationError) -> JSONValue {
        switch function {
        case .len:
            switch arguments[0] {
            case .array(let items): return .number(Double(items.count))
            case .object(let members): return .number(Double(members.count))
            case .string(let text): return .number(Double(text.count))
            case let other:
                throw TemplateEvaluationError(message: "len expects an array, an object or a string, got \(other.templateTypeName)")
            }
        case .jsonify:
            return .string(String(decoding: arguments[0].serializedBytes(.kong), as: UTF8.self))
        case .makeJSONObject:
            var object: [String: JSONValue] = [:]
            var index = 0
            while index < arguments.count {
                guard case .string(let key) = arguments[index] else {
                    throw TemplateEvaluationError(
                        message: "make_json_object keys must be strings, got \(arguments[index].templateTypeName)")
                }
                object[key] = arguments[index + 1]
                index += 2
            }
            return .object(object)
        case .sliceToIndexMap:
            guard case .array(let items) = arguments[0] else {
                throw TemplateEvaluationError(
                    message: "slice_to_index_map expects an array as its first argument, got \(arguments[0].templateTypeName)")
            }
            guard case .number(let n) = arguments[1], n == n.rounded(), abs(n) < 1e15 else {
                throw TemplateEvaluationError(
                    message: "slice_to_index_map expects an integer as its second argument, got \(arguments[1].templateTypeName)")
            }
            let start = Int(n)
            var object: [String: JSONValue] = [:]
            object.reserveCapacity(items.count)
            for (offset, item) in items.enumerated() { object[String(start + offset)] = item }
            return .object(object)
        }
    }
}

/// One `{{ … }}` expression of a template, with what rendering needs of it precomputed.
struct TemplateInsertion: Sendable {
    let expression: TemplateExpression
    /// The properties it reads, checked before it is evaluated.
    let paths: [[String]]

    init(_ expression: TemplateExpression) {
        self.expression = expression
        paths = expression.propertyPaths
    }

    /// A string result goes in JSON-escaped, like a placeholder's value; anything else — and a
    /// top-level `jsonify`, whose point is raw JSON — as compact JSON.
    func append(to out: inout [UInt8], properties: [String: JSONValue]) throws(TemplateEvaluationError) {
        if case .call(.jsonify, let arguments) = expression {
            out.append(contentsOf: try arguments[0].evaluate(properties).serializedBytes(.kong))
            return
        }
        let value = try expression.evaluate(properties)
        if case .string(let text) = value {
            JSONStringEscaping.append(text, to: &out)
        } else {
            out.append(contentsOf: value.serializedBytes(.kong))
        }
    }
}

extension JSONValue {
    /// JSON's own type names, for template errors.
    fileprivate var templateTypeName: String {
        switch self {
        case .string: return "string"
        case .number: return "number"
        case .bool: return "boolean"
        case .object: return "object"
        case .array: return "array"
        case .null: return "null"
        }
    }
}

// MARK: - Parsing

/// Splits a template into text, placeholders and expressions.
private struct TemplateScanner {
    let bytes: [UInt8]

    func segments() throws(PromptTemplateSyntaxError) -> [PromptTemplate.Segment] {
        var segments: [PromptTemplate.Segment] = []
        var textStart = 0
        var index = 0
        func flushText(upTo end: Int) {
            if end > textStart { segments.append(.text(Array(bytes[textStart..<end]))) }
        }
        while index + 1 < bytes.count {
            guard bytes[index] == UInt8(ascii: "{"), bytes[index + 1] == UInt8(ascii: "{") else {
                index += 1
                continue
            }
            if let (name, end) = Self.placeholder(in: bytes, at: index) {
                flushText(upTo: index)
                segments.append(.placeholder(name))
                index = end
                textStart = end
            } else if startsExpression(after: index + 2) {
                flushText(upTo: index)
                var parser = ExpressionParser(bytes: bytes, open: index)
                let (expression, end) = try parser.parse()
                segments.append(.expression(TemplateInsertion(expression)))
                index = end
                textStart = end
            } else {
                // Kong moves on by one character: `{{{name}}}` holds the placeholder `{{name}}`.
                index += 1
            }
        }
        flushText(upTo: bytes.count)
        return segments
    }

    /// Kong's `{{([%w_]+)}}` at `index`: the name and the index after the match.
    static func placeholder(in bytes: [UInt8], at index: Int) -> (String, Int)? {
        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "{"), bytes[index + 1] == UInt8(ascii: "{") else {
            return nil
        }
        var end = index + 2
        while end < bytes.count, isWordByte(bytes[end]) { end += 1 }
        guard end > index + 2, end + 1 < bytes.count, bytes[end] == UInt8(ascii: "}"),
              bytes[end + 1] == UInt8(ascii: "}") else { return nil }
        return (String(decoding: bytes[(index + 2)..<end], as: UTF8.self), end + 2)
    }

    /// An expression starts, after optional blanks, with a property, a parenthesis or the name
    /// of one of the functions. Any other `{{` is Kong's text: `{{ name }}`, `{{user-name}}`,
    /// `{{ if .x }}` (a Go, Jinja or Mustache example in a prompt) reach the LLM as written.
    private func startsExpression(after index: Int) -> Bool {
        var i = index
        while i < bytes.count, isBlank(bytes[i]) { i += 1 }
        guard i < bytes.count else { return false }
        let byte = bytes[i]
        if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "(") { return true }
        guard isNameStart(byte) else { return false }
        var end = i
        while end < bytes.count, isWordByte(bytes[end]) { end += 1 }
        return TemplateFunction(rawValue: String(decoding: bytes[i..<end], as: UTF8.self)) != nil
    }
}

/// Recursive descent over one `{{ … }}`:
///
///     expression := name operand* | operand
///     operand    := ('.' word)+ | "string" | integer | '(' expression ')'
private struct ExpressionParser {
    let bytes: [UInt8]
    /// Where the `{{` is.
    let open: Int
    var index: Int

    init(bytes: [UInt8], open: Int) {
        self.bytes = bytes
        self.open = open
        index = open + 2
    }

    /// The expression and the index after its `}}`.
    mutating func parse() throws(PromptTemplateSyntaxError) -> (TemplateExpression, Int) {
        let expression = try parseExpression()
        skipBlanks()
        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "}"), bytes[index + 1] == UInt8(ascii: "}") else {
            throw failure(index < bytes.count ? "unexpected \(quotedCharacter()) after the expression" : "missing '}}'")
        }
        return (expression, index + 2)
    }

    private mutating func parseExpression() throws(PromptTemplateSyntaxError) -> TemplateExpression {
        skipBlanks()
        guard index < bytes.count, isNameStart(bytes[index]) else { return try parseOperand() }
        let name = readName()
        guard let function = TemplateFunction(rawValue: name) else {
            skipBlanks()
            // `{{ name }}` is the likeliest slip: a placeholder written with blanks.
            throw failure(atClose ? "unknown function '\(name)' (a property is written {{name}} or {{ .\(name) }})"
                                  : "unknown function '\(name)' (functions: \(TemplateFunction.names))")
        }
        var arguments: [TemplateExpression] = []
        while true {
            skipBlanks()
            if index >= bytes.count || bytes[index] == UInt8(ascii: ")") || atClose { break }
            arguments.append(try parseOperand())
        }
        if let problem = function.arityProblem(arguments.count) { throw failure(problem) }
        if function == .makeJSONObject {
            for key in stride(from: 0, to: arguments.count, by: 2) {
                if case .integer = arguments[key] { throw failure("make_json_object keys must be strings") }
            }
        }
        return .call(function, arguments)
    }

    private mutating func parseOperand() throws(PromptTemplateSyntaxError) -> TemplateExpression {
        skipBlanks()
        guard index < bytes.count else { throw failure("missing '}}'") }
        let byte = bytes[index]
        switch byte {
        case UInt8(ascii: "."):
            return try parseProperty()
        case UInt8(ascii: "\""):
            return try parseString()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseInteger()
        case UInt8(ascii: "("):
            index += 1
            let inner = try parseExpression()
            skipBlanks()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ")") else { throw failure("missing ')'") }
            index += 1
            return inner
        default:
            if atClose { throw failure("missing an argument") }
            if isNameStart(byte) {
                let name = readName()
                guard TemplateFunction(rawValue: name) != nil else {
                    throw failure("unknown function '\(name)' (functions: \(TemplateFunction.names))")
                }
                throw failure("a call used as an argument needs parentheses: (\(name) …)")
            }
            throw failure("unexpected \(quotedCharacter())")
        }
    }

    private mutating func parseProperty() throws(PromptTemplateSyntaxError) -> TemplateExpression {
        var path: [String] = []
        while index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count, isWordByte(bytes[index]) { index += 1 }
            guard index > start else { throw failure("expected a property name after '.'") }
            path.append(String(decoding: bytes[start..<index], as: UTF8.self))
        }
        return .property(path)
    }

    /// A JSON string literal, escapes included.
    private mutating func parseString() throws(PromptTemplateSyntaxError) -> TemplateExpression {
        let start = index
        index += 1
        while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
            index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
        }
        guard index < bytes.count else { throw failure("unterminated string") }
        index += 1
        guard case .string(let text)? = try? JSONValue.parse(bytes: bytes[start..<index]) else {
            throw failure("invalid string \(String(decoding: bytes[start..<index], as: UTF8.self))")
        }
        return .string(text)
    }

    private mutating func parseInteger() throws(PromptTemplateSyntaxError) -> TemplateExpression {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        let digits = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard index > digits else { throw failure("unexpected '-'") }
        if index < bytes.count, isWordByte(bytes[index]) || bytes[index] == UInt8(ascii: ".") {
            throw failure("only integer numbers are supported")
        }
        guard let value = Int(text) else { throw failure("integer \(text) is out of range") }
        return .integer(value)
    }

    private var atClose: Bool {
        index + 1 < bytes.count && bytes[index] == UInt8(ascii: "}") && bytes[index + 1] == UInt8(ascii: "}")
    }

    private mutating func readName() -> String {
        let start = index
        while index < bytes.count, isWordByte(bytes[index]) { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func skipBlanks() {
        while index < bytes.count, isBlank(bytes[index]) { index += 1 }
    }

    private func quotedCharacter() -> String {
        var end = index + 1
        while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }  // the whole UTF-8 character
        return "'\(String(decoding: bytes[index..<end], as: UTF8.self))'"
    }

    /// The error, quoting the expression from its `{{` to its `}}` (or a bounded prefix of it).
    private func failure(_ reason: String) -> PromptTemplateSyntaxError {
        var end = open + 2
        while end + 1 < bytes.count, !(bytes[end] == UInt8(ascii: "}") && bytes[end + 1] == UInt8(ascii: "}")) { end += 1 }
        end = end + 1 < bytes.count ? end + 2 : bytes.count
        var text = String(decoding: bytes[open..<end], as: UTF8.self)
        if text.count > 80 { text = String(text.prefix(80)) + "…" }
        return PromptTemplateSyntaxError(reason: reason, expression: text)
    }
}

private func isWordByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
        return true
    default:
        return false
    }
}

private func isNameStart(_ byte: UInt8) -> Bool {
    isWordByte(byte) && !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
}

private func isBlank(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
}

// MARK: - Escaping

/// A string's JSON encoding without the quotes, as `cjson.encode(v):sub(2, -2)` gives it: `"`, `\`
/// and `/` escaped, control characters as `\n`-style or `\u00XX` escapes, the rest as is.
enum JSONStringEscaping {
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func append(_ text: String, to out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case UInt8(ascii: "/"): out.append(contentsOf: [0x5C, 0x2F])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0..<0x20:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
    }
}
