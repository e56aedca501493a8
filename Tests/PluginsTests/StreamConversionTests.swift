import Core
import Plugins
import Testing

// ai-proxy streaming (spec §2.8, §2.11): frame splitting and per-provider event conversion on
// hand-written upstream streams. Kong's own fixtures are exercised in kong-compat/Conformance.

// MARK: - Helpers

private func model(_ provider: LLMProvider, _ name: String? = "test-model",
                   mistralFormat: String? = nil, llama2Format: String? = nil) -> LLMModelConfig {
    var options = LLMModelOptions()
    options.mistralFormat = mistralFormat
    options.llama2Format = llama2Format
    return LLMModelConfig(provider: provider, name: name, options: options)
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Runs `upstream` through splitter and converter in one chunk, plus the end of stream.
private func run(_ upstream: [UInt8], contentType: String?, _ provider: LLMProvider,
                 route: LLMRouteType = .chat, model config: LLMModelConfig? = nil,
                 accumulateText: Bool = false, includeUsage: Bool = false) throws -> (frames: [UInt8], converter: StreamEventConverter) {
    var normalizer = StreamNormalizer(contentType: contentType, route: route, model: config ?? model(provider),
                                      accumulateText: accumulateText, includeUsage: includeUsage)
    var frames = normalizer.process(upstream)
    frames += normalizer.finish()
    if let error = normalizer.splitError { throw error }
    return (frames, normalizer.converter)
}

/// The client frames as payload texts; the terminator as `[DONE]`. Records an issue when the
/// framing itself is wrong (a payload frame not ending in a blank line, text after `[DONE]`).
private func payloadTexts(_ frames: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    var rest = Substring(text(frames))
    var result: [String] = []
    while !rest.isEmpty {
        guard rest.hasPrefix("data: ") else {
            Issue.record("frame does not start with 'data: ': \(rest.prefix(40))", sourceLocation: sourceLocation)
            return result
        }
        rest = rest.dropFirst(6)
        if rest == "[DONE]" {
            result.append("[DONE]")
            return result
        }
        guard let end = rest.range(of: "\n\n") else {
            Issue.record("frame without its blank line: \(rest.prefix(40))", sourceLocation: sourceLocation)
            return result
        }
        result.append(String(rest[..<end.lowerBound]))
        rest = rest[end.upperBound...]
    }
    return result
}

private func payloadJSON(_ frames: [UInt8]) -> [JSONValue] {
    payloadTexts(frames).map { $0 == "[DONE]" ? .string("[DONE]") : ((try? JSONValue.parse($0)) ?? .string("unparsable: \($0)")) }
}

private func sse(_ events: [(event: String?, data: String)]) -> [UInt8] {
    bytes(events.map { ($0.event.map { "event: \($0)\n" } ?? "") + "data: \($0.data)\n\n" }.joined())
}

/// One AWS event-stream message with string headers (CRCs left zero: they are not verified).
private func awsMessage(eventType: String, body: String) -> [UInt8] {
    var headers: [UInt8] = []
    for (name, value) in [(":event-type", eventType), (":content-type", "application/json"), (":message-type", "event")] {
        headers.append(UInt8(name.utf8.count))
        headers += Array(name.utf8)
        headers.append(7)
        headers += [UInt8(value.utf8.count >> 8), UInt8(value.utf8.count & 0xFF)]
        headers += Array(value.utf8)
    }
    let payload = Array(body.utf8)
    let total = 12 + headers.count + payload.count + 4
    func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    return be32(total) + be32(headers.count) + [0, 0, 0, 0] + headers + payload + [0, 0, 0, 0]
}

// MARK: - Output framing

@Test func openAIPayloadsAreForwardedVerbatimAndTheTerminatorHasNoNewline() throws {
    let chunk = #"{"choices": [{"delta": {"content": "Hi"},"finish_reason": null,"index": 0}],"object": "chat.completion.chunk"}"#
    let (frames, _) = try run(bytes("data: \(chunk)\n\ndata: [DONE]\n\n"), contentType: "text/event-stream", .openai)
    #expect(text(frames) == "data: \(chunk)\n\ndata: [DONE]")
}

@Test(arguments: [LLMProvider.openai, .azure])
func openAICompatibleProvidersPassThrough(_ provider: LLMProvider) throws {
    let (frames, converter) = try run(bytes("data: {\"choices\":[{\"delta\":{\"content\":\"a/b\"},\"finish_reason\":\"stop\",\"index\":0}]}\n\n"),
                                      contentType: "text/event-stream", provider, accumulateText: true)
    #expect(text(frames) == "data: {\"choices\":[{\"delta\":{\"content\":\"a/b\"},\"finish_reason\":\"stop\",\"index\":0}]}\n\n")
    #expect(converter.finishReason == "stop")
    #expect(converter.text == "a/b")
    #expect(!converter.sentTerminator)
}

@Test func mistralAndLlama2FormatsPickTheDialect() throws {
    let ollamaLine = bytes(#"{"model":"mistral","message":{"role":"assistant","content":"Hi"},"done":false}"# + "\n")
    let viaOllama = try run(ollamaLine, contentType: "application/x-ndjson", .mistral,
                            model: model(.mistral, mistralFormat: "ollama"))
    #expect(payloadJSON(viaOllama.frames) == [[
        "choices": [["delta": ["content": "Hi"], "index": 0]], "model": "mistral", "object": "chat.completion.chunk",
    ]])
    let openAIChunk = #"{"choices":[{"delta":{"content":"Hi"},"index":0}]}"#
    let viaOpenAI = try run(bytes("data: \(openAIChunk)\n\n"), contentType: "text/event-stream", .llama2,
                            model: model(.llama2, llama2Format: "openai"))
    #expect(text(viaOpenAI.frames) == "data: \(openAIChunk)\n\n")
}

@Test func openAIUsageChunkReplacesTheEstimate() throws {
    let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"index\":0}]}\n\n"
        + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14}}\n\n"
        + "data: [DONE]\n\n"
    let (_, converter) = try run(bytes(stream), contentType: "text/event-stream", .openai)
    #expect(converter.completion(logStatistics: true, promptTokenEstimate: 40).usage == LLMUsage(promptTokens: 11, completionTokens: 3))
}

// MARK: - Anthropic

private let anthropicStream = sse([
    ("message_start", #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-2.1","usage":{"input_tokens":15,"output_tokens":1},"content":[]}}"#),
    ("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
    ("ping", #"{"type": "ping"}"#),
    ("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"1 + 1"}}"#),
    ("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" = 2"}}"#),
    ("content_block_stop", #"{"type":"content_block_stop","index":0}"#),
    ("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#),
    ("message_stop", #"{"type":"message_stop"}"#),
])

@Test func anthropicEventsBecomeChatChunks() throws {
    let (frames, converter) = try run(anthropicStream, contentType: "text/event-stream", .anthropic,
                                      model: model(.anthropic, "claude-2.1"), accumulateText: true)
    let payloads = payloadJSON(frames)
    try #require(payloads.count == 5)
    #expect(payloads[0] == [
        "choices": [["delta": ["content": "", "role": "assistant"], "index": 0, "logprobs": nil]],
        "id": "msg_1", "model": "claude-2.1", "object": "chat.completion.chunk", "system_fingerprint": nil,
    ])
    #expect(payloads[1] == [
        "choices": [["delta": ["content": ""], "index": 0, "finish_reason": nil, "logprobs": nil]],
        "id": "msg_1", "model": "claude-2.1", "object": "chat.completion.chunk",
    ])
    #expect(payloads[2] == [
        "choices": [["delta": ["content": "1 + 1"], "index": 0, "finish_reason": nil, "logprobs": nil]],
        "id": "msg_1", "model": "claude-2.1", "object": "chat.completion.chunk",
    ])
    #expect(payloads[4] == "[DONE]")
    #expect(text(frames).hasSuffix("\n\ndata: [DONE]"))
    // message_start 15/1, message_delta +9: summed.
    #expect(converter.usage == LLMUsage(promptTokens: 15, completionTokens: 10))
    #expect(converter.text == "1 + 1 = 2")
    #expect(converter.finishReason == nil)
}

/// `stream_options.include_usage`: a converted stream gets OpenAI's usage chunk (no choices) just
/// before `[DONE]`; an OpenAI-format stream is left to answer it itself.
@Test func includeUsageAddsTheUsageChunkToConvertedStreams() throws {
    let (frames, _) = try run(anthropicStream, contentType: "text/event-stream", .anthropic,
                              model: model(.anthropic, "claude-2.1"), includeUsage: true)
    let payloads = payloadJSON(frames)
    try #require(payloads.count == 6)
    #expect(payloads[4] == [
        "choices": [], "model": "claude-2.1", "object": "chat.completion.chunk",
        "usage": ["prompt_tokens": 15, "completion_tokens": 10, "total_tokens": 25],
    ])
    #expect(payloads[5] == "[DONE]")

    let (without, _) = try run(anthropicStream, contentType: "text/event-stream", .anthropic,
                               model: model(.anthropic, "claude-2.1"))
    #expect(payloadJSON(without).count == 5, "only when asked")

    let openAI = bytes("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n")
    let (forwarded, _) = try run(openAI, contentType: "text/event-stream", .openai, includeUsage: true)
    #expect(payloadTexts(forwarded) == [#"{"choices":[{"delta":{"content":"hi"}}]}"#, "[DONE]"])
}

/// On the completions route the usage chunk is a `text_completion` object, like the others.
@Test func includeUsageChunkOnCompletionsIsATextCompletion() throws {
    let stream = bytes(#"{"event_type":"text-generation","text":"abc"}"# + "\n"
        + #"{"event_type":"stream-end","response":{"token_count":{"prompt_tokens":4,"response_tokens":6}}}"# + "\n")
    let (frames, _) = try run(stream, contentType: nil, .cohere, route: .completions,
                              model: model(.cohere, "command-light"), includeUsage: true)
    let payloads = payloadJSON(frames)
    try #require(payloads.count == 3)
    #expect(payloads[1] == [
        "choices": [], "model": "command-light", "object": "text_completion",
        "usage": ["prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10],
    ])
    #expect(payloads[2] == "[DONE]")
}

@Test func anthropicWithoutEventLinesUsesTheBodyType() throws {
    let stream = bytes("data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hey\"}}\n\ndata: {\"type\":\"message_stop\"}\n\n")
    let (frames, _) = try run(stream, contentType: "text/event-stream", .anthropic)
    #expect(payloadTexts(frames).count == 2)
    #expect(payloadJSON(frames).first?["choices"]?.arrayValue?.first?["delta"]?["content"] == "hey")
    #expect(text(frames).hasSuffix("data: [DONE]"))
}

// MARK: - Cohere

private let cohereStream = bytes([
    #"{"is_finished":false,"event_type":"stream-start","generation_id":"gen-1"}"#,
    #"{"is_finished":false,"event_type":"text-generation","text":"1 + 1"}"#,
    #"{"is_finished":false,"event_type":"text-generation","text":" = 2"}"#,
    #"{"is_finished":true,"event_type":"stream-end","response":{"text":"1 + 1 = 2","meta":{"billed_units":{"input_tokens":57,"output_tokens":123}}},"finish_reason":"COMPLETE"}"#,
].joined(separator: "\n\n") + "\n\n")

@Test func cohereChatStream() throws {
    let (frames, converter) = try run(cohereStream, contentType: "application/stream+json", .cohere,
                                      model: model(.cohere, "command"), accumulateText: true)
    let payloads = payloadJSON(frames)
    try #require(payloads.count == 4)
    #expect(payloads[0] == [
        "choices": [["delta": ["content": "", "role": "assistant"], "index": 0]],
        "id": "gen-1", "model": "command", "object": "chat.completion.chunk",
    ])
    #expect(payloads[1] == [
        "choices": [["delta": ["content": "1 + 1"], "index": 0, "finish_reason": nil, "logprobs": nil]],
        "id": "gen-1", "model": "command", "object": "chat.completion.chunk",
    ])
    #expect(payloads[3] == "[DONE]")
    #expect(converter.usage == LLMUsage(promptTokens: 57, completionTokens: 123))
    #expect(converter.text == "1 + 1 = 2")
}

@Test func cohereCompletionsStreamAndTokenCountFallback() throws {
    let stream = bytes(#"{"event_type":"text-generation","text":"abc"}"# + "\n"
        + #"{"event_type":"stream-end","response":{"token_count":{"prompt_tokens":4,"response_tokens":6}}}"# + "\n")
    let (frames, converter) = try run(stream, contentType: nil, .cohere, route: .completions,
                                      model: model(.cohere, "command-light"))
    #expect(payloadJSON(frames) == [
        ["choices": [["text": "abc", "index": 0, "finish_reason": nil, "logprobs": nil]],
         "model": "command-light", "object": "text_completion"],
        "[DONE]",
    ])
    #expect(converter.usage == LLMUsage(promptTokens: 4, completionTokens: 6))
}

// MARK: - Ollama

@Test func ollamaChatStreamEndsOnDone() throws {
    let stream = bytes([
        #"{"model":"llama2","created_at":"t","message":{"role":"assistant","content":"Hel"},"done":false}"#,
        #"{"model":"llama2","created_at":"t","message":{"role":"assistant","content":"lo"},"done":false}"#,
        #"{"model":"llama2","created_at":"t","message":{"role":"assistant","content":""},"done":true,"prompt_eval_count":26,"eval_count":298}"#,
    ].joined(separator: "\n") + "\n")
    let (frames, converter) = try run(stream, contentType: "application/x-ndjson", .llama2,
                                      model: model(.llama2, llama2Format: "ollama"), accumulateText: true)
    #expect(payloadJSON(frames) == [
        ["choices": [["delta": ["content": "Hel"], "index": 0]], "model": "llama2", "object": "chat.completion.chunk"],
        ["choices": [["delta": ["content": "lo"], "index": 0]], "model": "llama2", "object": "chat.completion.chunk"],
        "[DONE]",
    ])
    #expect(converter.usage == LLMUsage(promptTokens: 26, completionTokens: 298))
    #expect(converter.text == "Hello")
}

@Test func ollamaCompletionsStream() throws {
    let stream = bytes(#"{"model":"mistral","response":"Hi","done":false}"# + "\n" + #"{"model":"mistral","response":"","done":true,"eval_count":2}"#)
    let (frames, converter) = try run(stream, contentType: "application/x-ndjson", .mistral, route: .completions,
                                      model: model(.mistral, mistralFormat: "ollama"))
    #expect(payloadJSON(frames) == [
        ["choices": [["text": "Hi", "index": 0]], "model": "mistral", "object": "text_completion"],
        "[DONE]",
    ])
    #expect(converter.usage == LLMUsage(promptTokens: 0, completionTokens: 2))
}

// MARK: - Gemini

@Test func geminiArrayStreamTextToolCallsAndUsageReplacement() throws {
    let stream = bytes("""
        [{"candidates":[{"content":{"parts":[{"text":"The"}],"role":"model"},"index":0}],
          "usageMetadata":{"promptTokenCount":6,"candidatesTokenCount":1,"totalTokenCount":7}}
        ,
        {"candidates":[{"content":{"parts":[{"functionCall":{"name":"add","args":{"a":2,"b":12}}},{"functionCall":{"name":"neg","args":{"x":"a/b"}}}],"role":"model"},"finishReason":"STOP"}],
          "usageMetadata":{"promptTokenCount":6,"candidatesTokenCount":65,"totalTokenCount":71}}
        ]
        """)
    let (frames, converter) = try run(stream, contentType: "application/json; charset=UTF-8", .gemini,
                                      model: model(.gemini, "gemini-1.5-flash"), accumulateText: true)
    let payloads = payloadJSON(frames)
    try #require(payloads.count == 3)
    // No finishReason upstream: the key is absent, not null.
    #expect(payloads[0] == [
        "model": "gemini-1.5-flash",
        "choices": [["delta": ["content": "The", "role": "assistant"], "index": 0]],
    ])
    let choice = payloads[1]["choices"]?.arrayValue?.first
    #expect(choice?["finish_reason"] == "STOP")
    let calls = choice?["delta"]?["tool_calls"]?.arrayValue ?? []
    try #require(calls.count == 2)
    #expect(calls[0]["type"] == "function")
    #expect(calls[0]["function"]?["name"] == "add")
    #expect(try JSONValue.parse(calls[0]["function"]?["arguments"]?.stringValue ?? "") == ["a": 2, "b": 12])
    #expect(try JSONValue.parse(calls[1]["function"]?["arguments"]?.stringValue ?? "") == ["x": "a/b"])
    #expect(payloads[2] == "[DONE]")
    // usageMetadata is cumulative: the last one wins, nothing is added.
    #expect(converter.usage == LLMUsage(promptTokens: 6, completionTokens: 65))
    #expect(converter.finishReason == "STOP")
    #expect(converter.text == "The")
}

@Test func geminiSSEStreamHasNoTerminator() throws {
    let stream = bytes("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":2,\"candidatesTokenCount\":11}}\r\n\r\n")
    let (frames, converter) = try run(stream, contentType: "text/event-stream", .gemini, model: model(.gemini, "gemini-pro"))
    #expect(payloadJSON(frames) == [[
        "model": "gemini-pro",
        "choices": [["delta": ["content": "ok", "role": "assistant"], "index": 0, "finish_reason": "STOP"]],
    ]])
    #expect(converter.usage == LLMUsage(promptTokens: 2, completionTokens: 11))
}

// MARK: - Bedrock

private let bedrockStream: [UInt8] =
    awsMessage(eventType: "messageStart", body: #"{"p":"abc","role":"assistant"}"#)
    + awsMessage(eventType: "contentBlockDelta", body: #"{"contentBlockIndex":0,"delta":{"text":"Let me add."}}"#)
    + awsMessage(eventType: "contentBlockStop", body: #"{"contentBlockIndex":0}"#)
    + awsMessage(eventType: "contentBlockStart", body: #"{"contentBlockIndex":1,"start":{"toolUse":{"name":"add","toolUseId":"tooluse_1"}}}"#)
    + awsMessage(eventType: "contentBlockDelta", body: #"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\": 2"}}}"#)
    + awsMessage(eventType: "contentBlockDelta", body: #"{"contentBlockIndex":1,"delta":{"toolUse":{"input":", \"b\": 12}"}}}"#)
    + awsMessage(eventType: "messageStop", body: #"{"stopReason":"tool_use"}"#)
    + awsMessage(eventType: "metadata", body: #"{"usage":{"inputTokens":478,"outputTokens":44,"totalTokens":522},"metrics":{"latencyMs":1}}"#)

@Test func bedrockConverseStream() throws {
    let (frames, converter) = try run(bedrockStream, contentType: "application/vnd.amazon.eventstream", .bedrock,
                                      model: model(.bedrock, "titan"), accumulateText: true)
    let payloads = payloadJSON(frames)
    try #require(payloads.count == 7)
    #expect(payloads[0] == [
        "choices": [["delta": ["content": "", "role": "assistant"], "index": 0, "logprobs": nil]],
        "model": "titan", "object": "chat.completion.chunk", "system_fingerprint": nil,
    ])
    #expect(payloads[1]["choices"]?.arrayValue?.first?["delta"] == ["content": "Let me add."])
    #expect(payloads[2] == [
        "choices": [["delta": ["tool_calls": [["index": 1, "id": "tooluse_1", "function": ["name": "add", "arguments": ""]]]],
                     "index": 0, "logprobs": nil]],
        "model": "titan", "object": "chat.completion.chunk", "system_fingerprint": nil,
    ])
    #expect(payloads[3]["choices"]?.arrayValue?.first?["delta"] == ["tool_calls": [["index": 1, "function": ["arguments": "{\"a\": 2"]]]])
    #expect(payloads[5] == [
        "choices": [["delta": [:], "index": 0, "finish_reason": "tool_calls", "logprobs": nil]],
        "model": "titan", "object": "chat.completion.chunk",
    ])
    #expect(payloads[6] == "[DONE]")
    #expect(converter.usage == LLMUsage(promptTokens: 478, completionTokens: 44))
    #expect(converter.finishReason == "tool_calls")
    #expect(converter.text == "Let me add.")
}

/// The same messages re-framed as SSE events whose `data` is Kong's `{headers, body}` envelope
/// (what a proxy in front of Bedrock may send): read from `data`, the same chunks and usage.
@Test func bedrockEnvelopesInSSEConvertLikeTheEventStream() throws {
    var splitter = StreamFrameSplitter(contentType: "application/vnd.amazon.eventstream")
    let envelopes = try splitter.split(bedrockStream)
    #expect(envelopes.allSatisfy { $0.awsMessage != nil })
    let sse = bytes(envelopes.map { "data: \($0.data)\n\n" }.joined())
    let (viaSSE, sseConverter) = try run(sse, contentType: "text/event-stream", .bedrock, model: model(.bedrock, "titan"),
                                         accumulateText: true)
    let (viaAWS, awsConverter) = try run(bedrockStream, contentType: "application/vnd.amazon.eventstream", .bedrock,
                                         model: model(.bedrock, "titan"), accumulateText: true)
    #expect(payloadJSON(viaSSE).count == 7)
    #expect(viaSSE == viaAWS)
    #expect(sseConverter.usage == awsConverter.usage)
    #expect(sseConverter.text == "Let me add.")
}

@Test(arguments: [
    ("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "guardrail_intervened"), ("stop_sequence", "stop"), ("content_filtered", "stop"),
])
func bedrockStopReasonMapping(_ stopReason: String, _ finishReason: String) throws {
    let (frames, _) = try run(awsMessage(eventType: "messageStop", body: "{\"stopReason\":\"\(stopReason)\"}"),
                              contentType: "application/vnd.amazon.eventstream", .bedrock)
    #expect(payloadJSON(frames).first?["choices"]?.arrayValue?.first?["finish_reason"] == .string(finishReason))
}

@Test func awsMessagesSplitAnywhereDecodeTheSame() throws {
    var whole = StreamFrameSplitter(contentType: "application/vnd.amazon.eventstream")
    let expected = try whole.split(bedrockStream)
    #expect(expected.count == 8)
    for size in [1, 2, 3, 5, 7, 13, 64, 200] {
        var splitter = StreamFrameSplitter(contentType: "application/vnd.amazon.eventstream")
        var events: [StreamEvent] = []
        var start = 0
        while start < bedrockStream.count {
            let end = min(start + size, bedrockStream.count)
            events += try splitter.split(bedrockStream[start..<end])
            start = end
        }
        #expect(events == expected, "chunks of \(size) bytes")
    }
    #expect(try JSONValue.parse(expected[0].data) == [
        "headers": [":event-type": "messageStart", ":content-type": "application/json", ":message-type": "event"],
        "body": #"{"p":"abc","role":"assistant"}"#,
    ])
}

@Test func awsMessageWithImpossibleLengthFailsTheStream() {
    var splitter = StreamFrameSplitter(contentType: "application/vnd.amazon.eventstream")
    #expect(throws: StreamSplitError.self) { try splitter.split([0, 0, 0, 5, 0, 0, 0, 0]) }
}

// MARK: - Hugging Face, llama2 raw

@Test func huggingFaceChatStream() throws {
    let stream = bytes("data: {\"model\":\"hf/m\",\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"index\":0}]}\n\n"
        + "data: {\"choices\":[{\"delta\":{\"content\":null},\"index\":0}]}\n\ndata: [DONE]\n\n")
    let (frames, converter) = try run(stream, contentType: "text/event-stream", .huggingface, model: model(.huggingface, "m"))
    #expect(payloadJSON(frames) == [
        ["choices": [["delta": ["content": "Hi", "role": "assistant"], "index": 0]], "model": "hf/m", "object": "chat.completion.chunk"],
        ["choices": [["delta": ["content": "", "role": "assistant"], "index": 0]], "model": "m", "object": "chat.completion.chunk"],
    ])
    // The upstream [DONE] yields nothing (Kong, §2.8).
    #expect(!converter.sentTerminator)
}

@Test func huggingFaceCompletionsStream() throws {
    let stream = bytes("data: {\"token\":{\"id\":1,\"text\":\" Paris\",\"special\":false},\"generated_text\":null}\n\n")
    let (frames, _) = try run(stream, contentType: "text/event-stream", .huggingface, route: .completions,
                              model: model(.huggingface, "gpt2"))
    #expect(payloadJSON(frames) == [["choices": [["text": " Paris", "index": 0]], "model": "gpt2", "object": "text_completion"]])
}

@Test func llama2RawStreamSkipsSpecialTokensAndEnds() throws {
    let stream = bytes("data: {\"token\":{\"text\":\"Hi\",\"special\":false},\"generated_text\":null}\n\n"
        + "data: {\"token\":{\"text\":\"</s>\",\"special\":true},\"generated_text\":\"Hi\"}\n\n")
    let (frames, _) = try run(stream, contentType: "text/event-stream", .llama2, model: model(.llama2, "llama2", llama2Format: "raw"))
    #expect(payloadJSON(frames) == [
        ["choices": [["delta": ["content": "Hi"], "index": 0]], "model": "llama2", "object": "chat.completion.chunk"],
        "[DONE]",
    ])
}

// MARK: - Analytics

private let answerStream = bytes(["The ", "answer ", "to 1 + ", "1 is ", "2."].map {
    "data: {\"choices\":[{\"delta\":{\"content\":\"\($0)\"},\"finish_reason\":null,\"index\":0}]}\n\n"
}.joined() + "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\",\"index\":0}]}\n\ndata: [DONE]\n\n")

@Test func completionEstimateCountsTheTextOnce() throws {
    // §10.7: 25 bytes → ceil(25 / 4) = 7 (Kong 3.10's test expects 13 from doubled text).
    let (_, converter) = try run(answerStream, contentType: "text/event-stream", .openai, accumulateText: true)
    #expect(converter.text == "The answer to 1 + 1 is 2.")
    let completion = converter.completion(logStatistics: true, promptTokenEstimate: 18)
    #expect(completion.usage == LLMUsage(promptTokens: 18, completionTokens: 7))
    #expect(completion.usage.totalTokens == 25)
    #expect(completion.finishReason == "stop")
}

@Test func completionEstimateNeedsStatisticsAndPayloads() throws {
    let (_, withoutText) = try run(answerStream, contentType: "text/event-stream", .openai)
    #expect(withoutText.completion(logStatistics: true).usage.completionTokens == 0)
    #expect(withoutText.completion(logStatistics: true).text == nil)
    let (_, withText) = try run(answerStream, contentType: "text/event-stream", .openai, accumulateText: true)
    #expect(withText.completion(logStatistics: false).usage.completionTokens == 0)
}

@Test func reportedCompletionTokensAreNotEstimated() throws {
    let (_, converter) = try run(cohereStream, contentType: nil, .cohere, accumulateText: true)
    #expect(converter.completion(logStatistics: true, promptTokenEstimate: 3).usage == LLMUsage(promptTokens: 57, completionTokens: 123))
}

@Test(arguments: [("", 0), ("   \n\t ", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("  abcd  ", 1), ("héllo", 2)])
func completionTokenEstimate(_ text: String, _ tokens: Int) {
    #expect(StreamCompletion.estimatedTokens(forCompletion: text) == tokens)
}

@Test func compositeResponseShape() throws {
    let (_, converter) = try run(answerStream, contentType: "text/event-stream", .openai, accumulateText: true)
    let completion = converter.completion(logStatistics: true, promptTokenEstimate: 18)
    #expect(completion.compositeResponse(logPayloads: true) == [
        "choices": [[
            "finish_reason": "stop", "index": 0, "logprobs": nil,
            "message": ["role": "assistant", "content": "The answer to 1 + 1 is 2."],
        ]],
        "object": "chat.completion",
        "response": "The answer to 1 + 1 is 2.",
        "usage": ["prompt_tokens": 18, "completion_tokens": 7, "total_tokens": 25],
    ])
    let bare = StreamCompletion(usage: LLMUsage(promptTokens: 1, completionTokens: 2), finishReason: nil, text: nil)
    #expect(bare.compositeResponse(logPayloads: false) == [
        "choices": [["finish_reason": nil, "index": 0, "logprobs": nil, "message": ["role": "assistant", "content": nil]]],
        "object": "chat.completion",
        "usage": ["prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3],
    ])
}

// MARK: - Unsupported content type, broken bodies

@Test func unsupportedContentTypeSendsOneErrorFrameAndEnds() {
    var normalizer = StreamNormalizer(contentType: "text/html; charset=utf-8", route: .chat, model: model(.openai))
    #expect(normalizer.process([UInt8]()).isEmpty)
    #expect(!normalizer.ended)
    let frame = normalizer.process(bytes("data: {\"choices\":[]}\n\n"))
    #expect(text(frame) == #"data: {"error": true, "message": "empty or unsupported transformer response"}"#)
    #expect(normalizer.ended)
    #expect(normalizer.process(bytes("data: more\n\n")).isEmpty)
    #expect(normalizer.finish().isEmpty)
}

@Test(arguments: [nil, "text/event-stream", "TEXT/EVENT-STREAM; charset=utf-8", "application/json", "application/stream+json",
                  "application/x-ndjson", "application/vnd.amazon.eventstream"])
func supportedContentTypes(_ contentType: String?) {
    #expect(StreamFrameSplitter.isSupported(contentType: contentType))
}

@Test(arguments: ["text/plain", "text/html", "application/octet-stream"])
func unsupportedContentTypes(_ contentType: String) {
    #expect(!StreamFrameSplitter.isSupported(contentType: contentType))
}

@Test func geminiBodyThatIsNotAnArrayEndsWithTheErrorFrame() {
    var normalizer = StreamNormalizer(contentType: "application/json", route: .chat, model: model(.gemini))
    let frame = normalizer.process(bytes(#"{"error":{"code":400}}"#))
    #expect(text(frame) == #"data: {"error": true, "message": "empty or unsupported transformer response"}"#)
    #expect(normalizer.splitError == .invalidArrayStart)
    #expect(normalizer.splitError?.message == "Invalid start: expected '['")
}

// MARK: - Splitting

@Test func jsonArrayElementsNestedEscapedAndSplitAnywhere() throws {
    let body = #" [ {"a":[1,{"b":"]}"}]} , "x\"y,]" ,{"c":"\\"} , 42 ,true,[]] "#
    let expected = [#"{"a":[1,{"b":"]}"}]}"#, #""x\"y,]""#, #"{"c":"\\"}"#, "42", "true", "[]", "[DONE]"]
    var whole = StreamFrameSplitter(contentType: "application/json")
    #expect(try whole.split(bytes(body)).map(\.data) == expected)
    let raw = bytes(body)
    for cut in 1..<raw.count {
        var splitter = StreamFrameSplitter(contentType: "application/json")
        let events = try splitter.split(raw[..<cut]) + splitter.split(raw[cut...])
        #expect(events.map(\.data) == expected, "cut at \(cut)")
    }
}

@Test func jsonArrayEmptyAndInvalidStart() throws {
    var empty = StreamFrameSplitter(contentType: "application/json")
    #expect(try empty.split(bytes(" [ ] ")) == [.done])
    var invalid = StreamFrameSplitter(contentType: "application/json")
    #expect(throws: StreamSplitError.invalidArrayStart) { try invalid.split(bytes("  {\"a\":1}")) }
}

@Test func sseFieldsCommentsAndLineEndings() throws {
    let stream = ": comment\r\nevent: e1\r\nid: 7\r\ndata:   {\"x\":1}\r\n\r\nretry: 5\nnoColon\n\nevent: only-event\n\ndata: two\rdata: three\r\r"
    var splitter = StreamFrameSplitter(contentType: "text/event-stream")
    let events = try splitter.split(bytes(stream)) + splitter.finish()
    #expect(events == [
        StreamEvent(event: "e1", id: "7", data: "{\"x\":1}"),
        StreamEvent(data: "two"),
        StreamEvent(data: "three"),
    ])
}

@Test func sseEventIsHeldUntilItsBlankLineOrTheEnd() throws {
    var splitter = StreamFrameSplitter(contentType: "text/event-stream")
    #expect(try splitter.split(bytes("data: a\n")).isEmpty)
    #expect(try splitter.split(bytes("\ndata: [DO")) == [StreamEvent(data: "a")])
    #expect(try splitter.split(bytes("NE]")).isEmpty)
    #expect(splitter.finish() == [StreamEvent(data: "[DONE]")])
}

@Test func ndjsonModeIsChosenOnceFromTheFirstByte() throws {
    // Kong would parse the second chunk (not starting with `{`) as SSE and lose the event.
    var splitter = StreamFrameSplitter(contentType: "text/event-stream")
    #expect(splitter.format == nil)
    #expect(try splitter.split(bytes("  \n")).isEmpty)
    var events = try splitter.split(bytes("{\"a\":1}\r\n{\"b\":"))
    #expect(splitter.format == .ndjson)
    events += try splitter.split(bytes("2}{\"c\":3}\n  garbage line  \n"))
    events += splitter.finish()
    #expect(events.map(\.data) == [#"{"a":1}"#, #"{"b":2}"#, #"{"c":3}"#, "garbage line"])
}

@Test func sseModeIsChosenWhenTheBodyDoesNotStartWithABrace() throws {
    var splitter = StreamFrameSplitter(contentType: nil)
    let events = try splitter.split(bytes("\n\ndata: {\"a\":1}\n\n{\"not\":\"sse\"}\n\n"))
    #expect(splitter.format == .serverSentEvents)
    #expect(events == [StreamEvent(data: "{\"a\":1}")])
}

/// The events of `stream` in one chunk must equal those of every two-chunk split and of
/// one-byte chunks: the upstream network, not the provider, decides where chunks end.
private func expectSplitInvariant(_ stream: [UInt8], contentType: String?,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws -> [StreamEvent] {
    func events(_ chunks: [ArraySlice<UInt8>]) throws -> [StreamEvent] {
        var splitter = StreamFrameSplitter(contentType: contentType)
        var result: [StreamEvent] = []
        for chunk in chunks { result += try splitter.split(chunk) }
        return result + splitter.finish()
    }
    let expected = try events([stream[...]])
    for cut in 1..<stream.count {
        let got = try events([stream[..<cut], stream[cut...]])
        if got != expected {
            Issue.record("split at \(cut): \(got) instead of \(expected)", sourceLocation: sourceLocation)
            break
        }
    }
    #expect(try events(stream.indices.map { stream[$0...$0] }) == expected, "one-byte chunks", sourceLocation: sourceLocation)
    return expected
}

@Test func crlfAndLoneCRServerSentEventsAreSplitInvariant() throws {
    let stream = bytes("event: a\r\ndata: {\"x\":\"1\"}\r\n\r\n: keep-alive\r\rdata: 2\r\rid: 9\ndata: 3\n\ndata: [DONE]")
    let events = try expectSplitInvariant(stream, contentType: "text/event-stream")
    #expect(events == [
        StreamEvent(event: "a", data: "{\"x\":\"1\"}"), StreamEvent(data: "2"), StreamEvent(id: "9", data: "3"), .done,
    ])
}

@Test func ndjsonIsSplitInvariant() throws {
    let events = try expectSplitInvariant(cohereStream, contentType: "application/stream+json")
    #expect(events.count == 4)
    let crlf = try expectSplitInvariant(bytes("{\"a\":\"}\\\"{\"}\r\n\r\n{\"b\":[1,{}]}{\"c\":2}\r\n  x y \r\n"), contentType: nil)
    #expect(crlf.map(\.data) == ["{\"a\":\"}\\\"{\"}", "{\"b\":[1,{}]}", "{\"c\":2}", "x y"])
}

@Test func anthropicStreamIsSplitInvariant() throws {
    let events = try expectSplitInvariant(anthropicStream, contentType: "text/event-stream")
    #expect(events.count == 8)
    #expect(events.first?.event == "message_start")
}

@Test func builtChunksAreEncodedAsKongDoes() throws {
    // Newly built chunks escape `/` like Kong's cjson (and the non-stream converted bodies).
    let stream = bytes("event: content_block_delta\ndata: {\"delta\":{\"text\":\"a/b\"}}\n\n")
    let (frames, _) = try run(stream, contentType: "text/event-stream", .anthropic, model: model(.anthropic, "claude/x"))
    #expect(text(frames) == #"data: {"choices":[{"delta":{"content":"a\/b"},"finish_reason":null,"index":0,"logprobs":null}],"model":"claude\/x","object":"chat.completion.chunk"}"# + "\n\n")
}

@Test func nonContiguousChunksAreAccepted() throws {
    var splitter = StreamFrameSplitter(contentType: "text/event-stream")
    let chunk = bytes("data: x\n\n").lazy.map { $0 }
    #expect(try splitter.split(chunk) == [StreamEvent(data: "x")])
}

/// docs/decisions.md: a second `data:` line in one SSE event is an event of its own (with the
/// first's `event` name), never an overwrite of the first, as Kong's parser does within a chunk.
@Test func eachDataLineOfAnEventIsDelivered() throws {
    var splitter = StreamFrameSplitter(contentType: "text/event-stream")
    let events = try splitter.split(bytes("event: delta\ndata: {\"a\":1}\ndata: {\"b\":2}\n\n"))
    #expect(events == [StreamEvent(event: "delta", data: #"{"a":1}"#), StreamEvent(event: "delta", data: #"{"b":2}"#)])
    let one = #"{"choices":[{"delta":{"content":"A"},"index":0}]}"#, two = #"{"choices":[{"delta":{"content":"B"},"index":0}]}"#
    let (frames, converter) = try run(bytes("data: \(one)\ndata: \(two)\n\n"), contentType: "text/event-stream", .openai,
                                      accumulateText: true)
    #expect(text(frames) == "data: \(one)\n\ndata: \(two)\n\n")
    #expect(converter.text == "AB")
}

/// docs/decisions.md: the finish reason is the last one a chunk gave; a later chunk without one
/// (a null, or no choices) does not clear it.
@Test func aLaterChunkWithoutAFinishReasonKeepsTheLastOne() throws {
    let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"length\",\"index\":0}]}\n\n"
        + "data: {\"choices\":[{\"delta\":{},\"finish_reason\":null,\"index\":0}]}\n\n"
        + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n"
    let (_, converter) = try run(bytes(stream), contentType: "text/event-stream", .openai)
    #expect(converter.finishReason == "length")
}
