import Core
import Foundation
import Plugins
import Testing

// Kong's streaming fixtures (MANIFEST §2, §3, and the Bedrock chunks of §5) against the frame
// splitter and the stream event converter, read in place from ../shared/kong-fixtures.

/// Kong's expected event list (`[{"data": …, "event"?: …, "id"?: …}]`) as events.
private func expectedEvents(_ relative: String) throws -> [StreamEvent] {
    let list = try JSONValue.parse(try KongFixtures.text(relative)).arrayValue ?? []
    return list.map {
        StreamEvent(event: $0["event"]?.stringValue, id: $0["id"]?.stringValue, data: $0["data"]?.stringValue ?? "<no data>")
    }
}

/// `candidates[0].content.parts[0].text` of every event that has one (the `[DONE]` has none).
private func geminiText(_ events: [StreamEvent]) -> String {
    events.compactMap { event in
        (try? JSONValue.parse(event.data))?["candidates"]?.arrayValue?.first?["content"]?["parts"]?.arrayValue?.first?["text"]?.stringValue
    }.joined()
}

// MARK: - MANIFEST §2: real-stream-frames

struct RealStreamFrameCase: Sendable, CustomTestStringConvertible {
    let file: String
    let provider: LLMProvider
    let route: LLMRouteType
    let modelName: String
    let choices: String
    var testDescription: String { file }
}

let realStreamFrameCases = [
    RealStreamFrameCase(file: "openai/llm-v1-chat.txt", provider: .openai, route: .chat, modelName: "gpt-4",
                        choices: #"[{"delta":{"content":"the answer"},"finish_reason":null,"index":0,"logprobs":null}]"#),
    RealStreamFrameCase(file: "openai/llm-v1-completions.txt", provider: .openai, route: .completions, modelName: "gpt-3.5-turbo-instruct",
                        choices: #"[{"text":"the answer","finish_reason":null,"index":0,"logprobs":null}]"#),
    RealStreamFrameCase(file: "cohere/llm-v1-chat.txt", provider: .cohere, route: .chat, modelName: "command",
                        choices: #"[{"delta":{"content":"the answer"},"finish_reason":null,"index":0,"logprobs":null}]"#),
    RealStreamFrameCase(file: "cohere/llm-v1-completions.txt", provider: .cohere, route: .completions, modelName: "command-light",
                        choices: #"[{"text":"the answer","finish_reason":null,"index":0,"logprobs":null}]"#),
]

@Suite(.enabled(if: KongFixtures.available, KongFixtures.missingReason))
struct StreamFixtureTests {
    /// Split without a content type, take the first event, convert it with `{name, provider}`:
    /// `choices` must equal Kong's, nulls present. (The OpenAI files end with a single `\n`;
    /// Kong emits that event at the chunk's end, this splitter at the end of the stream.)
    @Test(.kongGroup("real-stream-frames"), arguments: realStreamFrameCases)
    func realStreamFrameFirstEvent(_ c: RealStreamFrameCase) throws {
        KongGroup.name(c)
        var splitter = StreamFrameSplitter(contentType: nil)
        let events = try splitter.split(try KongFixtures.data("unit/real-stream-frames/\(c.file)")) + splitter.finish()
        let first = try #require(events.first)
        var converter = StreamEventConverter(route: c.route,
                                             model: LLMModelConfig(provider: c.provider, name: c.modelName))
        var frames: [UInt8] = []
        converter.convert(first, into: &frames)
        let frame = String(decoding: frames, as: UTF8.self)
        #expect(frame.hasPrefix("data: ") && frame.hasSuffix("\n\n"))
        let payload = try JSONValue.parse(String(frame.dropFirst(6).dropLast(2)))
        #expect(payload["choices"] == (try JSONValue.parse(c.choices)))
    }

    // MARK: MANIFEST §3: streaming-chunk-formats

    static let chunkFormatDirectories = [
        "complete-json", "text-event-stream", "partial-json-beginning", "partial-json-end",
        "partial-json-split", "partial-json-split-three-parts", "aws",
    ]

    @Test(.kongGroup("streaming-chunk-formats"), arguments: chunkFormatDirectories)
    func streamingChunkFormat(_ directory: String) throws {
        KongGroup.name(directory)
        let base = "unit/streaming-chunk-formats/\(directory)"
        switch directory {
        case "complete-json":
            // Starts with `{`: one event per non-empty line, CR/LF stripped.
            var splitter = StreamFrameSplitter(contentType: "text/event-stream")
            #expect(try splitter.split(try KongFixtures.data("\(base)/input.bin")) == (try expectedEvents("\(base)/expected-output.json")))
        case "text-event-stream":
            // The final `data: [DONE]` has no terminating line: held back by a single call.
            var splitter = StreamFrameSplitter(contentType: "text/event-stream")
            let events = try splitter.split(try KongFixtures.data("\(base)/input.bin"))
            #expect(events == (try expectedEvents("\(base)/expected-output.json")))
            #expect(events.count == 3)
        case "partial-json-beginning":
            // Four elements of an unterminated array, no [DONE].
            var splitter = StreamFrameSplitter(contentType: "application/json")
            let events = try splitter.split(try KongFixtures.data("\(base)/input.bin"))
            #expect(events == (try expectedEvents("\(base)/expected-output.json")))
            #expect(events.count == 4)
        case "partial-json-end":
            // State pre-set to "array already started, nothing buffered"; input starts with `,`.
            var splitter = StreamFrameSplitter(contentType: "application/json")
            splitter.assumeJSONArrayOpened()
            let events = try splitter.split(try KongFixtures.data("\(base)/input.bin"))
            #expect(events == (try expectedEvents("\(base)/expected-output.json")))
            #expect(events.last == .done)
        case "partial-json-split", "partial-json-split-three-parts":
            let parts = directory == "partial-json-split" ? 2 : 3
            var splitter = StreamFrameSplitter(contentType: "application/json")
            var events: [StreamEvent] = []
            for part in 1...parts {
                events += try splitter.split(try KongFixtures.data("\(base)/input-\(part).bin"))
            }
            #expect(geminiText(events) == (try KongFixtures.text("\(base)/expected-output.bin")))
        case "aws":
            var splitter = StreamFrameSplitter(contentType: "application/vnd.amazon.eventstream")
            let events = try splitter.split(try KongFixtures.data("\(base)/input.bin"))
            let expected = try expectedEvents("\(base)/expected-output.json")
            try #require(events.count == expected.count)
            for (got, want) in zip(events, expected) {
                #expect(try JSONValue.parse(got.data) == (try JSONValue.parse(want.data)))
            }
        default:
            Issue.record("unknown fixture directory \(directory)")
        }
    }

    // MARK: MANIFEST §5: Bedrock converse-stream chunks (Kong's streaming integration mock)

    /// The three base64 chunks as the mock writes them; Kong's integration test then requires the
    /// streamed tool name `add` and arguments that decode to `{"a": 2, "b": 12}`.
    @Test(.kongGroup("bedrock-stream-chunks")) func bedrockToolCallChunks() throws {
        var normalizer = StreamNormalizer(contentType: "application/vnd.amazon.eventstream", route: .chat,
                                          model: LLMModelConfig(provider: .bedrock, name: "aws-titan-v1:0"))
        var frames: [UInt8] = []
        for chunk in try kongBedrockStreamChunks() {
            frames += normalizer.process(chunk)
        }
        frames += normalizer.finish()
        #expect(normalizer.splitError == nil)
        let text = String(decoding: frames, as: UTF8.self)
        #expect(text.hasSuffix("\n\ndata: [DONE]"))
        let payloads = text.components(separatedBy: "\n\n").map { String($0.dropFirst(6)) }.filter { $0 != "[DONE]" }
        var name: String?
        var arguments = ""
        for payload in payloads {
            let chunk = try JSONValue.parse(payload)
            #expect(chunk["model"] == "aws-titan-v1:0")
            guard let call = chunk["choices"]?.arrayValue?.first?["delta"]?["tool_calls"]?.arrayValue?.first else { continue }
            if let n = call["function"]?["name"]?.stringValue { name = n }
            arguments += call["function"]?["arguments"]?.stringValue ?? ""
        }
        #expect(name == "add")
        #expect(try JSONValue.parse(arguments) == ["a": 2, "b": 12])
        let converter = normalizer.converter
        #expect(converter.finishReason == "tool_calls")
        #expect(converter.usage == LLMUsage(promptTokens: 478, completionTokens: 44))
    }
}

/// `bedrock/chunks/chunk-{1,2,3}.txt`, base64-decoded.
func kongBedrockStreamChunks() throws -> [[UInt8]] {
    try (1...3).map { index in
        let encoded = try KongFixtures.text("bedrock/chunks/chunk-\(index).txt")
        guard let data = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters) else {
            throw StreamSplitError("chunk-\(index).txt is not base64")
        }
        return [UInt8](data)
    }
}
