import Core
import Plugins
import Testing

/// The ai-proxy conversions (spec §2.6, §2.7, §2.11) on behaviours Kong's fixtures do not reach.
@Suite("LLM request/response conversion")
struct LLMConversionTests {
    // MARK: Helpers

    private static func model(_ provider: LLMProvider, _ name: String?, options: JSONValue = [:]) -> LLMModelConfig {
        var json: JSONValue = ["provider": .string(provider.rawValue), "options": options]
        if let name { json["name"] = .string(name) }
        return LLMModelConfig(json: json)!
    }

    private static func request(_ body: JSONValue, _ route: LLMRouteType, _ model: LLMModelConfig) throws -> JSONValue {
        try LLMRequestConversion.toProvider(body, route: route, model: model)
    }

    private static func request(_ body: JSONValue, _ model: LLMModelConfig) throws -> JSONValue {
        try request(body, .chat, model)
    }

    /// The error a request conversion fails with (nil, recorded as an issue, when it succeeds).
    private static func requestError(_ body: JSONValue, _ route: LLMRouteType, _ model: LLMModelConfig) -> LLMConversionError? {
        #expect(throws: LLMConversionError.self) { try LLMRequestConversion.toProvider(body, route: route, model: model) }
    }

    private static func response(_ text: String, _ route: LLMRouteType, _ model: LLMModelConfig) throws -> LLMConvertedResponse {
        try LLMResponseConversion.fromProvider(Array(text.utf8), route: route, model: model)
    }

    private static func response(_ text: String, _ model: LLMModelConfig) throws -> LLMConvertedResponse {
        try response(text, .chat, model)
    }

    private static func responseError(_ text: String, _ route: LLMRouteType, _ model: LLMModelConfig,
                                      transformerCall: Bool = false) -> LLMConversionError? {
        #expect(throws: LLMConversionError.self) {
            try LLMResponseConversion.fromProvider(Array(text.utf8), route: route, model: model, transformerCall: transformerCall)
        }
    }

    /// The converted document (fails the test when the body was forwarded).
    private static func converted(_ result: LLMConvertedResponse) -> JSONValue? {
        guard case .converted(let document) = result.body else {
            Issue.record("expected a converted body, got the upstream bytes")
            return nil
        }
        return document
    }

    private static let chat: JSONValue = ["messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": "Hi"]]]
    private static let gemini = model(.gemini, "gemini-1.5-pro")
    private static let bedrock = model(.bedrock, "anthropic.claude-3-sonnet-20240229-v1:0")
    private static let anthropic = model(.anthropic, "claude-3-opus", options: ["anthropic_version": "2023-06-01"])

    // MARK: Defaults merge and pass-through (§2.6)

    @Test func configuredOptionsReplaceRequestValuesOthersAreKept() throws {
        let body: JSONValue = ["messages": [["role": "user", "content": "Hi"]], "temperature": 1.5, "top_p": 0.3,
                               "max_tokens": 10, "top_k": 3, "user": "u-1"]
        let out = try Self.request(body, Self.model(.openai, "gpt-4o", options: ["temperature": 0.2, "max_tokens": 99]))
        #expect(out == [
            "messages": [["role": "user", "content": "Hi"]], "temperature": 0.2, "max_tokens": 99, "top_p": 0.3,
            "user": "u-1", "model": "gpt-4o", "stream": false,
        ])
    }

    @Test func mergeAppliesAllFourOptions() {
        var options = LLMModelOptions()
        options.temperature = 0.1
        options.maxTokens = 7
        options.topP = 0.9
        options.topK = 4
        let merged = LLMRequestConversion.mergingDefaults(["temperature": 2, "top_k": 50, "stop": "x"], options: options)
        #expect(merged == ["temperature": 0.1, "max_tokens": 7, "top_p": 0.9, "top_k": 4, "stop": "x"])
    }

    @Test func openAIKeepsTheRequestModelWhenNoneIsConfiguredAndAStreamFlag() throws {
        let out = try Self.request(["prompt": "Hi", "model": "own", "stream": true], .completions, Self.model(.azure, nil))
        #expect(out == ["prompt": "Hi", "model": "own", "stream": true])
    }

    @Test func preserveIsNeverConverted() throws {
        let body: JSONValue = ["input": "embed me", "top_k": 3]
        #expect(try Self.request(body, .preserve, Self.gemini) == body)
        let forwarded = try Self.response(#"{"data":[],"model":"m","usage":{"prompt_tokens":4}}"#, .preserve, Self.gemini)
        #expect(forwarded.body == .upstream)
        #expect(forwarded.model == "m")
        #expect(forwarded.usage == LLMUsage(promptTokens: 4, completionTokens: 0))
        let notJSON = try Self.response("plain text", .preserve, Self.gemini)
        #expect(notJSON.document == .null)
    }

    // MARK: Request errors (§2.6): detail and client text

    @Test func unsupportedRoutes() {
        let gemini = Self.requestError(["prompt": "Hi"], .completions, Self.gemini)
        #expect(gemini?.clientMessage == "no transformer for gemini://llm/v1/completions")
        let bedrock = Self.requestError(["prompt": "Hi"], .completions, Self.bedrock)
        #expect(bedrock?.clientMessage == "no transformer for bedrock://llm/v1/completions")
        let mistral = Self.requestError(Self.chat, .chat, Self.model(.mistral, "m"))
        #expect(mistral?.clientMessage == "no transformer available to format mistral://llm/v1/chat/")
        #expect(mistral?.isPlainTextBody == false)
        // Kong calls the missing llama2 transformer, which fails like a conversion.
        let llama2 = Self.requestError(Self.chat, .chat, Self.model(.llama2, "l"))
        #expect(llama2?.clientMessage == "error transforming to llama2://llm/v1/chat/")
        let response = Self.responseError("{}", .chat, Self.model(.mistral, "m"))
        #expect(response?.clientMessage == "no transformer available from format mistral://llm/v1/chat/")
    }

    @Test func geminiErrorsKeepTheDetail() {
        let cases: [(JSONValue, String)] = [
            ([["type": "text"]], "message part type is 'text' but is missing .text block"),
            ([["type": "image_url", "image_url": [:]]], "message part type is 'image_url' but is missing .image_url.url block"),
            ([["type": "image_url", "image_url": ["url": "data:x"]]],
             "could not decode OpenAI image-part, image URL is less than 10 bytes, which is not parsable"),
            ([["type": "input_audio", "input_audio": [:]]], "cannot transform part of type 'input_audio' to Gemini format"),
            ([], "message at position 2 does not match expected array format"),
            (["not": "a list"], "message at position 2 does not match expected array format"),
        ]
        for (content, detail) in cases {
            let body: JSONValue = ["messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": content]]]
            let error = Self.requestError(body, .chat, Self.gemini)
            #expect(error?.message == detail)
            #expect(error?.clientMessage == "error transforming to gemini://llm/v1/chat: \(detail)")
        }
    }

    @Test func geminiOneZeroHasNoSystemPrompt() throws {
        let error = Self.requestError(Self.chat, .chat, Self.model(.gemini, "gemini-1.0-pro"))
        #expect(error?.clientMessage == "error transforming to gemini://llm/v1/chat: system prompts aren't supported on gemini-1.0 models")
        // Without a system message the model is fine.
        let out = try Self.request(["messages": [["role": "user", "content": "Hi"]]], Self.model(.gemini, "gemini-1.0-pro"))
        #expect(out["contents"] == [["role": "user", "parts": [["text": "Hi"]]]])
    }

    @Test func anthropicDropsTheDetail() {
        let badArguments: JSONValue = ["messages": [
            ["role": "user", "content": "Hi"],
            ["role": "assistant", "tool_calls": [["id": "c1", "type": "function", "function": ["name": "f", "arguments": "{oops"]]]],
        ]]
        #expect(Self.requestError(badArguments, .chat, Self.anthropic)?.clientMessage == "error transforming to anthropic://llm/v1/chat")
        #expect(Self.requestError(["input": "x"], .completions, Self.anthropic)?.clientMessage
            == "error transforming to anthropic://llm/v1/completions")
    }

    @Test func llama2NamesTheFormat() {
        let raw = Self.model(.llama2, "llama2", options: ["llama2_format": "raw"])
        let body: JSONValue = ["messages": [["role": "user", "content": ["not": "text"]]]]
        #expect(Self.requestError(body, .chat, raw)?.clientMessage == "error transforming to llama2://llm/v1/chat/raw")
    }

    @Test func promptAndMessagesTogetherArePlainTextRefusals() {
        let both: JSONValue = ["prompt": "Hi", "messages": [["role": "user", "content": "Hi"]]]
        let cohere = Self.requestError(both, .chat, Self.model(.cohere, "command"))
        #expect(cohere?.clientMessage == "cannot run a 'prompt' and a history of 'messages' at the same time - refer to schema")
        #expect(cohere?.isPlainTextBody == true)
        let ollamaText = "cannot run raw 'prompt' and chat history 'messages' requests at the same time - refer to schema"
        for options: JSONValue in [["llama2_format": "ollama"], ["llama2_format": "raw"]] {
            let error = Self.requestError(both, .completions, Self.model(.llama2, "llama2", options: options))
            #expect(error?.clientMessage == ollamaText)
            #expect(error?.isPlainTextBody == true)
        }
        let mistral = Self.requestError(both, .chat, Self.model(.mistral, "m", options: ["mistral_format": "ollama"]))
        #expect(mistral?.clientMessage == ollamaText)
    }

    // MARK: Anthropic (§2.6/§2.7)

    @Test func anthropicToolUseAndToolResult() throws {
        let body: JSONValue = [
            "messages": [
                ["role": "system", "content": "first"],
                ["role": "user", "content": "Weather?"],
                ["role": "assistant", "content": nil, "tool_calls": [
                    ["id": "call_1", "type": "function", "function": ["name": "weather", "arguments": #"{"city":"Paris"}"#]],
                    ["id": "call_2", "type": "function", "function": ["name": "time", "arguments": "{}"]],
                ]],
                ["role": "tool", "tool_call_id": "call_1", "content": "sunny"],
                ["role": "developer", "content": "last"],
            ],
            "top_p": 0.5, "stop": "x",
            "tools": [["type": "function", "function": ["name": "weather", "description": "d", "parameters": ["type": "object"]]]],
            "tool_choice": "required",
        ]
        let out = try Self.request(body, Self.anthropic)
        #expect(out == [
            "model": "claude-3-opus", "stream": false, "system": "last",
            "messages": [
                ["role": "user", "content": "Weather?"],
                ["role": "assistant", "content": [
                    ["type": "tool_use", "id": "call_1", "name": "weather", "input": ["city": "Paris"]],
                    ["type": "tool_use", "id": "call_2", "name": "time", "input": [:]],
                ]],
                ["role": "user", "content": [["type": "tool_result", "tool_use_id": "call_1", "content": "sunny"]]],
            ],
            "tools": [["name": "weather", "description": "d", "input_schema": ["type": "object"]]],
            "tool_choice": ["type": "any"],
        ])
    }

    @Test func anthropicToolChoiceOutsideTheMappingIsOmitted() throws {
        for choice: JSONValue in ["something", ["type": "function"], ["type": "auto"], 3] {
            let body: JSONValue = ["messages": [["role": "user", "content": "Hi"]], "tool_choice": choice]
            #expect(try Self.request(body, Self.anthropic)["tool_choice"] == nil)
        }
    }

    @Test func anthropicCompletionsFromMessagesBuildsATranscript() throws {
        let body: JSONValue = ["messages": [
            ["role": "system", "content": "Be brief."], ["role": "user", "content": "Hi"], ["role": "assistant", "content": "Hello"],
        ]]
        let out = try Self.request(body, .completions, Self.anthropic)
        #expect(out["prompt"] == "Be brief.\n\nHuman: Hi\n\nAssistant: Hello\n\nAssistant:")
    }

    @Test func anthropicResponseToolCallsAndTextPositions() throws {
        let body = #"""
        {"content":[{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris/FR"}},
                    {"type":"text","text":"checking"}],
         "model":"claude-3-opus-20240229","stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":7}}
        """#
        let result = try Self.response(body, Self.anthropic)
        #expect(Self.converted(result) == [
            "choices": [["index": 0, "finish_reason": "tool_use", "message": [
                // The only text block sits at array position 2, so it gets a leading newline.
                "role": "assistant", "content": "\nchecking",
                "tool_calls": [["id": "toolu_1", "type": "function",
                                "function": ["name": "weather", "arguments": #"{"city":"Paris\/FR"}"#]]],
            ]]],
            "usage": ["prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12],
            "model": "claude-3-opus-20240229", "object": "chat.completion",
        ])
        #expect(result.usage == LLMUsage(promptTokens: 5, completionTokens: 7))
        #expect(result.model == "claude-3-opus-20240229")
    }

    // MARK: Gemini (§2.6/§2.7)

    @Test func geminiImageParts() throws {
        let body: JSONValue = ["messages": [["role": "user", "content": [
            ["type": "text", "text": "What is this?"],
            ["type": "image_url", "image_url": ["url": "data:image/png;base64,iVBORw0KGgo="]],
            ["type": "image_url", "image_url": ["url": "gs://bucket/cat.jpg"]],
        ]]]]
        let out = try Self.request(body, Self.gemini)
        #expect(out["contents"] == [["role": "user", "parts": [
            ["text": "What is this?"],
            ["inlineData": ["data": "iVBORw0KGgo=", "mimeType": "image/png"]],
            ["fileData": ["fileUri": "gs://bucket/cat.jpg", "mimeType": "image/generic"]],
        ]]])
    }

    @Test func geminiToolsRolesAndGenerationConfig() throws {
        let body: JSONValue = [
            "messages": [
                ["role": "system", "content": "A."],
                // Array content: its text parts join (docs/decisions.md; Kong answers 400).
                ["role": "system", "content": [["type": "text", "text": "B."]]],
                ["content": "no role"],
                ["role": "critic", "content": "unknown role"],
                ["role": "assistant", "tool_calls": [["id": "c1", "type": "function", "function": ["name": "lookup", "arguments": "{}"]]]],
                ["role": "tool", "tool_call_id": "c1", "content": "42"],
            ],
            "max_tokens": 100, "stop": ["END"], "temperature": 0.3, "top_k": 2, "top_p": 0.9,
            "tools": [["type": "function", "function": ["name": "lookup", "parameters": ["type": "object"]]], ["type": "retrieval"]],
            "tool_config": ["function_calling_config": ["mode": "ANY"]],
        ]
        let out = try Self.request(body, Self.gemini)
        #expect(out == [
            "contents": [
                ["role": "user", "parts": [["text": "no role"]]],
                ["parts": [["text": "unknown role"]]],
                ["role": "function", "parts": [["function_call": ["name": "lookup"]]]],
                // Kong names every function response `get_product_info` (spec §10.5).
                ["role": "function", "parts": [["function_response": [
                    "response": ["content": ["42"]], "name": "get_product_info",
                ]]]],
            ],
            "systemInstruction": ["parts": [["text": "A.B."]]],
            "generationConfig": ["maxOutputTokens": 100, "stopSequences": ["END"], "temperature": 0.3, "topK": 2, "topP": 0.9],
            "tools": [["function_declarations": [["name": "lookup", "parameters": ["type": "object"]]]]],
            "tool_config": ["function_calling_config": ["mode": "ANY"]],
        ])
    }

    @Test func geminiResponseFunctionCalls() throws {
        let body = #"""
        {"candidates":[{"content":{"role":"model","parts":[
            {"functionCall":{"name":"lookup","args":{"q":"a/b"}}},{"functionCall":{"name":"now","args":{}}}]},
          "finishReason":"STOP"}]}
        """#
        let result = try Self.response(body, Self.gemini)
        #expect(Self.converted(result) == [
            "model": "gemini-1.5-pro",
            "choices": [["index": 0, "message": ["role": "assistant", "tool_calls": [
                ["function": ["name": "lookup", "arguments": #"{"q":"a\/b"}"#]],
                ["function": ["name": "now", "arguments": "{}"]],
            ]]]],
        ])
        #expect(result.usage == nil)
    }

    @Test func geminiFinishReasonIsLowerCasedAndSafetyFailsTransformers() throws {
        let text = #"{"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"MAX_TOKENS"}]}"#
        let result = try Self.response(text, Self.gemini)
        #expect(Self.converted(result)?["choices"]?.arrayValue?.first?["finish_reason"] == "max_tokens")

        let blocked = #"{"candidates":[{"finishReason":"SAFETY"}]}"#
        #expect(Self.converted(try Self.response(blocked, Self.gemini))?["choices"] == .object([:]))
        let error = Self.responseError(blocked, .chat, Self.gemini, transformerCall: true)
        #expect(error?.message == "transformation generation candidate breached Gemini content safety")
    }

    // MARK: Bedrock (§2.6/§2.7)

    @Test(arguments: [
        ("amazon.titan-text-express-v1", true),
        ("us.amazon.titan-text-premier-v1:0", true),
        ("cohere.command-text-v14", true),
        ("cohere.command-light-text-v14", true),
        ("mistral.mistral-7b-instruct-v0:2", true),
        ("mistral.mixtral-8x7b-instruct-v0:1", true),
        ("cohere.command-r-v1:0", false),
        ("mistral.mistral-large-2402-v1:0", false),
        ("anthropic.claude-3-sonnet-20240229-v1:0", false),
        ("amazon.nova-pro-v1:0", false),
    ])
    func bedrockSystemPromptPatterns(_ name: String, _ refused: Bool) {
        #expect(LLMRequestConversion.bedrockRefusesSystemPrompts(model: name) == refused)
        let error = refused ? Self.requestError(Self.chat, .chat, Self.model(.bedrock, name)) : nil
        if refused {
            // Kong's message lacks the closing quote.
            #expect(error?.clientMessage == "error transforming to bedrock://llm/v1/chat: system prompts are unsupported for model '\(name)")
        } else {
            #expect((try? Self.request(Self.chat, Self.model(.bedrock, name)))?["system"] == [["text": "Be brief."]])
        }
    }

    @Test func bedrockToolMessagesAndToolConfig() throws {
        let body: JSONValue = [
            "messages": [
                ["role": "user", "content": "Weather?"],
                ["role": "assistant", "tool_calls": [
                    ["id": "t1", "type": "function", "function": ["name": "first", "arguments": #"{"a":1}"#]],
                    ["id": "t2", "type": "function", "function": ["name": "second", "arguments": #"{"b":2}"#]],
                ]],
                ["role": "tool", "tool_call_id": "t2", "content": #"{"temp":21}"#, "status": "success"],
                ["role": "tool", "tool_call_id": "t3", "content": "[1,2]"],
                ["role": "user", "content": [["text": "as is"]]],
                ["role": "assistant"],
            ],
            "max_tokens": 50, "top_k": 9, "guardrailConfig": ["guardrailIdentifier": "g"],
            "tools": [["type": "function", "function": ["name": "first", "description": "d", "parameters": ["type": "object"]]]],
        ]
        let out = try Self.request(body, Self.bedrock)
        #expect(out == [
            "anthropic_version": "bedrock-2023-05-31",
            "messages": [
                ["role": "user", "content": [["text": "Weather?"]]],
                // Kong keeps only the last call (spec §10.5).
                ["role": "assistant", "content": [["toolUse": ["toolUseId": "t2", "name": "second", "input": ["b": 2]]]]],
                ["role": "user", "content": [["toolResult": [
                    "toolUseId": "t2", "status": "success", "content": [["json": ["temp": 21]]],
                ]]]],
                ["role": "user", "content": [["toolResult": ["toolUseId": "t3", "content": [["json": ["result": [1, 2]]]]]]]],
                ["role": "user", "content": [["text": "as is"]]],
                ["role": "assistant", "content": [["text": ""]]],
            ],
            "inferenceConfig": ["maxTokens": 50],
            "guardrailConfig": ["guardrailIdentifier": "g"],
            "toolConfig": ["tools": [["toolSpec": ["name": "first", "description": "d", "inputSchema": ["json": ["type": "object"]]]]]],
        ])
    }

    @Test func bedrockLegacyFieldsAreWrappedAndVersionConfigurable() throws {
        let body: JSONValue = ["messages": [["role": "user", "content": "Hi"]],
                               "bedrock": ["toolConfig": ["tools": []], "additionalModelRequestFields": ["k": 1]]]
        let out = try Self.request(body, Self.model(.bedrock, "m", options: ["anthropic_version": "v9"]))
        #expect(out["toolConfig"] == [["tools": []]])
        #expect(out["additionalModelRequestFields"] == [["k": 1]])
        #expect(out["anthropic_version"] == "v9")
        #expect(out["model"] == nil)
    }

    @Test func bedrockToolDecodeErrors() {
        let tool: JSONValue = ["messages": [["role": "tool", "tool_call_id": "t", "content": "not json"]]]
        #expect(Self.requestError(tool, .chat, Self.bedrock)?.clientMessage
            == "error transforming to bedrock://llm/v1/chat: failed to decode function response arguments, not JSON format")
        let call: JSONValue = ["messages": [["role": "assistant", "tool_calls": [["id": "t", "function": ["name": "f", "arguments": "{"]]]]]]
        #expect(Self.requestError(call, .chat, Self.bedrock)?.message
            == "failed to decode function response arguments from assistant's message, not JSON format")
    }

    @Test(arguments: [
        ("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
        ("guardrail_intervened", "guardrail_intervened"), ("stop_sequence", "stop"), ("content_filtered", "stop"),
    ])
    func bedrockFinishReasons(_ stopReason: String, _ finishReason: String) throws {
        let body = #"{"output":{"message":{"content":[{"text":"Hi"}]}},"stopReason":"\#(stopReason)"}"#
        let choice = Self.converted(try Self.response(body, Self.bedrock))?["choices"]?.arrayValue?.first
        #expect(choice?["finish_reason"]?.stringValue == finishReason)
    }

    @Test func bedrockResponseToolCallsUsageAndTrace() throws {
        let body = #"""
        {"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"tu1","name":"add","input":{"a":2}}},
                                                           {"toolUse":{"toolUseId":"tu2","name":"noop","input":{}}}]}},
         "stopReason":"tool_use","usage":{"inputTokens":10,"outputTokens":4,"totalTokens":14},"trace":{"guardrail":{}}}
        """#
        let result = try Self.response(body, Self.bedrock)
        #expect(Self.converted(result) == [
            "choices": [["index": 0, "finish_reason": "tool_calls", "message": [
                "role": "assistant",
                "tool_calls": [
                    ["id": "tu1", "type": "function", "function": ["name": "add", "arguments": #"{"a":2}"#]],
                    // Empty input: no arguments at all.
                    ["id": "tu2", "type": "function", "function": ["name": "noop"]],
                ],
            ]]],
            "object": "chat.completion", "model": "anthropic.claude-3-sonnet-20240229-v1:0",
            "usage": ["prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14],
            "trace": ["guardrail": [:]],
        ])
        #expect(result.usage == LLMUsage(promptTokens: 10, completionTokens: 4))
    }

    // MARK: Cohere, Hugging Face, Ollama (§2.6/§2.7)

    @Test func cohereWithToolsUsesTheOpenAIConversion() throws {
        let body: JSONValue = ["messages": [["role": "system", "content": "S"], ["role": "user", "content": "Hi"]],
                               "tools": [["type": "function", "function": ["name": "f"]]], "top_k": 3, "top_p": 0.5]
        let out = try Self.request(body, Self.model(.cohere, "command-r"))
        #expect(out == [
            "messages": [["role": "system", "content": "S"], ["role": "user", "content": "Hi"]],
            "tools": [["type": "function", "function": ["name": "f"]]], "top_p": 0.5, "model": "command-r", "stream": false,
        ])
    }

    @Test func cohereV2ChatResponse() throws {
        let body = #"""
        {"id":"r1","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"I will look it up",
          "tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
         "usage":{"billed_units":{"input_tokens":3,"output_tokens":5}}}
        """#
        let result = try Self.response(body, Self.model(.cohere, "command-r"))
        #expect(Self.converted(result) == [
            "choices": [["index": 0, "finish_reason": "TOOL_CALL", "message": [
                "role": "assistant", "content": "I will look it up",
                "tool_calls": [["id": "c1", "type": "function", "function": ["name": "f", "arguments": "{}"]]],
            ]]],
            "object": "chat.completion", "model": "command-r", "id": "r1",
            "usage": ["prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8],
        ])
    }

    @Test func cohereCompletionsRouteTextUsesTokenCount() throws {
        let body = #"{"text":"Hi","generation_id":"g","token_count":{"prompt_tokens":2,"response_tokens":3,"total_tokens":5}}"#
        let document = Self.converted(try Self.response(body, .completions, Self.model(.cohere, "command")))
        #expect(document?["usage"] == ["prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5])
        #expect(document?["object"] == "chat.completion")
    }

    @Test func huggingFaceParameters() throws {
        let hf = Self.model(.huggingface, "org/model", options: ["huggingface": ["use_cache": true]])
        let chat: JSONValue = ["messages": [["role": "user", "content": "Hi"]], "max_tokens": 100, "top_k": 5,
                               "temperature": 0.2, "parameters": ["top_k": 9, "seed": 1]]
        #expect(try Self.request(chat, hf) == [
            "messages": [["role": "user", "content": "Hi"]], "model": "org/model",
            "parameters": ["top_k": 9, "seed": 1, "temperature": 0.2, "max_length": 100],
            "options": ["use_cache": true, "wait_for_model": false],
        ])
        let completions: JSONValue = ["prompt": "Hi", "max_tokens": 20, "top_p": 0.5]
        #expect(try Self.request(completions, .completions, hf) == [
            "inputs": "Hi", "model": "org/model", "parameters": ["top_p": 0.5, "max_new_tokens": 20],
            "options": ["use_cache": true, "wait_for_model": false],
        ])
        // Kong checks `parameters.max_tokens` before filling the length: present, nothing is filled.
        let preset: JSONValue = ["prompt": "Hi", "max_tokens": 20, "parameters": ["max_tokens": 5]]
        #expect(try Self.request(preset, .completions, hf)["parameters"] == ["max_tokens": 5])
    }

    @Test func huggingFaceChoicesAreReindexedWithoutRole() throws {
        let body = #"{"choices":[{"message":{"role":"assistant","content":"a"}},{"message":{"content":"b"}}]}"#
        let document = Self.converted(try Self.response(body, Self.model(.huggingface, "org/model")))
        #expect(document == [
            "choices": [
                ["message": ["content": "a"], "index": 0, "finish_reason": "complete"],
                ["message": ["content": "b"], "index": 1, "finish_reason": "complete"],
            ],
            "model": "org/model", "object": "llm/v1/chat", "usage": [:],
        ])
    }

    @Test func ollamaRequestAndLengthFinish() throws {
        let ollama = Self.model(.mistral, "mistral", options: ["mistral_format": "ollama", "max_tokens": 12, "top_k": 3])
        let body: JSONValue = ["messages": [["role": "user", "content": "Hi"]], "temperature": 0.4, "tools": [["type": "function"]],
                               "tool_choice": "auto", "stop": "x"]
        #expect(try Self.request(body, ollama) == [
            "model": "mistral", "messages": [["role": "user", "content": "Hi"]], "stream": false,
            "tools": [["type": "function"]], "tool_choice": "auto",
            "options": ["num_predict": 12, "temperature": 0.4, "top_k": 3],
        ])
        let answer = #"{"model":"mistral","created_at":"t","message":{"role":"assistant","content":"x"},"eval_count":12,"prompt_eval_count":3}"#
        let result = try Self.response(answer, ollama)
        #expect(Self.converted(result)?["choices"]?.arrayValue?.first?["finish_reason"] == "length")
        #expect(result.usage == LLMUsage(promptTokens: 3, completionTokens: 12))
        let noCounts = Self.converted(try Self.response(#"{"model":"mistral","response":"x"}"#, .completions, ollama))
        #expect(noCounts?["usage"] == ["completion_tokens": 0, "prompt_tokens": 0, "total_tokens": 0])
    }

    // MARK: Response errors (§2.7)

    @Test func responseFailureReasons() {
        let openai = Self.model(.openai, "gpt-4o")
        let raw = Self.model(.llama2, "llama2", options: ["llama2_format": "raw"])
        let cases: [(String, LLMRouteType, LLMModelConfig, String)] = [
            ("<html>", .completions, openai, "failed to decode llm/v1/completions response"),
            (#"{"object":"list"}"#, .completions, openai, "'choices' not in llm/v1/completions response"),
            ("nope", .chat, Self.anthropic, "failed to decode anthropic response"),
            (#"{"type":"error"}"#, .chat, Self.model(.cohere, "c"), "'text' or 'generations' missing from cohere response body"),
            ("nope", .chat, Self.model(.cohere, "c"), "failed to decode cohere response"),
            ("nope", .chat, Self.model(.llama2, "l", options: ["llama2_format": "ollama"]), "failed to decode ollama response"),
            ("nope", .chat, raw, "failed to decode llama2 response"),
            (#"{"data":[{"generated_text":"a"},{"generated_text":"b"}]}"#, .chat, raw, "cannot parse response from llama2 endpoint"),
            (#"{"data":[{"text":"a"}]}"#, .chat, raw, "response data is empty from llama2 endpoint"),
            (#"{"candidates":[]}"#, .chat, Self.gemini, "no generation candidates received from Gemini, or max_tokens too short"),
            ("nope", .chat, Self.gemini, "failed to decode response from Gemini"),
            (#"{"output":{"message":{"content":[]}}}"#, .chat, Self.bedrock,
             "no generation candidates received from Bedrock, or max_tokens too short"),
            ("nope", .chat, Self.bedrock, "failed to decode response from Bedrock"),
            (#"{"message":"quota"}"#, .chat, Self.model(.huggingface, "h"), "API error: quota"),
            (#"{"generated_text":"x"}"#, .completions, Self.model(.huggingface, "h"), "Invalid response format"),
            ("nope", .chat, Self.model(.huggingface, "h"), "Failed to decode response"),
        ]
        for (body, route, model, reason) in cases {
            let error = Self.responseError(body, route, model)
            #expect(error?.message == reason, "\(model.provider) \(body)")
            #expect(error?.clientMessage == "transformation failed from type \(model.provider.rawValue)://\(route.rawValue): \(reason)")
        }
        let unsupported = Self.responseError(#"{"candidates":[]}"#, .completions, Self.gemini)
        #expect(unsupported?.clientMessage == "no transformer available from format gemini://llm/v1/completions")
    }

    /// A 200 answer that cannot be read at all (marked gzip, not inflatable) fails in each
    /// driver's words for a body that is not JSON.
    @Test func undecodableAnswersFailInTheDriversWords() {
        let models: [(LLMRouteType, LLMModelConfig)] = [
            (.chat, Self.model(.openai, "gpt-4o")), (.completions, Self.model(.openai, "gpt-4o")),
            (.chat, Self.anthropic), (.chat, Self.model(.cohere, "c")), (.chat, Self.gemini), (.chat, Self.bedrock),
            (.chat, Self.model(.llama2, "l", options: ["llama2_format": "raw"])),
            (.chat, Self.model(.llama2, "l", options: ["llama2_format": "ollama"])),
            (.chat, Self.model(.huggingface, "h")),
        ]
        for (route, model) in models {
            let failure = LLMResponseConversion.undecodable(route: route, model: model)
            #expect(failure.clientMessage == Self.responseError("nope", route, model)?.clientMessage, "\(model.provider)")
            #expect(failure.clientMessage.hasPrefix("transformation failed from type \(model.provider.rawValue)://\(route.rawValue): "))
        }
        #expect(LLMResponseConversion.undecodable(route: .chat, model: Self.model(.openai, "gpt-4o")).clientMessage
            == "transformation failed from type openai://llm/v1/chat: failed to decode llm/v1/chat response")
    }

    @Test func convertedBodiesAreWrittenLikeKongsEncoder() throws {
        let result = try Self.response(#"{"completion":"a/b","model":"claude-2"}"#, .completions, Self.anthropic)
        let text = String(decoding: result.bytes(upstream: []), as: UTF8.self)
        #expect(text == #"{"choices":[{"index":0,"text":"a\/b"}],"model":"claude-2","object":"text_completion"}"#)
    }

    // MARK: Prompt-token estimate (§2.11)

    @Test func estimateCountsWordsOfMessagesAndTextParts() throws {
        let body: JSONValue = ["messages": [
            ["role": "system", "content": "one two  three\nfour"],
            ["role": "user", "content": [["type": "text", "text": " five\tsix "], ["type": "image_url", "image_url": ["url": "x y"]]]],
            ["role": "assistant"],
        ]]
        #expect(try LLMTokenEstimate.promptTokens(request: body, streaming: false) == 6)
        // 6 × 1.8 = 10.8
        #expect(try LLMTokenEstimate.promptTokens(request: body, streaming: true) == 11)
    }

    @Test(arguments: [(2, 4), (3, 5), (4, 7), (5, 9)])
    func streamingEstimateRoundsHalfUp(_ words: Int, _ expected: Int) throws {
        let text = Array(repeating: "w", count: words).joined(separator: " ")
        #expect(try LLMTokenEstimate.promptTokens(request: ["prompt": .string(text)], streaming: true) == expected)
    }

    @Test func estimateOfPromptLists() throws {
        let prompt: JSONValue = ["prompt": ["a b", 7, [1, 2, 3], ["ignored": "object"]]]
        #expect(try LLMTokenEstimate.promptTokens(request: prompt, streaming: false) == 6)
        // Only string words are scaled: 2 × 1.8 + 1 + 3 = 7.6
        #expect(try LLMTokenEstimate.promptTokens(request: prompt, streaming: true) == 8)
        // Lua's %s is ASCII only: a no-break space joins words.
        #expect(try LLMTokenEstimate.promptTokens(request: ["prompt": "a\u{00A0}b"], streaming: false) == 1)
    }

    /// Lua's `%s` is exactly 0x09 to 0x0D and the space: the bytes just outside join words.
    @Test func estimateSplitsOnCLocaleWhitespaceOnly() throws {
        let separated = ["a\u{09}b", "a\u{0A}b", "a\u{0B}b", "a\u{0C}b", "a\u{0D}b", "a b", "  a \r\n\t b  "]
        for text in separated {
            #expect(try LLMTokenEstimate.promptTokens(request: ["prompt": .string(text)], streaming: false) == 2, "\(text.debugDescription)")
        }
        for (text, expected) in [("a\u{08}b", 1), ("a\u{0E}b", 1), ("a\u{1F}b", 1), ("a\u{7F}b", 1), ("", 0), ("   ", 0)] {
            #expect(try LLMTokenEstimate.promptTokens(request: ["prompt": .string(text)], streaming: false) == expected, "\(text.debugDescription)")
        }
    }

    /// Long texts are counted sixteen bytes at a time: words across every block edge, against a
    /// plain count of the same texts.
    @Test func estimateCountsWordsAcrossBlockEdges() throws {
        let alphabet: [String] = ["a", "b", "é", " ", "\t", "\n", "\u{0B}", "\u{0E}", "  ", "xyz"]
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for length in 0..<120 {
            var text = ""
            for _ in 0..<length {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                text += alphabet[Int(seed >> 33) % alphabet.count]
            }
            var expected = 0, afterSpace = true
            for byte in text.utf8 {
                let space = byte == 0x20 || (0x09...0x0D).contains(byte)
                if afterSpace && !space { expected += 1 }
                afterSpace = space
            }
            #expect(try LLMTokenEstimate.promptTokens(request: ["prompt": .string(text)], streaming: false) == expected,
                    "\(text.debugDescription)")
        }
    }

    @Test func estimateRefusesOtherPromptElements() {
        for prompt: JSONValue in [[true], [nil], [["x"]], 5] {
            let error = #expect(throws: LLMConversionError.self) {
                try LLMTokenEstimate.promptTokens(request: ["prompt": prompt], streaming: false)
            }
            #expect(error?.message == "Invalid request format")
        }
    }
}
