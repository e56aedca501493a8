import Core
import Foundation
import Plugins
import Testing

/// The configurations the embeddings tests use (outside the suite: `@Test(arguments:)` cannot
/// refer to the suite's own members).
enum EmbeddingModels {
    static func model(_ provider: LLMProvider, _ name: String?, options: JSONValue = [:]) -> LLMModelConfig {
        var json: JSONValue = ["provider": .string(provider.rawValue), "options": options]
        if let name { json["name"] = .string(name) }
        return LLMModelConfig(json: json)!
    }

    static let openai: LLMModelConfig = model(.openai, "text-embedding-3-small", options: ["temperature": 0.2, "max_tokens": 10, "top_k": 3])
    static let azure: LLMModelConfig = model(.azure, "text-embedding-3-large",
                             options: ["azure_instance": "my-instance", "azure_deployment_id": "embed-deployment"])
    static let mistralOpenAI: LLMModelConfig = model(.mistral, "mistral-embed", options: ["mistral_format": "openai"])
    static let llama2OpenAI: LLMModelConfig = model(.llama2, "bge-m3", options: ["llama2_format": "openai", "upstream_url": "http://vllm:8000/v1/embeddings"])
    static let mistralOllama: LLMModelConfig = model(.mistral, "nomic-embed-text:v1.5", options: ["mistral_format": "ollama"])
    static let llama2Ollama: LLMModelConfig = model(.llama2, "nomic-embed-text:v1.5",
                                    options: ["llama2_format": "ollama", "upstream_url": "http://ollama:11434/api/embed"])
    static let llama2Raw: LLMModelConfig = model(.llama2, "llama2", options: ["llama2_format": "raw", "upstream_url": "http://tgi:8080"])
    static let cohere: LLMModelConfig = model(.cohere, "embed-english-v3.0")
    static let gemini: LLMModelConfig = model(.gemini, "text-embedding-004")
    static let vertex: LLMModelConfig = model(.gemini, "text-embedding-005", options: ["gemini": [
        "api_endpoint": "us-central1-aiplatform.googleapis.com", "project_id": "my-project", "location_id": "us-central1",
    ]])
    static let titan: LLMModelConfig = model(.bedrock, "amazon.titan-embed-text-v2:0", options: ["bedrock": ["aws_region": "us-east-1"]])
    static let bedrockCohere: LLMModelConfig = model(.bedrock, "cohere.embed-english-v3", options: ["bedrock": ["aws_region": "us-east-1"]])
    static let huggingface: LLMModelConfig = model(.huggingface, "sentence-transformers/all-MiniLM-L6-v2")
    static let anthropic: LLMModelConfig = model(.anthropic, "claude-3-haiku", options: ["anthropic_version": "2023-06-01"])
}

/// The `llm/v1/embeddings` route type of ai-proxy: request validation, conversion to each
/// provider's embeddings API and back to the OpenAI `/v1/embeddings` shape, upstream targets and
/// the schema.
@Suite("LLM embeddings")
struct LLMEmbeddingsTests {
    // MARK: Helpers


    private static func request(_ body: JSONValue, _ model: LLMModelConfig) throws -> JSONValue {
        try LLMRequestConversion.toProvider(body, route: .embeddings, model: model)
    }

    /// The client message of a failed request conversion (nil, recorded as an issue, on success).
    private static func requestError(_ body: JSONValue, _ model: LLMModelConfig,
                                     sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        let error = #expect(throws: LLMConversionError.self, sourceLocation: sourceLocation) {
            try LLMRequestConversion.toProvider(body, route: .embeddings, model: model)
        }
        #expect(error?.isPlainTextBody == false, sourceLocation: sourceLocation)
        return error?.clientMessage
    }

    private static func response(_ text: String, _ model: LLMModelConfig,
                                 encoding: LLMEmbeddingEncoding = .float) throws -> LLMConvertedResponse {
        try LLMResponseConversion.fromProvider(Array(text.utf8), route: .embeddings, model: model,
                                               embeddingEncoding: encoding)
    }

    private static func responseError(_ text: String, _ model: LLMModelConfig,
                                      sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        let error = #expect(throws: LLMConversionError.self, sourceLocation: sourceLocation) {
            try LLMResponseConversion.fromProvider(Array(text.utf8), route: .embeddings, model: model)
        }
        return error?.clientMessage
    }

    /// The converted document (fails the test when the body was forwarded).
    private static func converted(_ result: LLMConvertedResponse, sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue? {
        guard case .converted(let document) = result.body else {
            Issue.record("expected a converted body, got the upstream bytes", sourceLocation: sourceLocation)
            return nil
        }
        return document
    }

    /// The OpenAI answer the converted providers produce, float encoding.
    private static func openAIList(_ vectors: [JSONValue], model: String, tokens: Int) -> JSONValue {
        [
            "object": "list",
            "data": .array(vectors.enumerated().map { index, vector in
                ["object": "embedding", "index": .number(Double(index)), "embedding": vector]
            }),
            "model": .string(model),
            "usage": ["prompt_tokens": .number(Double(tokens)), "total_tokens": .number(Double(tokens))],
        ]
    }

    /// Decodes an OpenAI base64 embedding: little-endian float32 values.
    private static func floats(base64 text: String?, sourceLocation: SourceLocation = #_sourceLocation) -> [Float]? {
        guard let text, let data = Data(base64Encoded: text) else {
            Issue.record("not base64: \(text ?? "nil")", sourceLocation: sourceLocation)
            return nil
        }
        let bytes = [UInt8](data)
        #expect(bytes.count % 4 == 0, sourceLocation: sourceLocation)
        return stride(from: 0, to: bytes.count - bytes.count % 4, by: 4).map { offset in
            let bits = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
                | UInt32(bytes[offset + 3]) << 24
            return Float(bitPattern: bits)
        }
    }


    // MARK: Route type

    @Test func routeTypeValue() {
        #expect(LLMRouteType(rawValue: "llm/v1/embeddings") == .embeddings)
        #expect(LLMRouteType.embeddings.rawValue == "llm/v1/embeddings")
    }

    /// Body-parameter auth reaches the wire only where the client's object is forwarded.
    @Test func bodyParameterAuthOnlyForOpenAICompatibleUpstreams() throws {
        #expect(try #require(LLMDialect(EmbeddingModels.openai)).sendsTheOpenAIObject(on: .embeddings))
        #expect(try #require(LLMDialect(EmbeddingModels.mistralOpenAI)).sendsTheOpenAIObject(on: .embeddings))
        #expect(try #require(LLMDialect(EmbeddingModels.cohere)).sendsTheOpenAIObject(on: .embeddings) == false)
        #expect(try #require(LLMDialect(EmbeddingModels.huggingface)).sendsTheOpenAIObject(on: .embeddings) == false)
        #expect(try #require(LLMDialect(EmbeddingModels.cohere)).sendsTheOpenAIObject(on: .chat), "chat unchanged")
        #expect(try #require(LLMDialect(EmbeddingModels.gemini)).sendsTheOpenAIObject(on: .embeddings) == false)
    }

    // MARK: Validation

    @Test(arguments: [
        [:], ["input": nil], ["input": ""], ["input": []], ["input": [""]], ["input": ["a", ""]], ["input": ["a", 1]],
        ["input": [1, "a"]], ["input": [[1], "a"]], ["input": [[]]], ["input": [[1], []]], ["input": [-1]], ["input": [1.5]],
        ["input": [[1, 2.5]]], ["input": ["a": "b"]], ["input": 5], ["input": true], ["input": [["a"]]],
        ["messages": [["role": "user", "content": "hi"]]], ["prompt": "hi"],
    ] as [JSONValue])
    func invalidInputIsRefused(_ body: JSONValue) {
        #expect(LLMEmbeddingsRequest.validationError(body.objectValue!) == "request body doesn't contain valid input for embeddings")
        #expect(LLMEmbeddingsInput(body["input"]) == nil)
    }

    @Test func validInputs() {
        let cases: [(JSONValue, LLMEmbeddingsInput)] = [
            ("hello", .text("hello")),
            (["a", "b"], .texts(["a", "b"])),
            ([1, 2, 3], .tokens([1, 2, 3])),
            ([[1, 2], [3]], .tokenLists([[1, 2], [3]])),
            ([0], .tokens([0])),
        ]
        for (input, expected) in cases {
            #expect(LLMEmbeddingsRequest.validationError(["input": input]) == nil, "\(input)")
            #expect(LLMEmbeddingsInput(input) == expected)
        }
        #expect(LLMEmbeddingsInput(["a", "b", "c"])?.count == 3)
        #expect(LLMEmbeddingsInput([[1], [2]])?.texts == nil)
        #expect(LLMEmbeddingsInput("x")?.texts == ["x"])
    }

    @Test func encodingFormatAndDimensionsAreChecked() {
        let ok: [[String: JSONValue]] = [
            ["input": "a", "encoding_format": "float"], ["input": "a", "encoding_format": "base64"],
            ["input": "a", "encoding_format": nil], ["input": "a", "dimensions": 256], ["input": "a", "dimensions": nil],
            ["input": "a", "user": "u-1", "model": "m"],
        ]
        for body in ok { #expect(LLMEmbeddingsRequest.validationError(body) == nil, "\(body)") }
        for format: JSONValue in ["hex", "", 1, ["base64"]] {
            #expect(LLMEmbeddingsRequest.validationError(["input": "a", "encoding_format": format])
                == "encoding_format must be 'float' or 'base64'")
        }
        for dimensions: JSONValue in [0, -1, 1.5, "256", true] {
            #expect(LLMEmbeddingsRequest.validationError(["input": "a", "dimensions": dimensions])
                == "dimensions must be a positive integer")
        }
        // Input is checked first.
        #expect(LLMEmbeddingsRequest.validationError(["encoding_format": "hex"])
            == "request body doesn't contain valid input for embeddings")
    }

    @Test func encodingFromTheRequest() {
        #expect(LLMEmbeddingEncoding(request: ["input": "a", "encoding_format": "base64"]) == .base64)
        #expect(LLMEmbeddingEncoding(request: ["input": "a", "encoding_format": "float"]) == .float)
        #expect(LLMEmbeddingEncoding(request: ["input": "a"]) == .float)
    }

    /// The conversion validates too: an invalid body fails with the bare validation text.
    @Test func conversionRefusesAnInvalidBody() {
        #expect(Self.requestError(["messages": [["role": "user", "content": "hi"]]], EmbeddingModels.openai)
            == "request body doesn't contain valid input for embeddings")
        #expect(Self.requestError(["input": "a", "encoding_format": "hex"], EmbeddingModels.cohere)
            == "encoding_format must be 'float' or 'base64'")
    }

    // MARK: Requests: OpenAI-compatible

    /// Forwarded as is with the resolved model: token arrays, `encoding_format`, `dimensions` and
    /// `user` included; no `stream` and no configured generation options (not embeddings
    /// parameters).
    @Test(arguments: [EmbeddingModels.openai, EmbeddingModels.azure, EmbeddingModels.mistralOpenAI, EmbeddingModels.llama2OpenAI])
    func openAIFormatForwardsTheBody(_ model: LLMModelConfig) throws {
        let body: JSONValue = ["input": ["a", "b"], "encoding_format": "base64", "dimensions": 256, "user": "u-1",
                               "model": .string(model.name!)]
        #expect(try Self.request(body, model) == body)
        let tokens: JSONValue = ["input": [[1, 2], [3]]]
        #expect(try Self.request(tokens, model) == ["input": [[1, 2], [3]], "model": .string(model.name!)])
        #expect(try Self.request(["input": [5, 6]], model) == ["input": [5, 6], "model": .string(model.name!)])
    }

    @Test func openAIFormatKeepsTheRequestModelWhenNoneIsConfigured() throws {
        let unnamed = EmbeddingModels.model(.openai, nil)
        #expect(try Self.request(["input": "a", "model": "text-embedding-ada-002"], unnamed)
            == ["input": "a", "model": "text-embedding-ada-002"])
    }

    // MARK: Requests: converted providers

    @Test(arguments: [EmbeddingModels.mistralOllama, EmbeddingModels.llama2Ollama])
    func ollamaEmbed(_ model: LLMModelConfig) throws {
        #expect(try Self.request(["input": "hi", "encoding_format": "base64", "user": "u"], model)
            == ["model": "nomic-embed-text:v1.5", "input": "hi"])
        #expect(try Self.request(["input": ["a", "b"], "dimensions": 64], model)
            == ["model": "nomic-embed-text:v1.5", "input": ["a", "b"], "dimensions": 64])
    }

    @Test func cohereEmbed() throws {
        #expect(try Self.request(["input": ["a", "b"]], EmbeddingModels.cohere)
            == ["model": "embed-english-v3.0", "texts": ["a", "b"], "input_type": "search_document"])
        #expect(try Self.request(["input": "q", "input_type": "search_query", "encoding_format": "base64"], EmbeddingModels.cohere)
            == ["model": "embed-english-v3.0", "texts": ["q"], "input_type": "search_query"])
        #expect(Self.requestError(["input": "a", "dimensions": 256], EmbeddingModels.cohere)
            == "error transforming to cohere://llm/v1/embeddings: cohere embed does not support dimensions")
    }

    @Test func geminiBatchEmbedContents() throws {
        #expect(try Self.request(["input": ["a", "b"]], EmbeddingModels.gemini) == ["requests": [
            ["model": "models/text-embedding-004", "content": ["parts": [["text": "a"]]]],
            ["model": "models/text-embedding-004", "content": ["parts": [["text": "b"]]]],
        ]])
        #expect(try Self.request(["input": "a", "dimensions": 128], EmbeddingModels.gemini) == ["requests": [
            ["model": "models/text-embedding-004", "content": ["parts": [["text": "a"]]], "outputDimensionality": 128],
        ]])
    }

    @Test func vertexPredict() throws {
        #expect(try Self.request(["input": ["a", "b"]], EmbeddingModels.vertex) == ["instances": [["content": "a"], ["content": "b"]]])
        #expect(try Self.request(["input": "a", "dimensions": 256], EmbeddingModels.vertex)
            == ["instances": [["content": "a"]], "parameters": ["outputDimensionality": 256]])
    }

    @Test func bedrockTitan() throws {
        #expect(try Self.request(["input": "hello"], EmbeddingModels.titan) == ["inputText": "hello"])
        #expect(try Self.request(["input": ["hello"], "dimensions": 512], EmbeddingModels.titan) == ["inputText": "hello", "dimensions": 512])
        #expect(Self.requestError(["input": ["a", "b"]], EmbeddingModels.titan)
            == "error transforming to bedrock://llm/v1/embeddings: Amazon Titan embedding models take one input per request, got 2")
    }

    @Test func bedrockCohere() throws {
        #expect(try Self.request(["input": ["a", "b"]], EmbeddingModels.bedrockCohere)
            == ["texts": ["a", "b"], "input_type": "search_document"])
        #expect(Self.requestError(["input": "a", "dimensions": 256], EmbeddingModels.bedrockCohere)
            == "error transforming to bedrock://llm/v1/embeddings: Cohere on bedrock does not support dimensions")
    }

    @Test func bedrockOtherModelsAreRefused() {
        let llama = EmbeddingModels.model(.bedrock, "meta.llama3-8b-instruct-v1:0")
        #expect(Self.requestError(["input": "a"], llama) == "error transforming to bedrock://llm/v1/embeddings: "
            + "bedrock embeddings need an Amazon Titan (amazon.titan-*) or Cohere (cohere.*) model, got 'meta.llama3-8b-instruct-v1:0'")
    }

    @Test func huggingFaceFeatureExtraction() throws {
        #expect(try Self.request(["input": "a"], EmbeddingModels.huggingface) == ["inputs": ["a"]])
        #expect(try Self.request(["input": ["a", "b"]], EmbeddingModels.huggingface) == ["inputs": ["a", "b"]])
        let cached = EmbeddingModels.model(.huggingface, "m", options: ["huggingface": ["use_cache": false, "wait_for_model": true]])
        #expect(try Self.request(["input": "a"], cached)
            == ["inputs": ["a"], "options": ["use_cache": false, "wait_for_model": true]])
        #expect(Self.requestError(["input": "a", "dimensions": 8], EmbeddingModels.huggingface)
            == "error transforming to huggingface://llm/v1/embeddings: huggingface feature-extraction does not support dimensions")
    }

    // MARK: Refusals

    @Test func providersWithoutAnEmbeddingsAPI() {
        #expect(Self.requestError(["input": "a"], EmbeddingModels.anthropic) == "anthropic does not support the llm/v1/embeddings route type")
        #expect(Self.requestError(["input": "a"], EmbeddingModels.llama2Raw)
            == "llama2 with llama2_format 'raw' does not support the llm/v1/embeddings route type")
        #expect(Self.responseError(#"{"data":[]}"#, EmbeddingModels.anthropic) == "anthropic does not support the llm/v1/embeddings route type")
        #expect(LLMEmbeddingsRequest.unsupportedProviderMessage(EmbeddingModels.openai) == nil)
        #expect(LLMEmbeddingsRequest.unsupportedProviderMessage(EmbeddingModels.llama2Ollama) == nil)
    }

    @Test(arguments: [EmbeddingModels.mistralOllama, EmbeddingModels.llama2Ollama, EmbeddingModels.cohere, EmbeddingModels.gemini, EmbeddingModels.vertex, EmbeddingModels.titan, EmbeddingModels.bedrockCohere, EmbeddingModels.huggingface])
    func tokenArraysAreRefusedByTextProviders(_ model: LLMModelConfig) {
        for input: JSONValue in [[1, 2, 3], [[1, 2], [3]]] {
            #expect(Self.requestError(["input": input], model)
                == "error transforming to \(model.provider.rawValue)://llm/v1/embeddings: "
                + "token-array input can only be sent to OpenAI-compatible providers; send the input as text")
        }
    }

    // MARK: Responses

    @Test(arguments: [EmbeddingModels.openai, EmbeddingModels.azure, EmbeddingModels.mistralOpenAI, EmbeddingModels.llama2OpenAI])
    func openAIFormatResponsesAreForwarded(_ model: LLMModelConfig) throws {
        let text = #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="}],"model":"x","usage":{"prompt_tokens":2,"total_tokens":2}}"#
        let result = try Self.response(text, model, encoding: .base64)
        #expect(result.body == .upstream)
        #expect(result.usage == LLMUsage(promptTokens: 2))
        #expect(result.model == "x")
        #expect(Self.responseError(#"{"error":"nope"}"#, model)
            == "transformation failed from type \(model.provider.rawValue)://llm/v1/embeddings: 'data' not in llm/v1/embeddings response")
        #expect(Self.responseError("not json", model)
            == "transformation failed from type \(model.provider.rawValue)://llm/v1/embeddings: failed to decode llm/v1/embeddings response")
    }

    @Test(arguments: [EmbeddingModels.mistralOllama, EmbeddingModels.llama2Ollama])
    func ollamaResponse(_ model: LLMModelConfig) throws {
        let text = #"{"model":"nomic-embed-text","embeddings":[[0.1,-0.2,0.3],[0.4,0.5,0.6]],"total_duration":1,"prompt_eval_count":8}"#
        let result = try Self.response(text, model)
        #expect(Self.converted(result) == Self.openAIList([[0.1, -0.2, 0.3], [0.4, 0.5, 0.6]], model: "nomic-embed-text:v1.5", tokens: 8))
        #expect(result.usage == LLMUsage(promptTokens: 8))
        let provider = model.provider.rawValue
        #expect(Self.responseError(#"{"model":"m"}"#, model)
            == "transformation failed from type \(provider)://llm/v1/embeddings: no embeddings in ollama response")
        #expect(Self.responseError("<html>", model)
            == "transformation failed from type \(provider)://llm/v1/embeddings: failed to decode ollama embeddings response")
        let withoutCount = try Self.response(#"{"embeddings":[[1]]}"#, model)
        #expect(withoutCount.document["usage"] == ["prompt_tokens": 0, "total_tokens": 0])
    }

    @Test func cohereResponse() throws {
        let text = #"{"id":"e1","embeddings":[[0.1,0.2],[0.3,0.4]],"texts":["a","b"],"meta":{"billed_units":{"input_tokens":3}}}"#
        #expect(Self.converted(try Self.response(text, EmbeddingModels.cohere))
            == Self.openAIList([[0.1, 0.2], [0.3, 0.4]], model: "embed-english-v3.0", tokens: 3))
        let typed = #"{"embeddings":{"float":[[0.5]]},"response_type":"embeddings_by_type"}"#
        #expect(Self.converted(try Self.response(typed, EmbeddingModels.cohere)) == Self.openAIList([[0.5]], model: "embed-english-v3.0", tokens: 0))
        #expect(Self.responseError(#"{"embeddings":[]}"#, EmbeddingModels.cohere)
            == "transformation failed from type cohere://llm/v1/embeddings: no embeddings in cohere response")
    }

    @Test func geminiResponse() throws {
        let text = #"{"embeddings":[{"values":[0.25,0.5]},{"values":[1,2]}]}"#
        #expect(Self.converted(try Self.response(text, EmbeddingModels.gemini))
            == Self.openAIList([[0.25, 0.5], [1, 2]], model: "text-embedding-004", tokens: 0))
        #expect(Self.responseError(#"{"candidates":[]}"#, EmbeddingModels.gemini)
            == "transformation failed from type gemini://llm/v1/embeddings: no embeddings in gemini response")
    }

    @Test func vertexResponseSumsTokenCounts() throws {
        let text = #"{"predictions":[{"embeddings":{"values":[0.5],"statistics":{"token_count":3,"truncated":false}}},{"embeddings":{"values":[0.75],"statistics":{"token_count":4}}}],"metadata":{"billableCharacterCount":10}}"#
        let result = try Self.response(text, EmbeddingModels.vertex)
        #expect(Self.converted(result) == Self.openAIList([[0.5], [0.75]], model: "text-embedding-005", tokens: 7))
        #expect(result.usage == LLMUsage(promptTokens: 7))
    }

    @Test func bedrockResponses() throws {
        #expect(Self.converted(try Self.response(#"{"embedding":[0.5,0.25],"inputTextTokenCount":6}"#, EmbeddingModels.titan))
            == Self.openAIList([[0.5, 0.25]], model: "amazon.titan-embed-text-v2:0", tokens: 6))
        let cohere = #"{"embeddings":[[0.1],[0.2]],"id":"x","response_type":"embeddings_floats","texts":["a","b"]}"#
        #expect(Self.converted(try Self.response(cohere, EmbeddingModels.bedrockCohere))
            == Self.openAIList([[0.1], [0.2]], model: "cohere.embed-english-v3", tokens: 0))
        #expect(Self.responseError(#"{"message":"x"}"#, EmbeddingModels.titan)
            == "transformation failed from type bedrock://llm/v1/embeddings: no embeddings in bedrock response")
    }

    @Test func huggingFaceResponses() throws {
        let name = "sentence-transformers/all-MiniLM-L6-v2"
        #expect(Self.converted(try Self.response("[[0.1,0.2],[0.3,0.4]]", EmbeddingModels.huggingface))
            == Self.openAIList([[0.1, 0.2], [0.3, 0.4]], model: name, tokens: 0))
        #expect(Self.converted(try Self.response("[0.1,0.2]", EmbeddingModels.huggingface))
            == Self.openAIList([[0.1, 0.2]], model: name, tokens: 0), "one string input: a single vector")
        #expect(Self.responseError("[[[0.1,0.2],[0.3,0.4]]]", EmbeddingModels.huggingface)
            == "transformation failed from type huggingface://llm/v1/embeddings: "
            + "huggingface returned token-level embeddings (a vector per token); use a sentence-embedding model")
        #expect(Self.responseError(#"{"error":"Model is loading"}"#, EmbeddingModels.huggingface)
            == "transformation failed from type huggingface://llm/v1/embeddings: API error: Model is loading")
        #expect(Self.responseError("[]", EmbeddingModels.huggingface)
            == "transformation failed from type huggingface://llm/v1/embeddings: no embeddings in huggingface response")
    }

    /// Without a configured name the converted answer falls back to what the upstream reports
    /// (Ollama) or leaves `model` out.
    @Test func modelFallback() throws {
        let unnamed = EmbeddingModels.model(.mistral, nil, options: ["mistral_format": "ollama"])
        #expect(try Self.response(#"{"model":"m","embeddings":[[1]]}"#, unnamed).model == "m")
        #expect(try Self.response("[[1]]", EmbeddingModels.model(.huggingface, nil)).document["model"] == nil)
    }

    // MARK: base64

    /// `encoding_format: "base64"` (the OpenAI Python SDK's default): every converted answer
    /// carries base64 of the little-endian float32 values, which decode back to the vectors.
    @Test func base64RoundTrip() throws {
        let vector: [Double] = [0.1, -0.2, 3.5, 0, -1e-7, 123456.789]
        let numbers = "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
        let cases: [(LLMModelConfig, String)] = [
            (EmbeddingModels.mistralOllama, #"{"embeddings":[\#(numbers),[1]],"prompt_eval_count":2}"#),
            (EmbeddingModels.cohere, #"{"embeddings":[\#(numbers),[1]]}"#),
            (EmbeddingModels.gemini, #"{"embeddings":[{"values":\#(numbers)},{"values":[1]}]}"#),
            (EmbeddingModels.vertex, #"{"predictions":[{"embeddings":{"values":\#(numbers)}},{"embeddings":{"values":[1]}}]}"#),
            (EmbeddingModels.bedrockCohere, #"{"embeddings":[\#(numbers),[1]]}"#),
            (EmbeddingModels.huggingface, "[\(numbers),[1]]"),
        ]
        for (model, text) in cases {
            let document = try #require(Self.converted(try Self.response(text, model, encoding: .base64)))
            let data = try #require(document["data"]?.arrayValue)
            #expect(data.count == 2)
            #expect(Self.floats(base64: data[0]["embedding"]?.stringValue) == vector.map { Float($0) }, "\(model.provider)")
            #expect(Self.floats(base64: data[1]["embedding"]?.stringValue) == [1], "\(model.provider)")
            #expect(data[1]["index"] == 1)
            #expect(data[1]["object"] == "embedding")
        }
        let titan = try #require(Self.converted(try Self.response(#"{"embedding":\#(numbers),"inputTextTokenCount":1}"#,
                                                                  EmbeddingModels.titan, encoding: .base64)))
        #expect(Self.floats(base64: titan["data"]?.arrayValue?.first?["embedding"]?.stringValue) == vector.map { Float($0) })
    }

    /// OpenAI's own encoding of `[1.0]`: `AACAPw==`.
    @Test func base64MatchesOpenAIBytes() throws {
        let document = try #require(Self.converted(try Self.response("[[1, -2]]", EmbeddingModels.huggingface, encoding: .base64)))
        #expect(document["data"]?.arrayValue?.first?["embedding"] == "AACAPwAAAMA=")
    }

    // MARK: Upstream targets

    private static func target(_ model: LLMModelConfig, stream: Bool = false, apiVersion: String? = nil) throws -> LLMUpstream {
        try LLMUpstream.target(route: .embeddings, model: model, stream: stream, clientPath: "/client/embeddings",
                               clientAPIVersion: apiVersion)
    }

    private static func expect(_ upstream: LLMUpstream, tls: Bool = true, host: String, port: Int = 443, path: String,
                               query: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(upstream.tls == tls, "tls", sourceLocation: sourceLocation)
        #expect(upstream.host == host, sourceLocation: sourceLocation)
        #expect(upstream.port == port, sourceLocation: sourceLocation)
        #expect(upstream.path == path, sourceLocation: sourceLocation)
        #expect(upstream.query.map { "\($0.0)=\($0.1)" } == query, sourceLocation: sourceLocation)
    }

    @Test func defaultTargets() throws {
        Self.expect(try Self.target(EmbeddingModels.openai), host: "api.openai.com", path: "/v1/embeddings")
        Self.expect(try Self.target(EmbeddingModels.azure), host: "my-instance.openai.azure.com",
                    path: "/openai/deployments/embed-deployment/embeddings", query: ["api-version=2023-05-15"])
        Self.expect(try Self.target(EmbeddingModels.azure, apiVersion: "2024-10-21"), host: "my-instance.openai.azure.com",
                    path: "/openai/deployments/embed-deployment/embeddings", query: ["api-version=2024-10-21"])
        Self.expect(try Self.target(EmbeddingModels.mistralOpenAI), host: "api.mistral.ai", path: "/v1/embeddings")
        Self.expect(try Self.target(EmbeddingModels.cohere), host: "api.cohere.com", path: "/v1/embed")
        Self.expect(try Self.target(EmbeddingModels.gemini), host: "generativelanguage.googleapis.com",
                    path: "/v1beta/models/text-embedding-004:batchEmbedContents")
        Self.expect(try Self.target(EmbeddingModels.vertex), host: "us-central1-aiplatform.googleapis.com",
                    path: "/v1/projects/my-project/locations/us-central1/publishers/google/models/text-embedding-005:predict")
        Self.expect(try Self.target(EmbeddingModels.titan), host: "bedrock-runtime.us-east-1.amazonaws.com",
                    path: "/model/amazon.titan-embed-text-v2:0/invoke")
        Self.expect(try Self.target(EmbeddingModels.huggingface), host: "api-inference.huggingface.co",
                    path: "/pipeline/feature-extraction/sentence-transformers/all-MiniLM-L6-v2")
    }

    /// Embeddings never stream: the stream flag changes no operation.
    @Test func streamFlagIsIgnored() throws {
        #expect(try Self.target(EmbeddingModels.gemini, stream: true).path == "/v1beta/models/text-embedding-004:batchEmbedContents")
        #expect(try Self.target(EmbeddingModels.vertex, stream: true).path.hasSuffix(":predict"))
        #expect(try Self.target(EmbeddingModels.titan, stream: true).path == "/model/amazon.titan-embed-text-v2:0/invoke")
    }

    @Test func upstreamURLAndPathOverrides() throws {
        Self.expect(try Self.target(EmbeddingModels.llama2Ollama), tls: false, host: "ollama", port: 11434, path: "/api/embed")
        Self.expect(try Self.target(EmbeddingModels.llama2OpenAI), tls: false, host: "vllm", port: 8000, path: "/v1/embeddings")
        for provider in [LLMProvider.openai, .cohere] {
            let url = EmbeddingModels.model(provider, "m", options: ["upstream_url": "http://self-hosted:9000/embed-here",
                                                          "upstream_path": "/ignored"])
            Self.expect(try Self.target(url), tls: false, host: "self-hosted", port: 9000, path: "/embed-here")
            let path = EmbeddingModels.model(provider, "m", options: ["upstream_path": "/custom"])
            #expect(try Self.target(path).path == "/custom")
        }
        let azurePath = EmbeddingModels.model(.azure, "m", options: ["azure_instance": "i", "azure_deployment_id": "d",
                                                          "upstream_path": "/extensions/embeddings"])
        #expect(try Self.target(azurePath).path == "/openai/deployments/d/extensions/embeddings")
        // Gemini and Bedrock: the whole upstream_url, and upstream_path even with it.
        let gemini = EmbeddingModels.model(.gemini, "text-embedding-004", options: ["upstream_url": "http://gemini-mock:8080/embed"])
        Self.expect(try Self.target(gemini), tls: false, host: "gemini-mock", port: 8080, path: "/embed")
        let bedrock = EmbeddingModels.model(.bedrock, "amazon.titan-embed-text-v1", options: [
            "upstream_url": "https://bedrock-mock:9443/x", "upstream_path": "/model/y/invoke", "bedrock": ["aws_region": "us-east-1"],
        ])
        Self.expect(try Self.target(bedrock), host: "bedrock-mock", port: 9443, path: "/model/y/invoke")
        // Hugging Face: upstream_url as is (a text-embeddings-inference server, say).
        let tei = EmbeddingModels.model(.huggingface, "bge", options: ["upstream_url": "http://tei.local:8080/embed"])
        Self.expect(try Self.target(tei), tls: false, host: "tei.local", port: 8080, path: "/embed")
        let bare = EmbeddingModels.model(.huggingface, "bge", options: ["upstream_url": "https://tei.local"])
        Self.expect(try Self.target(bare), host: "tei.local", path: "/")
    }

    @Test func anthropicHasNoEmbeddingsTarget() {
        #expect(throws: LLMUpstream.Failure.self) { try Self.target(EmbeddingModels.anthropic) }
    }

    // MARK: Schema

    private static let minimalEmbeddingsProxy: JSONValue = [
        "route_type": "llm/v1/embeddings", "model": ["provider": "openai", "name": "text-embedding-3-small"],
    ]

    @Test func proxyRecordAcceptsEmbeddings() throws {
        let record: [String: JSONValue] = [
            "route_type": "llm/v1/embeddings", "model": ["provider": "openai"],
            "logging": ["log_statistics": false, "log_payloads": false],
        ]
        #expect(LLMConfigSchema.proxyRecord.validate(record) == nil)
        var other = record
        other["route_type"] = "llm/v1/responses"
        let errors = try #require(LLMConfigSchema.proxyRecord.validate(other))
        #expect(lookup(errors.json, "route_type") == "expected one of: llm/v1/chat, llm/v1/completions, llm/v1/embeddings, preserve")
        #expect(LLMConfigSchema.record.validate(record) != nil, "the shared 3.10 record keeps its values")
    }

    @Test func aiProxyAcceptsTheEmbeddingsRouteType() {
        guard let entity = expectValid(processPlugin("ai-proxy", config: Self.minimalEmbeddingsProxy)) else { return }
        #expect(lookup(entity, "config.route_type") == "llm/v1/embeddings")
    }

    @Test(arguments: transformerNames)
    func transformersStayChatOnly(_ name: String) {
        expectErrors(transformer(name, ["llm": ["route_type": "llm/v1/embeddings"]]),
                     ["config.llm.route_type": "expected one of: llm/v1/chat, llm/v1/completions, preserve"])
    }
}
