import Core
import Foundation

/// The `input` of an OpenAI `/v1/embeddings` request (`llm/v1/embeddings` route), typed.
public enum LLMEmbeddingsInput: Sendable, Equatable {
    /// `"input": "text"`.
    case text(String)
    /// `"input": ["a", "b"]`.
    case texts([String])
    /// `"input": [1, 2, 3]`: one pre-tokenized input.
    case tokens([Int])
    /// `"input": [[1, 2], [3]]`: several pre-tokenized inputs.
    case tokenLists([[Int]])

    /// The inputs as texts; nil for token arrays (only OpenAI-compatible upstreams take those).
    public var texts: [String]? {
        switch self {
        case .text(let text): return [text]
        case .texts(let texts): return texts
        case .tokens, .tokenLists: return nil
        }
    }

    /// How many embeddings the request asks for.
    public var count: Int {
        switch self {
        case .text, .tokens: return 1
        case .texts(let texts): return texts.count
        case .tokenLists(let lists): return lists.count
        }
    }

    /// Parses `input`: a non-empty string, a non-empty list of non-empty strings, a non-empty
    /// list of token ids (non-negative integers) or a non-empty list of such non-empty lists.
    /// Nil for anything else (missing, null, empty, mixed or wrongly typed).
    public init?(_ value: JSONValue?) {
        switch value {
        case .string(let text)?:
            guard !text.isEmpty else { return nil }
            self = .text(text)
        case .array(let items)? where !items.isEmpty:
            if case .string = items[0] {
                var texts: [String] = []
                for item in items {
                    guard case .string(let text) = item, !text.isEmpty else { return nil }
                    texts.append(text)
                }
                self = .texts(texts)
            } else if case .array = items[0] {
                var lists: [[Int]] = []
                for item in items {
                    guard case .array(let tokens) = item, !tokens.isEmpty, let ids = Self.tokenIDs(tokens) else { return nil }
                    lists.append(ids)
                }
                self = .tokenLists(lists)
            } else {
                guard let ids = Self.tokenIDs(items) else { return nil }
                self = .tokens(ids)
            }
        default:
            return nil
        }
    }

    private static func tokenIDs(_ items: [JSONValue]) -> [Int]? {
        var ids: [Int] = []
        for item in items {
            guard let id = item.intValue, id >= 0 else { return nil }
            ids.append(id)
        }
        return ids
    }
}

/// What ai-proxy checks on an `llm/v1/embeddings` request before converting it.
public enum LLMEmbeddingsRequest {
    /// 400 text for a body whose `input` is missing, null, empty (`""`, `[]`, an empty string or
    /// token list inside the list), of a wrong type or a mix of types. Also the answer for a body
    /// that is not a JSON object.
    public static let invalidInput = "request body doesn't contain valid input for embeddings"
    /// 400 text for an `encoding_format` other than `float` or `base64` (null counts as absent).
    public static let invalidEncodingFormat = "encoding_format must be 'float' or 'base64'"
    /// 400 text for a `dimensions` that is not a positive integer (null counts as absent).
    public static let invalidDimensions = "dimensions must be a positive integer"

    /// The 400 text for an embeddings request ai-proxy must refuse, checked in this order:
    /// ``invalidInput``, ``invalidEncodingFormat``, ``invalidDimensions``; nil when valid.
    /// `model` and the remaining fields are checked as for chat (own model, missing model).
    public static func validationError(_ body: [String: JSONValue]) -> String? {
        guard LLMEmbeddingsInput(body["input"]) != nil else { return invalidInput }
        switch body["encoding_format"] {
        case nil, .null?, .string("float")?, .string("base64")?: break
        default: return invalidEncodingFormat
        }
        if let dimensions = body["dimensions"], !dimensions.isNull {
            guard let value = dimensions.intValue, value > 0 else { return invalidDimensions }
        }
        return nil
    }

    /// The refusal for a provider without an embeddings API, answered with 400 as is (no
    /// `error transforming to …` prefix). Exactly:
    /// - anthropic: `anthropic does not support the llm/v1/embeddings route type`
    /// - llama2 in raw format: `llama2 with llama2_format 'raw' does not support the llm/v1/embeddings route type`
    ///
    /// Nil for every other configuration.
    public static func unsupportedProviderMessage(_ model: LLMModelConfig) -> String? {
        switch LLMDialect(model) {
        case .anthropic?: return "anthropic does not support the \(LLMRouteType.embeddings.rawValue) route type"
        case .llama2Raw?:
            return "llama2 with llama2_format 'raw' does not support the \(LLMRouteType.embeddings.rawValue) route type"
        default: return nil
        }
    }
}

/// How the client wants the vectors (`encoding_format`). Converted (non-OpenAI) answers honour
/// it; OpenAI-compatible upstreams receive the field and answer for themselves.
public enum LLMEmbeddingEncoding: String, Sendable {
    /// JSON arrays of numbers.
    case float
    /// Base64 of the little-endian float32 array, as OpenAI encodes it. The official OpenAI
    /// Python SDK asks for this by default and decodes it itself.
    case base64

    /// From the client's request: `base64` when it asks for it, otherwise `float`.
    public init(request: [String: JSONValue]) {
        self = request["encoding_format"] == "base64" ? .base64 : .float
    }
}

extension LLMDrivers {
    /// The pieces every non-OpenAI embeddings driver shares.
    enum Embeddings {
        /// The detail (after `error transforming to <provider>://llm/v1/embeddings: `) for token
        /// arrays sent to a provider that takes text.
        static let tokenArraysRefused = LLMConversionError(
            "token-array input can only be sent to OpenAI-compatible providers; send the input as text")

        /// The texts to embed; token arrays are refused.
        static func texts(_ body: [String: JSONValue]) throws(LLMConversionError) -> [String] {
            guard let input = LLMEmbeddingsInput(body["input"]) else {
                throw LLMConversionError(LLMEmbeddingsRequest.invalidInput)
            }
            guard let texts = input.texts else { throw tokenArraysRefused }
            return texts
        }

        /// The requested `dimensions`, if any.
        static func dimensions(_ body: [String: JSONValue]) -> Int? {
            body["dimensions"]?.intValue
        }

        /// Refuses `dimensions` for an API that cannot shorten its vectors (better than vectors
        /// of an unexpected length).
        static func refuseDimensions(_ body: [String: JSONValue], _ api: String) throws(LLMConversionError) {
            if dimensions(body) != nil { throw LLMConversionError("\(api) does not support dimensions") }
        }

        /// Cohere's `input_type`: the request's own (a Cohere extension to the OpenAI shape), else
        /// `search_document`.
        static func cohereInputType(_ body: [String: JSONValue]) -> JSONValue {
            body["input_type"]?.stringValue.map(JSONValue.string) ?? "search_document"
        }

        /// A JSON array of numbers as a vector; nil for anything else.
        static func vector(_ value: JSONValue?) -> [Double]? {
            guard let items = value?.arrayValue else { return nil }
            var vector: [Double] = []
            vector.reserveCapacity(items.count)
            for item in items {
                guard let number = item.numberValue else { return nil }
                vector.append(number)
            }
            return vector
        }

        /// A JSON array of vectors; nil when empty or when any entry is not a vector.
        static func vectors(_ value: JSONValue?) -> [[Double]]? {
            guard let items = LLMDrivers.nonEmptyArray(value) else { return nil }
            var vectors: [[Double]] = []
            for item in items {
                guard let vector = vector(item) else { return nil }
                vectors.append(vector)
            }
            return vectors
        }

        /// Cohere's `embeddings`: a list of vectors, or `{float: [...]}` when typed embeddings
        /// were asked for.
        static func cohereVectors(_ value: JSONValue?) -> [[Double]]? {
            vectors(value) ?? vectors(value?["float"])
        }

        /// The OpenAI answer: `{object:"list", data:[{object:"embedding", index, embedding}],
        /// model, usage:{prompt_tokens, total_tokens}}`.
        static func response(_ vectors: [[Double]], promptTokens: Int, model: String?,
                             encoding: LLMEmbeddingEncoding) -> JSONValue {
            let data = vectors.enumerated().map { index, vector -> JSONValue in
                let embedding: JSONValue = switch encoding {
                case .float: .array(vector.map(JSONValue.number))
                case .base64: .string(base64(vector))
                }
                return ["object": "embedding", "index": .number(Double(index)), "embedding": embedding]
            }
            var out: [String: JSONValue] = [
                "object": "list",
                "data": .array(data),
                "usage": ["prompt_tokens": .number(Double(promptTokens)), "total_tokens": .number(Double(promptTokens))],
            ]
            out["model"] = model.map(JSONValue.string)
            return .object(out)
        }

        /// Base64 of the vector as little-endian float32 values.
        static func base64(_ vector: [Double]) -> String {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(vector.count * 4)
            for value in vector {
                let bits = Float(value).bitPattern.littleEndian
                withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
            }
            return Data(bytes).base64EncodedString()
        }

        static func decode(_ body: [UInt8], _ provider: String) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode \(provider) embeddings response")
            }
            return document
        }

        static func missing(_ provider: String) -> LLMConversionError {
            LLMConversionError("no embeddings in \(provider) response")
        }
    }
}
