import Core
import Plugins
import Testing

// Kong's native-format fixtures (MANIFEST §4, `12-native_unit_spec.lua`): a native Gemini or
// Bedrock request, with a mocked path and named captures, mapped to the OpenAI shape that
// ai-proxy uses for the model and analytics (spec §2.12).

/// One row of MANIFEST §4.
struct NativeFixtureCase: Sendable, CustomTestStringConvertible {
    let format: LLMNativeFormat
    let stream: Bool
    let input: String
    let path: String
    let captures: [String: String]
    let expected: String

    var testDescription: String { "\(format.rawValue), \(stream ? "stream" : "no stream")" }

    static let gemini = "native/gemini/request/with-functions-and-chatter.json"
    static let bedrock = "native/bedrock/request/with-functions-and-chatter.json"
    static let complete = "native/target/target-openai-complete.json"
    static let completeStream = "native/target/target-openai-complete-stream.json"
    static let geminiPath = "/v1/projects/fake-project-010101/locations/us-central1/publishers/google/models/gemini-1.5-pro"

    static let all = [
        NativeFixtureCase(format: .gemini, stream: false, input: gemini, path: "\(geminiPath):generateContent",
                          captures: ["model": "gemini-1.5-pro", "operation": "generateContent"], expected: complete),
        NativeFixtureCase(format: .gemini, stream: true, input: gemini, path: "\(geminiPath):streamGenerateContent",
                          captures: ["model": "gemini-1.5-pro", "operation": "streamGenerateContent"], expected: completeStream),
        NativeFixtureCase(format: .bedrock, stream: false, input: bedrock, path: "/bedrock/model/cohere.command-r-v1%3A0/converse",
                          captures: ["model": "cohere.command-r-v1:0", "operation": "converse"], expected: complete),
        NativeFixtureCase(format: .bedrock, stream: true, input: bedrock, path: "/bedrock/model/cohere.command-r-v1%3A0/converse-stream",
                          captures: ["model": "cohere.command-r-v1:0", "operation": "converse-stream"], expected: completeStream),
    ]

    /// The model the captures name.
    var model: String { captures["model"]! }
}

/// Native Gemini requests no Kong OSS spec loads (MANIFEST §4, last line); each must still
/// convert, keeping every turn.
let unreferencedNativeRequests = [
    "native/gemini/request/basic-chat.json",
    "native/gemini/request/basic-multimodal.json",
    "native/gemini/request/with-functions.json",
]

/// Every native fixture a case list reads.
let nativeFixtureFiles: Set<String> = Set(NativeFixtureCase.all.flatMap { [$0.input, $0.expected] })
    .union(unreferencedNativeRequests)

/// `messages[].tool_calls[]` of an OpenAI-shaped request, rewritten by `transform`.
private func mapToolCalls(_ request: JSONValue, _ transform: (JSONValue) -> JSONValue) -> JSONValue {
    var request = request
    request["messages"] = request["messages"]?.arrayValue.map { messages in
        .array(messages.map { message in
            var message = message
            message["tool_calls"] = message["tool_calls"]?.arrayValue.map { .array($0.map(transform)) }
            return message
        })
    }
    return request
}

/// MANIFEST §4's cleanup before comparing.
private func cleanUp(expected: JSONValue, produced: JSONValue, _ fixture: NativeFixtureCase) -> (JSONValue, JSONValue) {
    switch fixture.format {
    case .gemini:
        // Gemini has no call ids: expected loses `tool_call_id` and `tool_calls[].id`, produced
        // loses `tool_calls[].function.id` (where Kong puts the function name).
        var expected = mapToolCalls(expected) { call in
            var call = call
            call["id"] = nil
            return call
        }
        expected["messages"] = expected["messages"]?.arrayValue.map { messages in
            .array(messages.map { message in
                var message = message
                message["tool_call_id"] = nil
                return message
            })
        }
        let produced = mapToolCalls(produced) { call in
            var call = call
            call["function"]?["id"] = nil
            return call
        }
        return (expected, produced)
    case .bedrock:
        var expected = expected
        expected["model"] = .string(fixture.model)
        return (expected, produced)
    }
}

@Suite("Kong native-format fixtures: native request → OpenAI shape (MANIFEST §4)",
       .enabled(if: KongFixtures.available, KongFixtures.missingReason))
struct NativeFormatFixtureTests {
    @Test(.kongGroup("native-formats"), arguments: NativeFixtureCase.all)
    func nativeRequest(_ fixture: NativeFixtureCase) throws {
        KongGroup.name(fixture)
        let native = try JSONValue.parse(KongFixtures.text(fixture.input))
        let expected = try JSONValue.parse(KongFixtures.text(fixture.expected))

        let invocation = fixture.format.invocation(path: fixture.path, captures: fixture.captures)
        #expect(invocation.model == fixture.model)
        #expect(invocation.stream == fixture.stream)
        // The path alone says the same (Bedrock's model URL-decoded).
        #expect(fixture.format.invocation(path: fixture.path) == invocation)

        let produced = fixture.format.openAIRequest(from: native, invocation: invocation)
        if fixture.format == .gemini {
            // What the cleanup removes from the produced side is the function name, in every call.
            for message in produced["messages"]?.arrayValue ?? [] {
                for call in message["tool_calls"]?.arrayValue ?? [] {
                    #expect(call["function"]?["id"] != nil && call["function"]?["id"] == call["function"]?["name"],
                            "\(call.serialized())")
                }
            }
        }
        let (want, got) = cleanUp(expected: expected, produced: produced, fixture)
        #expect(got == want, "got \(got.serialized())")
        // Guards against a cleanup that would empty both sides.
        #expect(got["messages"]?.arrayValue?.count == 7)
        #expect(got["tools"]?.arrayValue?.count == 3)
    }

    /// The Gemini requests no Kong spec loads: converted without error, every turn kept (plus
    /// the system instruction as the first message), each text and image part carried over.
    @Test(.kongGroup("native-gemini-requests"), arguments: unreferencedNativeRequests)
    func unreferencedGeminiRequest(_ file: String) throws {
        KongGroup.name(file)
        let native = try JSONValue.parse(KongFixtures.text(file))
        let invocation = LLMNativeFormat.gemini.invocation(path: "/v1beta/models/gemini-1.5-flash:generateContent")
        let produced = LLMNativeFormat.gemini.openAIRequest(from: native, invocation: invocation)
        #expect(produced["model"] == "gemini-1.5-flash")
        #expect(produced["stream"] == false)

        let contents = native["contents"]?.arrayValue ?? (native["contents"].map { [$0] } ?? [])
        let system = native["system_instruction"]
        let messages = try #require(produced["messages"]?.arrayValue)
        #expect(!contents.isEmpty)
        #expect(messages.count == contents.count + (system == nil ? 0 : 1), "\(produced.serialized())")

        let turns = system == nil ? messages[...] : messages.dropFirst()
        if let system {
            #expect(messages.first?["role"] == "system")
            #expect(messages.first?["content"]?.arrayValue?.first?["text"] == system["parts"]?["text"])
        }
        for (content, message) in zip(contents, turns) {
            #expect(message["role"] == content["role"])
            let parts = content["parts"]?.arrayValue ?? (content["parts"].map { [$0] } ?? [])
            let converted = message["content"]?.arrayValue ?? []
            #expect(converted.count == parts.count)
            for (part, got) in zip(parts, converted) {
                if let text = part["text"] {
                    #expect(got == ["type": "text", "text": text])
                } else if let data = part["inline_data"] {
                    let url = "data:\(data["mime_type"]?.stringValue ?? "?");base64,\(data["data"]?.stringValue ?? "?")"
                    #expect(got == ["type": "image_url", "image_url": ["url": .string(url)]])
                } else {
                    Issue.record("unexpected part \(part.serialized()) in \(file)")
                }
            }
        }

        let declarations = native["tools"]?.arrayValue?.first?["function_declarations"]?.arrayValue ?? []
        #expect(produced["tools"]?.arrayValue?.count ?? 0 == declarations.count)
        if let maxTokens = native["generationConfig"]?["maxOutputTokens"] {
            #expect(produced["max_tokens"] == maxTokens)
        }
    }
}
