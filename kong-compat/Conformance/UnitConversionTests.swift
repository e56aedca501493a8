import Core
import Foundation
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
    /// Completions only: where the driver takes `choices[0].text` from in the real response.
    let completionText: CompletionTextSource?

    var testDescription: String { "\(id) \(directory) \(route.rawValue)" }

    /// `llm-v1-chat` / `llm-v1-completions`.
    var fileName: String { route == .chat ? "llm-v1-chat" : "llm-v1-completions" }

    init(_ id: String, _ directory: String, _ route: LLMRouteType, _ model: JSONValue, responseModel: String?,
         completionText: CompletionTextSource? = nil) {
        self.id = id
        self.directory = directory
        self.route = route
        self.model = LLMModelConfig(json: model)!
        self.responseModel = responseModel
        self.completionText = completionText
    }

    /// The model configs exactly as Kong's unit spec passes them.
    static let all: [UnitConversionCase] = [
        .init("U1", "openai", .chat, ["name": "gpt-4", "provider": "openai", "options": ["max_tokens": 512, "temperature": 0.5]],
              responseModel: "gpt-4-0613"),
        .init("U2", "openai", .completions,
              ["name": "gpt-3.5-turbo-instruct", "provider": "openai", "options": ["max_tokens": 512, "temperature": 0.5]],
              responseModel: "gpt-3.5-turbo-instruct", completionText: .choicesText),
        .init("U3", "cohere", .chat,
              ["name": "command", "provider": "cohere", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "command"),
        .init("U4", "cohere", .completions,
              ["name": "command", "provider": "cohere", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 0.75, "top_k": 5]],
              responseModel: "command", completionText: .cohereGeneration),
        .init("U5", "anthropic", .chat,
              ["name": "claude-2.1", "provider": "anthropic", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "claude-2.1"),
        .init("U6", "anthropic", .completions,
              ["name": "claude-2.1", "provider": "anthropic", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "claude-2.1", completionText: .anthropicCompletion),
        .init("U7", "azure", .chat,
              ["name": "gpt-4", "provider": "azure", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "gpt-4-0613"),
        .init("U8", "azure", .completions,
              ["name": "gpt-3.5-turbo-instruct", "provider": "azure", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1.0]],
              responseModel: "gpt-3.5-turbo-instruct", completionText: .choicesText),
        .init("U9", "llama2/raw", .chat,
              ["name": "llama2", "provider": "llama2",
               "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "raw", "top_p": 1, "top_k": 40]],
              responseModel: nil),
        .init("U10", "llama2/raw", .completions,
              ["name": "llama2", "provider": "llama2", "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "raw"]],
              responseModel: nil, completionText: .llama2RawAnswer),
        .init("U11", "llama2/ollama", .chat,
              ["name": "llama2", "provider": "llama2", "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "ollama"]],
              responseModel: "llama2"),
        .init("U12", "llama2/ollama", .completions,
              ["name": "llama2", "provider": "llama2", "options": ["max_tokens": 512, "temperature": 0.5, "llama2_format": "ollama"]],
              responseModel: "llama2", completionText: .ollamaResponse),
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
    @Test(.kongGroup("unit-requests"), arguments: UnitConversionCase.all)
    func request(_ unit: UnitConversionCase) throws {
        KongGroup.name(unit)
        let request = try JSONValue.parse(KongFixtures.text("unit/requests/\(unit.fileName).json"))
        let expected = try JSONValue.parse(KongFixtures.text("unit/expected-requests/\(unit.directory)/\(unit.fileName).json"))

        let converted = try LLMRequestConversion.toProvider(request, route: unit.route, model: unit.model)

        #expect(converted == expected, "got \(converted.serialized())")
    }

    /// As Kong's spec: decode the emitted body and compare `choices[0].message` and `model` only.
    @Test(.kongGroup("unit-responses"), arguments: UnitConversionCase.all)
    func response(_ unit: UnitConversionCase) throws {
        KongGroup.name(unit)
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
        } else {
            // `message` is absent on both sides for completions: the answer is `choices[0].text`.
            let source = try #require(unit.completionText, "completions case without a text source")
            let text = try #require(firstChoice(emitted)?["text"]?.stringValue, "no choices[0].text in \(emitted.serialized())")
            #expect(!text.isEmpty)
            let real = try JSONValue.parse(bytes: upstream)
            let answer = try #require(source.text(in: real), "the real response has no answer text")
            #expect(text == answer, "the driver's text is the provider's answer")
            if source.expectedFileAgrees {
                #expect(text == firstChoice(expected)?["text"]?.stringValue)
            }
        }
    }
}

/// Where a completions driver finds the answer text in the provider's real response (spec §2.7).
enum CompletionTextSource: Sendable {
    /// OpenAI-compatible: `choices[0].text`, forwarded as is.
    case choicesText
    /// Cohere: `generations[0].text`.
    case cohereGeneration
    /// Anthropic: `completion`.
    case anthropicCompletion
    /// llama2 raw: `data[0].generated_text` after the last `[/INST]`, whitespace-trimmed.
    case llama2RawAnswer
    /// Ollama: `response`.
    case ollamaResponse

    /// The text in `real`, the decoded real-response fixture.
    func text(in real: JSONValue) -> String? {
        switch self {
        case .choicesText:
            return real["choices"]?.arrayValue?.first?["text"]?.stringValue
        case .cohereGeneration:
            return real["generations"]?.arrayValue?.first?["text"]?.stringValue
        case .anthropicCompletion:
            return real["completion"]?.stringValue
        case .llama2RawAnswer:
            guard let generated = real["data"]?.arrayValue?.first?["generated_text"]?.stringValue,
                  let answer = generated.components(separatedBy: "[/INST]").last else { return nil }
            return answer.trimmingCharacters(in: .whitespacesAndNewlines)
        case .ollamaResponse:
            return real["response"]?.stringValue
        }
    }

    /// Kong's expected file holds the same text, except for Ollama completions (MANIFEST §1:
    /// "ollama completions expected text differs from the real response").
    var expectedFileAgrees: Bool { self != .ollamaResponse }
}

/// `choices[0].message` of an OpenAI-shaped body.
fileprivate func firstMessage(_ body: JSONValue) -> JSONValue? {
    body["choices"]?.arrayValue?.first?["message"]
}

/// `choices[0]` of an OpenAI-shaped body.
fileprivate func firstChoice(_ body: JSONValue) -> JSONValue? {
    body["choices"]?.arrayValue?.first
}
