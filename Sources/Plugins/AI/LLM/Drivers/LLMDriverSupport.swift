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
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }

    /// `gsub(s, '^%s*(.-)%s*$', '%1')`: trims Lua whitespace only (not Unicode spaces).
    static func trim(_ s: String) -> String {
        let bytes = Array(s.utf8)
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = bytes.lastIndex(where: { !isSpace($0) })!
        return String(decoding: bytes[first...last], as: UTF8.self)
    }

    /// Unanchored `string.find(subject, pattern)` for the small Lua-pattern subset Kong's Bedrock
    /// model list uses: literal characters, `.` (any one character) and `.-` / `.*` (any run,
    /// lazy or greedy — the same for a yes/no answer). Works on bytes, as Lua does.
    static func find(_ pattern: String, in subject: String) -> Bool {
        enum Token { case literal(UInt8), any, anyRun }
        var tokens: [Token] = []
        let p = Array(pattern.utf8)
        var i = 0
        while i < p.count {
            if p[i] == UInt8(ascii: "."), i + 1 < p.count, p[i + 1] == UInt8(ascii: "-") || p[i + 1] == UInt8(ascii: "*") {
                tokens.append(.anyRun)
                i += 2
            } else {
                tokens.append(p[i] == UInt8(ascii: ".") ? .any : .literal(p[i]))
                i += 1
            }
        }
        let s = Array(subject.utf8)
        func matches(_ t: Int, _ at: Int) -> Bool {
            if t == tokens.count { return true }
            switch tokens[t] {
            case .anyRun:
                for next in at...s.count where matches(t + 1, next) { return true }
                return false
            case .any:
                return at < s.count && matches(t + 1, at + 1)
            case .literal(let byte):
                return at < s.count && s[at] == byte && matches(t + 1, at + 1)
            }
        }
        return (0...s.count).contains { matches(0, $0) }
    }
}

/// JSON as Kong's cjson encoder writes it: `/` escaped as `\/`. Used for the JSON texts the
/// drivers embed in strings (tool-call `arguments`) and for converted bodies.
enum KongJSON {
    static let writeOptions = JSONWriteOptions(sortedKeys: true, escapeSlashes: true)

    static func encode(_ value: JSONValue) -> String { value.serialized(writeOptions) }

    /// An empty Lua table encodes as `{}` even where a list was meant (spec §10.1).
    static let emptyTable: JSONValue = .object([:])

    /// A Lua list built by the driver: `{}` when empty, as cjson encodes it.
    static func list(_ items: [JSONValue]) -> JSONValue { items.isEmpty ? emptyTable : .array(items) }
}

extension LLMDrivers {
    /// Which wire format a configuration speaks: the provider, refined by the mistral/llama2
    /// `*_format` option.
    enum Dialect: Equatable {
        case openAI, ollama, llama2Raw, anthropic, cohere, gemini, bedrock, huggingFace

        /// Nil for mistral/llama2 without a format this gateway knows (the schema requires one).
        init?(_ model: LLMModelConfig) {
            switch model.provider {
            case .openai, .azure: self = .openAI
            case .anthropic: self = .anthropic
            case .cohere: self = .cohere
            case .gemini: self = .gemini
            case .bedrock: self = .bedrock
            case .huggingface: self = .huggingFace
            case .mistral:
                switch model.options.mistralFormat {
                case "openai": self = .openAI
                case "ollama": self = .ollama
                default: return nil
                }
            case .llama2:
                switch model.options.llama2Format {
                case "openai": self = .openAI
                case "ollama": self = .ollama
                case "raw": self = .llama2Raw
                default: return nil
                }
            }
        }

        /// Gemini and Bedrock have no completions API.
        func supports(_ route: LLMRouteType) -> Bool {
            switch self {
            case .gemini, .bedrock: return route == .chat
            default: return true
            }
        }

        /// `<route>/<format>`, as Kong names mistral/llama2 transformers in its errors.
        static func formatTarget(_ route: LLMRouteType, _ model: LLMModelConfig) -> String {
            let format = model.provider == .mistral ? model.options.mistralFormat : model.options.llama2Format
            return "\(route.rawValue)/\(format ?? "")"
        }
    }
}
