import Core
import Plugins
import Testing

/// One row of MANIFEST §1: Kong's `01-unit_spec.lua` "format tests".
struct UnitConversionCase: Sendable, CustomTestStringConvertible {
    let id: String
    /// `unit/*/<directory>/…`: the provider, or `llama2/<format>` / `mistral/<format>`.
    let directory: String
    let route: LLMRouteType
    let model: LLMModelConfig
    /// The `model` the converted response must carry (MANIFEST §1, last paragraph).
    let responseModel: String?

    var testDescription: String { "\(id) \(directory) \(route.rawValue)" }

    /// `llm-v1-chat` / `llm-v1-completions`.
    var fileName: String { route == .chat ? "llm-v1-chat" : "llm-v1-completions" }

    init(_ id: String, _ directory: String, _ route: LLMRouteType, _ model: JSONValue, responseModel: String?) {
        self.id = id
        self.directory = directory
        self.route = route
        self.model = LLMModelConfig(json: model)!
        self.responseModel = responseModel
    }

    /// The model configs exactly as Kong's unit spec passes them.
    static let all: [UnitConversionCase] = [
        .init("U1", "openai", .chat, ["name": "gpt-4", "provider": "openai", "options": ["max_tokens": 512, "temperature": 0.5]],
              responseModel: "gpt-4-0613"),
        .init("U2", "openai", .completions,
              ["name": "gpt-3.5-turbo-instruct", "provider": "openai", "options": ["max_tokens": 512, "temperature": 0.5]],
              responseModel: "gpt-3.5-turbo-instruct"),
        .init("U3", "cohere", .chat,
              ["name": "command", "provider": "cohere", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "command"),
        .init("U4", "cohere", .completions,
              ["name": "command", "provider": "cohere", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 0.75, "top_k": 5]],
              responseModel: "command"),
        .init("U5", "anthropic", .chat,
              ["name": "claude-2.1", "provider": "anthropic", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "claude-2.1"),
        .init("U6", "anthropic", .completions,
              ["name": "claude-2.1", "provider": "anthropic", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "claude-2.1"),
        .init("U7", "azure", .chat,
              ["name": "gpt-4", "provider": "azure", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "gpt-4-0613"),
        .init("U8", "azure", .completions,
              ["name": "gpt-3.5-turbo-instruct", "provider": "azure", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "gpt-3.5-turbo-instruct"),
        .init("U9", "llama2/raw", .chat,
              ["name": "llama2", "provider": "llama2",
               "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "raw", "top_p": 1, "top_k": 40]],
              responseModel: nil),
        .init("U10", "llama2/raw", .completions,
              ["name": "llama2", "provider": "llama2", "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "raw"]],
              responseModel: nil),
        .init("U11", "llama2/ollama", .chat,
              ["name": "llama2", "provider": "llama2", "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "ollama"]],
              responseModel: "llama2"),
        .init("U12", "llama2/ollama", .completions,
              ["name": "llama2", "provider": "llama2", "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "ollama"]],
              responseModel: "llama2"),
        .init("U13", "mistral/openai", .chat,
              ["name": "mistral-tiny", "provider": "mistral", "options": ["max_tokens": 512, "temperature": 0.5, "mistral_format": "openai"]],
              responseModel: "mistral-tiny"),
        .init("U14", "mistral/ollama", .chat,
              ["name": "mistral-tiny", "provider": "mistral", "options": ["max_tokens": 512, "temperature": 0.5, "mistral_format": "ollama"]],
              responseModel: "mistral-tiny"),
        .init("U15", "gemini", .chat,
              ["name": "gemini-pro", "provider": "gemini", "options": ["max_tokens": 8192, "temperature": 0.8, "top_k": 1, "top_p": 0.6]],
              responseModel: "gemini-pro"),
        .init("U16", "bedrock", .chat,
              ["name": "bedrock", "provider": "bedrock", "options": ["max_tokens": 8192, "temperature": 0.8, "top_k": 1, "top_p": 0.6]],
              responseModel: "bedrock"),
    ]
}

@Suite("Kong unit fixtures: request and response conversion (MANIFEST §1)",
       .enabled(if: KongFixtures.available, KongFixtures.missingReason))
struct UnitConversionTests {
    /// The converted request equals Kong's expected request as a whole object.
    @Test(arguments: UnitConversionCase.all)
    func request(_ unit: UnitConversionCase) throws {
        let request = try JSONValue.parse(KongFixtures.text("unit/requests/\(unit.fileName).json"))
        let expected = try JSONValue.parse(KongFixtures.text("unit/expected-requests/\(unit.directory)/\(unit.fileName).json"))

        let converted = try LLMRequestConversion.toProvider(request, route: unit.route, model: unit.model)

        #expect(converted == expected, "got \(converted.serialized())")
    }

    /// As Kong's spec: decode the emitted body and compare `choices[0].message` and `model` only.
    @Test(arguments: UnitConversionCase.all)
    func response(_ unit: UnitConversionCase) throws {
        let upstream = Array(try KongFixtures.data("unit/real-responses/\(unit.directory)/\(unit.fileName).json"))
        let expected = try JSONValue.parse(KongFixtures.text("unit/expected-responses/\(unit.directory)/\(unit.fileName).json"))

        let converted = try LLMResponseConversion.fromProvider(upstream, route: unit.route, model: unit.model)
        let emitted = try JSONValue.parse(bytes: converted.bytes(upstream: upstream))

        #expect(firstMessage(emitted) == firstMessage(expected))
        #expect(emitted["model"] == expected["model"])
        #expect(emitted["model"]?.stringValue == unit.responseModel)
        if unit.route == .chat {
            // Guards against both sides lacking a message (which would compare equal).
            #expect(firstMessage(emitted)?["content"]?.stringValue?.isEmpty == false)
        }
    }
}

/// `choices[0].message` of an OpenAI-shaped body.
fileprivate func firstMessage(_ body: JSONValue) -> JSONValue? {
    body["choices"]?.arrayValue?.first?["message"]
}
