import Core
import Plugins
import Testing

/// The model configurations of Kong's provider integration specs (`02…11-*_integration_spec.lua`),
/// reduced to what the conversions read.
enum IntegrationModels {
    static let openai = config(["provider": "openai", "name": "gpt-3.5-turbo"])
    static let azure = config(["provider": "azure", "name": "gpt-3.5-turbo",
                               "options": ["azure_instance": "001-kong-t", "azure_deployment_id": "gpt-3.5-custom"]])
    static let mistral = config(["provider": "mistral", "name": "mistralai/Mistral-7B-Instruct-v0.1-instruct",
                                 "options": ["mistral_format": "openai"]])
    static let anthropic = config(["provider": "anthropic", "name": "claude-2.1", "options": ["anthropic_version": "2023-06-01"]])
    static let cohere = config(["provider": "cohere", "name": "command"])
    static let gemini = config(["provider": "gemini", "name": "gemini-1.5-flash"])
    static let huggingface = config(["provider": "huggingface", "name": "mistralai/Mistral-7B-Instruct-v0.2"])
    static let llama2Raw = config(["provider": "llama2", "name": "llama-2-7b-chat-hf", "options": ["llama2_format": "raw"]])

    static func config(_ json: JSONValue) -> LLMModelConfig { LLMModelConfig(json: json)! }
}

/// One canned upstream body of MANIFEST §5 and what the non-stream conversion must make of it
/// when it arrives with status 200 (other statuses are passed through without conversion).
struct ResponseFixtureCase: Sendable, CustomTestStringConvertible {
    enum Outcome: Sendable {
        /// OpenAI-compatible: the bytes go out unchanged.
        case forwarded
        /// The whole converted document.
        case converted(JSONValue)
        /// The §2.7 reason (the client sees it inside the 500 envelope).
        case failure(String)
    }

    let file: String
    let route: LLMRouteType
    let model: LLMModelConfig
    let outcome: Outcome
    /// `response_model` and the token counts analytics read (§2.11); unchecked for failures.
    var responseModel: String?
    var promptTokens: Int?
    var completionTokens: Int?

    var testDescription: String { "\(model.provider.rawValue) \(route.rawValue) \(file)" }

    static let all: [ResponseFixtureCase] = [
        // OpenAI-compatible providers: forwarded when `choices` is present.
        .init(file: "openai/llm-v1-chat/responses/good.json", route: .chat, model: IntegrationModels.openai,
              outcome: .forwarded, responseModel: "gpt-3.5-turbo-0613", promptTokens: 25, completionTokens: 12),
        .init(file: "openai/llm-v1-chat/responses/bad_upstream_response.json", route: .chat, model: IntegrationModels.openai,
              outcome: .failure("'choices' not in llm/v1/chat response")),
        .init(file: "openai/llm-v1-chat/responses/internal_server_error.html", route: .chat, model: IntegrationModels.openai,
              outcome: .failure("failed to decode llm/v1/chat response")),
        .init(file: "openai/llm-v1-completions/responses/good.json", route: .completions, model: IntegrationModels.openai,
              outcome: .forwarded, responseModel: "gpt-3.5-turbo-instruct", promptTokens: 4, completionTokens: 16),
        .init(file: "openai/llm-v1-embeddings/responses/good.json", route: .preserve, model: IntegrationModels.openai,
              outcome: .forwarded, responseModel: "text-embedding-3-large", promptTokens: 4, completionTokens: nil),
        .init(file: "openai/llm-v1-chat/responses/good.json", route: .chat, model: IntegrationModels.azure,
              outcome: .forwarded, responseModel: "gpt-3.5-turbo-0613", promptTokens: 25, completionTokens: 12),
        .init(file: "mistral/llm-v1-chat/responses/good.json", route: .chat, model: IntegrationModels.mistral,
              outcome: .forwarded, responseModel: "mistralai/Mistral-7B-Instruct-v0.1-instruct", promptTokens: 25, completionTokens: 12),
        .init(file: "mistral/llm-v1-completions/responses/good.json", route: .completions, model: IntegrationModels.mistral,
              outcome: .forwarded, responseModel: "mistralai/Mistral-7B-Instruct-v0.1-instruct", promptTokens: 4, completionTokens: 16),

        // Anthropic.
        .init(file: "anthropic/llm-v1-chat/responses/good.json", route: .chat, model: IntegrationModels.anthropic,
              outcome: .converted([
                  "choices": [["index": 0, "message": ["role": "assistant", "content": "The sum of 1 + 1 is 2."], "finish_reason": "end_turn"]],
                  "usage": ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0],
                  "model": "claude-2.1", "object": "chat.completion",
              ]),
              responseModel: "claude-2.1", promptTokens: 0, completionTokens: 0),
        // Spec §10.2: a usage-less answer carries a string where usage belongs.
        .init(file: "anthropic/llm-v1-chat/responses/no_usage_response.json", route: .chat, model: IntegrationModels.anthropic,
              outcome: .converted([
                  "choices": [["index": 0, "message": ["role": "assistant", "content": "The sum of 1 + 1 is 2."], "finish_reason": "end_turn"]],
                  "usage": "no usage data returned from upstream",
                  "model": "claude-2.1", "object": "chat.completion",
              ]),
              responseModel: "claude-2.1"),
        // Spec §10.1: usage without the token fields is an empty object.
        .init(file: "anthropic/llm-v1-chat/responses/malformed_usage_response.json", route: .chat, model: IntegrationModels.anthropic,
              outcome: .converted([
                  "choices": [["index": 0, "message": ["role": "assistant", "content": "The sum of 1 + 1 is 2."], "finish_reason": "end_turn"]],
                  "usage": [:],
                  "model": "claude-2.1", "object": "chat.completion",
              ]),
              responseModel: "claude-2.1"),
        .init(file: "anthropic/llm-v1-chat/responses/bad_upstream_response.json", route: .chat, model: IntegrationModels.anthropic,
              outcome: .failure("'content' not in anthropic://llm/v1/chat response")),
        .init(file: "anthropic/llm-v1-chat/responses/bad_request.json", route: .chat, model: IntegrationModels.anthropic,
              outcome: .failure("'content' not in anthropic://llm/v1/chat response")),
        .init(file: "anthropic/llm-v1-chat/responses/internal_server_error.html", route: .chat, model: IntegrationModels.anthropic,
              outcome: .failure("failed to decode anthropic response")),
        .init(file: "anthropic/llm-v1-completions/responses/good.json", route: .completions, model: IntegrationModels.anthropic,
              outcome: .converted([
                  "choices": [["index": 0, "text": " Hello! My name is Claude.", "finish_reason": "stop_sequence"]],
                  "model": "claude-2.1", "object": "text_completion",
              ]),
              responseModel: "claude-2.1"),
        // Kong's reason names the chat route on the completions route too.
        .init(file: "anthropic/llm-v1-completions/responses/bad_request.json", route: .completions, model: IntegrationModels.anthropic,
              outcome: .failure("'completion' not in anthropic://llm/v1/chat response")),

        // Cohere.
        .init(file: "cohere/llm-v1-chat/responses/good.json", route: .chat, model: IntegrationModels.cohere,
              outcome: .converted([
                  "choices": [["index": 0, "message": ["role": "assistant", "content": "The sum of 1 + 1 is 2."], "finish_reason": "stop"]],
                  "object": "chat.completion", "model": "command", "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                  "usage": ["prompt_tokens": 81, "completion_tokens": 258, "total_tokens": 339],
              ]),
              responseModel: "command", promptTokens: 81, completionTokens: 258),
        .init(file: "cohere/llm-v1-chat/responses/bad_upstream_response.json", route: .chat, model: IntegrationModels.cohere,
              outcome: .failure("'text' or 'generations' missing from cohere response body")),
        .init(file: "cohere/llm-v1-completions/responses/good.json", route: .completions, model: IntegrationModels.cohere,
              outcome: .converted([
                  "choices": [["index": 0, "text": "1 + 1 is 2.", "finish_reason": "stop"]],
                  "object": "text_completion", "model": "command", "id": "string",
                  "usage": ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0],
              ]),
              responseModel: "command", promptTokens: 0, completionTokens: 0),
        .init(file: "cohere/llm-v1-completions/responses/unauthorized.json", route: .completions, model: IntegrationModels.cohere,
              outcome: .failure("'text' or 'generations' missing from cohere response body")),

        // Gemini: the configured model name, not `modelVersion`.
        .init(file: "gemini/llm-v1-chat/responses/good.json", route: .chat, model: IntegrationModels.gemini,
              outcome: .converted([
                  "choices": [["index": 0, "message": ["role": "assistant", "content": "Everything is okay."], "finish_reason": "stop"]],
                  "object": "chat.completion", "model": "gemini-1.5-flash",
                  "usage": ["prompt_tokens": 2, "completion_tokens": 11, "total_tokens": 13],
              ]),
              responseModel: "gemini-1.5-flash", promptTokens: 2, completionTokens: 11),
        // A safety-blocked candidate: empty choices, encoded `{}` as Kong does (§10.1).
        .init(file: "gemini/llm-v1-chat/responses/fails_safety.json", route: .chat, model: IntegrationModels.gemini,
              outcome: .converted([
                  "choices": [:], "model": "gemini-1.5-flash",
                  "usage": ["prompt_tokens": 319, "total_tokens": 319],
              ]),
              responseModel: "gemini-1.5-flash", promptTokens: 319, completionTokens: nil),

        // Hugging Face.
        .init(file: "huggingface/llm-v1-chat/responses/good.json", route: .chat, model: IntegrationModels.huggingface,
              outcome: .converted([
                  "choices": [[
                      "message": ["content": " The sum of 1 + 1 is 2. This is a basic arithmetic operation and the answer is always the same: adding one to one results in having two in total."],
                      "index": 0, "finish_reason": "complete",
                  ]],
                  "model": "mistralai/Mistral-7B-Instruct-v0.2", "object": "chat.completion",
                  "usage": ["prompt_tokens": 26, "completion_tokens": 40, "total_tokens": 66],
              ]),
              responseModel: "mistralai/Mistral-7B-Instruct-v0.2", promptTokens: 26, completionTokens: 40),
        .init(file: "huggingface/llm-v1-completions/responses/good.json", route: .completions, model: IntegrationModels.huggingface,
              outcome: .converted([
                  "choices": [["message": ["content": "I am a language model AI created by Mistral AI"], "index": 0, "finish_reason": "complete"]],
                  "model": "mistralai/Mistral-7B-Instruct-v0.2", "object": "llm/v1/completions", "usage": [:],
              ]),
              responseModel: "mistralai/Mistral-7B-Instruct-v0.2"),
        .init(file: "huggingface/llm-v1-chat/responses/bad_request.json", route: .chat, model: IntegrationModels.huggingface,
              outcome: .failure("API error: Template error: undefined value (in <string>:1)")),
        .init(file: "huggingface/llm-v1-chat/responses/bad_response_model_load.json", route: .chat, model: IntegrationModels.huggingface,
              outcome: .failure("API error: Model mistralai/Mistral-7B-Instruct-v0.2 is currently loading")),
        .init(file: "huggingface/llm-v1-chat/responses/bad_response_timeout.json", route: .chat, model: IntegrationModels.huggingface,
              outcome: .failure("API error: Model mistralai/Mistral-7B-Instruct-v0.2 time out")),
        .init(file: "huggingface/llm-v1-chat/responses/unauthorized.json", route: .chat, model: IntegrationModels.huggingface,
              outcome: .failure("API error: Authorization header is correct, but the token seems invalid")),
        .init(file: "huggingface/llm-v1-completions/responses/bad_request.json", route: .completions, model: IntegrationModels.huggingface,
              outcome: .failure("API error: Failed to deserialize the JSON body into the target type: missing field `inputs` at line 9 column 7")),

        // llama2 raw: the answer is what follows the last `[/INST]`, trimmed.
        .init(file: "llama2/raw/responses/good.json", route: .chat, model: IntegrationModels.llama2Raw,
              outcome: .converted([
                  "choices": [["message": ["content": "Is a well known font.", "role": "assistant"], "index": 0]],
                  "object": "chat.completion",
              ])),
        .init(file: "llama2/raw/responses/good.json", route: .completions, model: IntegrationModels.llama2Raw,
              outcome: .converted(["choices": [["index": 0, "text": "Is a well known font."]], "object": "text_completion"])),
        .init(file: "llama2/raw/responses/bad_request.json", route: .chat, model: IntegrationModels.llama2Raw,
              outcome: .failure("cannot parse response from llama2 endpoint")),
    ]
}

@Suite("Kong provider fixtures: non-stream response conversion (MANIFEST §5)",
       .enabled(if: KongFixtures.available, KongFixtures.missingReason))
struct ProviderResponseFixtureTests {
    @Test(.kongGroup("provider-responses"), arguments: ResponseFixtureCase.all)
    func response(_ fixture: ResponseFixtureCase) throws {
        KongGroup.name(fixture)
        let upstream = Array(try KongFixtures.data(fixture.file))
        let provider = fixture.model.provider
        switch fixture.outcome {
        case .failure(let reason):
            let error = #expect(throws: LLMConversionError.self) {
                try LLMResponseConversion.fromProvider(upstream, route: fixture.route, model: fixture.model)
            }
            #expect(error?.message == reason)
            #expect(error?.clientMessage == "transformation failed from type \(provider.rawValue)://\(fixture.route.rawValue): \(reason)")
            return
        case .forwarded:
            let converted = try LLMResponseConversion.fromProvider(upstream, route: fixture.route, model: fixture.model)
            #expect(converted.body == .upstream)
            #expect(converted.bytes(upstream: upstream) == upstream)
            // ai-proxy builds only what analytics read; a transformer's call gets the whole document.
            let whole = try JSONValue.parse(bytes: upstream)
            #expect(converted.document["usage"] == whole["usage"] && converted.document["model"] == whole["model"])
            let forTransformer = try LLMResponseConversion.fromProvider(upstream, route: fixture.route, model: fixture.model,
                                                                        transformerCall: true)
            #expect(forTransformer.document == whole)
            check(converted, fixture)
        case .converted(let expected):
            let converted = try LLMResponseConversion.fromProvider(upstream, route: fixture.route, model: fixture.model)
            // What the client receives, decoded: the encoder must keep `{}` for empty tables.
            let emitted = try JSONValue.parse(bytes: converted.bytes(upstream: upstream))
            #expect(emitted == expected, "got \(emitted.serialized())")
            #expect(converted.body == .converted(expected))
            check(converted, fixture)
        }
    }

    private func check(_ converted: LLMConvertedResponse, _ fixture: ResponseFixtureCase) {
        #expect(converted.model == fixture.responseModel)
        #expect(converted.promptTokens == fixture.promptTokens)
        #expect(converted.completionTokens == fixture.completionTokens)
    }

    /// The transformer unit spec's model per fixture directory (MANIFEST §6).
    static let transformerModels: [String: LLMModelConfig] = [
        "openai": IntegrationModels.config(["provider": "openai", "name": "gpt-4"]),
        "azure": IntegrationModels.config(["provider": "azure", "name": "gpt-4"]),
        "cohere": IntegrationModels.config(["provider": "cohere", "name": "command"]),
        "anthropic": IntegrationModels.config(["provider": "anthropic", "name": "claude-2.1"]),
        "llama2": IntegrationModels.config(["provider": "llama2", "name": "llama2", "options": ["llama2_format": "raw"]]),
        "mistral": IntegrationModels.config(["provider": "mistral", "name": "mistral", "options": ["mistral_format": "ollama"]]),
        "gemini": IntegrationModels.config(["provider": "gemini", "name": "gemini-1.5-flash"]),
    ]

    /// MANIFEST §6: each provider's canned transformer answer converts to a chat body whose
    /// `choices[0].message.content` holds the doubled-ages JSON.
    @Test(.kongGroup("transformer-answers"), arguments: transformerModels.keys.sorted())
    func transformerAnswer(_ directory: String) throws {
        KongGroup.name(directory)
        let model = try #require(Self.transformerModels[directory])
        let upstream = Array(try KongFixtures.data("\(directory)/request-transformer/response-in-json.json"))
        let converted = try LLMResponseConversion.fromProvider(upstream, route: .chat, model: model, transformerCall: true)
        let emitted = try JSONValue.parse(bytes: converted.bytes(upstream: upstream))
        let content = try #require(emitted["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue)
        #expect(try JSONValue.parse(content) == [
            "persons": [["name": "Kong A", "age": 62], ["name": "Kong B", "age": 84]],
        ])
    }
}

/// Kong's integration request bodies (MANIFEST §5) through the request conversion.
@Suite("Kong provider fixtures: request conversion of the integration requests",
       .enabled(if: KongFixtures.available, KongFixtures.missingReason), .kongGroup("provider-requests"))
struct ProviderRequestFixtureTests {
    static func request(_ file: String) throws -> JSONValue {
        try JSONValue.parse(KongFixtures.text(file))
    }

    static let toolChoices: [(String, JSONValue)] = [
        ("tool_choice_auto", ["type": "auto"]),
        ("tool_choice_none", ["type": "none"]),
        ("tool_choice_required", ["type": "any"]),
        ("tool_choice_object_function", ["type": "tool", "name": "my_function"]),
    ]

    /// The inputs of Kong's Anthropic tool_choice test, mapped to Anthropic's forms.
    @Test(arguments: toolChoices)
    func anthropicToolChoice(_ name: String, _ expected: JSONValue) throws {
        KongGroup.name("anthropicToolChoice \(name)")
        let body = try Self.request("openai/llm-v1-chat/requests/\(name).json")
        let converted = try LLMRequestConversion.toProvider(body, route: .chat, model: IntegrationModels.anthropic)
        #expect(converted["tool_choice"] == expected)
        // Tools keep their function object, `parameters` renamed to `input_schema`.
        let tools = body["tools"]?.arrayValue ?? []
        let expectedTools: [JSONValue] = tools.map { tool in
            var function = tool["function"]?.objectValue ?? [:]
            function["input_schema"] = function.removeValue(forKey: "parameters")
            return .object(function)
        }
        #expect(converted["tools"]?.arrayValue ?? [] == expectedTools)
        #expect(converted["model"] == "claude-2.1")
    }

    @Test func anthropicHoistsTheSystemPrompt() throws {
        let converted = try LLMRequestConversion.toProvider(
            try Self.request("anthropic/llm-v1-chat/requests/good.json"), route: .chat, model: IntegrationModels.anthropic)
        #expect(converted == [
            "model": "claude-2.1", "system": "You are a helpful assistant.", "stream": false,
            "messages": [["role": "user", "content": "What is 1 + 1?"]],
        ])
    }

    @Test func cohereMovesTheSystemPromptIntoTheHistory() throws {
        let converted = try LLMRequestConversion.toProvider(
            try Self.request("cohere/llm-v1-chat/requests/good.json"), route: .chat, model: IntegrationModels.cohere)
        #expect(converted == [
            "model": "command", "stream": false, "message": "What is 1 + 1?",
            "chat_history": [["role": "USER", "message": "You are a helpful assistant."]],
        ])
    }

    @Test func geminiReferencesAnHTTPSImage() throws {
        let converted = try LLMRequestConversion.toProvider(
            try Self.request("openai/llm-v1-chat/requests/good_multi_modal.json"), route: .chat, model: IntegrationModels.gemini)
        #expect(converted == [
            "contents": [[
                "role": "user",
                "parts": [
                    ["text": "What's in this image?"],
                    ["fileData": [
                        "fileUri": "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg",
                        "mimeType": "image/generic",
                    ]],
                ],
            ]],
            "systemInstruction": ["parts": [["text": "You are a helpful assistant."]]],
            "generationConfig": [:],
        ])
    }

    /// A later `system` turn closes a model answer (`</s>`); the second message closes the first
    /// instruction whatever its role.
    @Test func llama2RawChatTemplate() throws {
        let converted = try LLMRequestConversion.toProvider(
            try Self.request("llama2/raw/requests/good-chat.json"), route: .chat, model: IntegrationModels.llama2Raw)
        #expect(converted == [
            "inputs": "<s>[INST] <<SYS>> You are a video game knowledgebase. <</SYS>> What is Missingno.? [/INST] Missingno. is a weird character from a popular game. </s> <s>[INST] Why is it popular? [/INST]",
            "parameters": ["stream": false],
        ])
    }

    @Test func huggingFaceCompletionsUseInputs() throws {
        let converted = try LLMRequestConversion.toProvider(
            try Self.request("huggingface/llm-v1-completions/requests/good.json"), route: .completions, model: IntegrationModels.huggingface)
        #expect(converted == [
            "inputs": "What are you?", "model": "mistralai/Mistral-7B-Instruct-v0.2", "parameters": [:],
            "options": ["use_cache": false, "wait_for_model": false],
        ])
    }
}
