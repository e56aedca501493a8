import Core
import Plugins
import Testing

// ai-proxy native input formats (spec §2.12): model and stream flag from the path or the named
// captures, the OpenAI-shaped copy of a native request, and the usage of native answers, whole
// and streamed. Kong's own native fixtures run in kong-compat/Conformance.

// MARK: - Model and stream flag

@Test func formatFromConfig() {
    #expect(LLMNativeFormat(llmFormat: "gemini") == .gemini)
    #expect(LLMNativeFormat(llmFormat: "bedrock") == .bedrock)
    #expect(LLMNativeFormat(llmFormat: "openai") == nil)
    #expect(LLMNativeFormat(llmFormat: nil) == nil)
    #expect(LLMNativeFormat.gemini.provider == .gemini)
    #expect(LLMNativeFormat.bedrock.provider == .bedrock)
}

@Test(arguments: [
    ("/v1beta/models/gemini-1.5-flash:generateContent", "gemini-1.5-flash", "generateContent", false),
    ("/v1beta/models/gemini-1.5-flash:streamGenerateContent", "gemini-1.5-flash", "streamGenerateContent", true),
    ("/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse", "gemini-1.5-flash", "streamGenerateContent", true),
    ("/v1/projects/p-1/locations/us-central1/publishers/google/models/gemini-1.5-pro:generateContent",
     "gemini-1.5-pro", "generateContent", false),
    ("/gemini/v1/models/gemini-2.0-flash-001%3AstreamGenerateContent", "gemini-2.0-flash-001", "streamGenerateContent", true),
    ("/v1beta/models/gemini-1.5-flash:countTokens", "gemini-1.5-flash", "countTokens", false),
])
func geminiPath(_ path: String, _ model: String, _ operation: String, _ stream: Bool) {
    #expect(LLMNativeFormat.gemini.invocation(path: path)
        == LLMNativeFormat.Invocation(model: model, operation: operation, stream: stream))
}

@Test func geminiPathWithoutModel() {
    #expect(LLMNativeFormat.gemini.invocation(path: "/v1beta/chat")
        == LLMNativeFormat.Invocation(model: nil, operation: nil, stream: false))
    #expect(LLMNativeFormat.gemini.invocation(path: "/v1beta/models/gemini-pro")
        == LLMNativeFormat.Invocation(model: "gemini-pro", operation: nil, stream: false))
}

@Test(arguments: [
    ("/bedrock/model/cohere.command-r-v1%3A0/converse", "cohere.command-r-v1:0", "converse", false),
    ("/bedrock/model/cohere.command-r-v1%3A0/converse-stream", "cohere.command-r-v1:0", "converse-stream", true),
    ("/model/anthropic.claude-3-haiku-20240307-v1:0/converse", "anthropic.claude-3-haiku-20240307-v1:0", "converse", false),
    ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0/converse-stream",
     "arn:aws:bedrock:us-east-1:123:inference-profile/us.meta.llama3-2-1b-instruct-v1:0", "converse-stream", true),
    // An ARN with its `/` left raw spans two segments.
    ("/model/arn:aws:bedrock:us-east-1:123:inference-profile/us.amazon.nova-lite-v1:0/converse",
     "arn:aws:bedrock:us-east-1:123:inference-profile/us.amazon.nova-lite-v1:0", "converse", false),
    ("/model/amazon.titan-text-express-v1/invoke-with-response-stream",
     "amazon.titan-text-express-v1", "invoke-with-response-stream", false),
])
func bedrockPath(_ path: String, _ model: String, _ operation: String, _ stream: Bool) {
    #expect(LLMNativeFormat.bedrock.invocation(path: path)
        == LLMNativeFormat.Invocation(model: model, operation: operation, stream: stream))
}

@Test func bedrockPathWithoutOperation() {
    #expect(LLMNativeFormat.bedrock.invocation(path: "/model/amazon.nova-pro-v1%3A0")
        == LLMNativeFormat.Invocation(model: "amazon.nova-pro-v1:0", operation: nil, stream: false))
    #expect(LLMNativeFormat.bedrock.invocation(path: "/converse")
        == LLMNativeFormat.Invocation(model: nil, operation: nil, stream: false))
}

@Test func capturesWinOverThePathEachOnItsOwn() {
    let gemini = LLMNativeFormat.gemini
    let path = "/v1beta/models/from-path:generateContent"
    #expect(gemini.invocation(path: path, captures: ["model": "from-capture", "operation": "streamGenerateContent"])
        == LLMNativeFormat.Invocation(model: "from-capture", operation: "streamGenerateContent", stream: true))
    #expect(gemini.invocation(path: path, captures: ["model": "from-capture"])
        == LLMNativeFormat.Invocation(model: "from-capture", operation: "generateContent", stream: false))
    #expect(gemini.invocation(path: path, captures: ["operation": "streamGenerateContent"])
        == LLMNativeFormat.Invocation(model: "from-path", operation: "streamGenerateContent", stream: true))
    // An empty capture (optional group that did not match) does not count.
    #expect(gemini.invocation(path: path, captures: ["model": ""]).model == "from-path")
    // Other captures are ignored.
    #expect(gemini.invocation(path: "/anything", captures: ["m": "x", "op": "streamGenerateContent"])
        == LLMNativeFormat.Invocation(model: nil, operation: nil, stream: false))

    let bedrock = LLMNativeFormat.bedrock
    // A captured Bedrock model is URL-decoded like the path's; a decoded one is unchanged.
    #expect(bedrock.invocation(path: "/x", captures: ["model": "cohere.command-r-v1%3A0", "operation": "converse-stream"])
        == LLMNativeFormat.Invocation(model: "cohere.command-r-v1:0", operation: "converse-stream", stream: true))
    #expect(bedrock.invocation(path: "/model/other/converse", captures: ["model": "cohere.command-r-v1:0"])
        == LLMNativeFormat.Invocation(model: "cohere.command-r-v1:0", operation: "converse", stream: false))
}

// MARK: - Native request → OpenAI shape

@Test func geminiRequestMapping() throws {
    let native = try JSONValue.parse(#"""
    {
      "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
      "contents": [
        {"parts": [{"text": "Hi"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                   {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.jpg"}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "a/b"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"result": 42}}}, {"text": "and?"}]},
        {"role": "human", "parts": {"text": "More"}}
      ],
      "tools": [{"functionDeclarations": [{"name": "lookup", "parameters": {"type": "object"}}]}, {"googleSearch": {}}],
      "generationConfig": {"temperature": 0.2, "maxOutputTokens": 100, "topP": 0.9, "topK": 3, "stopSequences": ["END"]}
    }
    """#)
    let converted = LLMNativeFormat.gemini.openAIRequest(from: native, model: "gemini-1.5-flash", stream: true)
    #expect(converted == [
        "messages": [
            ["role": "system", "content": [["type": "text", "text": "Be brief."], ["type": "text", "text": "Be kind."]]],
            ["role": "user", "content": [
                ["type": "text", "text": "Hi"],
                ["type": "image_url", "image_url": ["url": "data:image/png;base64,AAAA"]],
                ["type": "image_url", "image_url": ["url": "gs://bucket/cat.jpg"]],
            ]],
            ["role": "assistant", "tool_calls": [
                ["type": "function", "function": ["name": "lookup", "id": "lookup", "arguments": #"{"q":"a\/b"}"#]],
            ]],
            // A function response without `content` is passed whole; it precedes the turn's text.
            ["role": "tool", "content": #"{"result":42}"#],
            ["role": "user", "content": [["type": "text", "text": "and?"]]],
            ["role": "user", "content": [["type": "text", "text": "More"]]],
        ],
        "tools": [["type": "function", "function": ["name": "lookup", "parameters": ["type": "object"]]]],
        "temperature": 0.2, "max_tokens": 100, "top_p": 0.9, "top_k": 3, "stop": ["END"],
        "model": "gemini-1.5-flash", "stream": true,
    ], "got \(converted.serialized())")
}

@Test func geminiSnakeCaseFieldsAndSingleObjects() throws {
    let native = try JSONValue.parse(#"""
    {
      "system_instruction": {"parts": {"text": "sys"}},
      "contents": {"role": "user", "parts": {"inline_data": {"mime_type": "image/jpeg", "data": "BBBB"}}},
      "generation_config": {"max_output_tokens": 5, "stop_sequences": ["x"]}
    }
    """#)
    let converted = LLMNativeFormat.gemini.openAIRequest(from: native, model: nil, stream: false)
    #expect(converted == [
        "messages": [
            ["role": "system", "content": [["type": "text", "text": "sys"]]],
            ["role": "user", "content": [["type": "image_url", "image_url": ["url": "data:image/jpeg;base64,BBBB"]]]],
        ],
        "max_tokens": 5, "stop": ["x"], "stream": false,
    ], "got \(converted.serialized())")
}

@Test func geminiTurnsThatCarryNothingKnownAreKept() {
    let native: JSONValue = ["contents": [["role": "user", "parts": [["executableCode": ["code": "1"]]]], ["role": "model"]]]
    let converted = LLMNativeFormat.gemini.openAIRequest(from: native, model: "m", stream: false)
    #expect(converted["messages"] == [["role": "user", "content": []], ["role": "assistant", "content": []]])
}

@Test func bedrockRequestMapping() throws {
    let native = try JSONValue.parse(#"""
    {
      "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
      "messages": [
        {"role": "user", "content": [{"text": "Look"}, {"image": {"format": "png", "source": {"bytes": "CCCC"}}}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "search", "input": {"q": "x"}}},
                                          {"toolUse": {"toolUseId": "t2", "name": "now"}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "found"}, {"json": {"n": 1}}]}},
                                     {"toolResult": {"toolUseId": "t2", "content": [{"json": {"t": "12:00"}}], "status": "success"}},
                                     {"text": "Thanks"}]}
      ],
      "inferenceConfig": {"maxTokens": 64, "temperature": 0.5, "topP": 0.8, "stopSequences": ["STOP"]},
      "toolConfig": {"tools": [{"toolSpec": {"name": "search", "description": "Web", "inputSchema": {"json": {"type": "object"}}}},
                               {"cachePoint": {"type": "default"}}]}
    }
    """#)
    let converted = LLMNativeFormat.bedrock.openAIRequest(from: native, model: "amazon.nova-lite-v1:0", stream: false)
    #expect(converted == [
        "messages": [
            ["role": "system", "content": [["type": "text", "text": "Be brief."]]],
            ["role": "user", "content": [
                ["type": "text", "text": "Look"],
                ["type": "image_url", "image_url": ["url": "data:image/png;base64,CCCC"]],
            ]],
            ["role": "assistant", "tool_calls": [
                ["id": "t1", "type": "function", "function": ["name": "search", "arguments": #"{"q":"x"}"#]],
                ["id": "t2", "type": "function", "function": ["name": "now", "arguments": "{}"]],
            ]],
            ["role": "tool", "tool_call_id": "t1", "content": "found\n{\"n\":1}"],
            ["role": "tool", "tool_call_id": "t2", "content": #"{"t":"12:00"}"#],
            ["role": "user", "content": [["type": "text", "text": "Thanks"]]],
        ],
        "tools": [["type": "function", "function": ["name": "search", "description": "Web", "parameters": ["type": "object"]]]],
        "max_tokens": 64, "temperature": 0.5, "top_p": 0.8, "stop": ["STOP"],
        "model": "amazon.nova-lite-v1:0", "stream": false,
    ], "got \(converted.serialized())")
}

@Test(arguments: LLMNativeFormat.allCases)
func bodiesWithoutTurnsGiveNoMessages(_ format: LLMNativeFormat) {
    for body: JSONValue in [.null, "text", [1, 2], [:]] {
        #expect(format.openAIRequest(from: body, model: "m", stream: true) == ["messages": [], "model": "m", "stream": true])
    }
}

// MARK: - Usage of whole answers

@Test func geminiResponseUsage() throws {
    let gemini = LLMNativeFormat.gemini
    let good = try JSONValue.parse(#"""
    {"candidates": [{"content": {"parts": [{"text": "Everything is okay."}], "role": "model"}, "finishReason": "STOP"}],
     "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 11, "totalTokenCount": 13}, "modelVersion": "gemini-1.5-flash-002"}
    """#)
    #expect(gemini.usage(fromResponse: good) == LLMUsage(promptTokens: 2, completionTokens: 11))
    #expect(gemini.responseModel(fromResponse: good) == "gemini-1.5-flash-002")
    // A safety block reports no candidate tokens.
    #expect(gemini.usage(fromResponse: ["usageMetadata": ["promptTokenCount": 319, "totalTokenCount": 319]])
        == LLMUsage(promptTokens: 319, completionTokens: 0))
    #expect(gemini.usage(fromResponse: ["candidates": []]) == nil)
    #expect(gemini.usage(fromResponse: ["usage": ["inputTokens": 1]]) == nil)
    #expect(gemini.responseModel(fromResponse: ["candidates": []]) == nil)
}

@Test func bedrockResponseUsage() throws {
    let bedrock = LLMNativeFormat.bedrock
    let good = try JSONValue.parse(#"""
    {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, "stopReason": "end_turn",
     "usage": {"inputTokens": 30, "outputTokens": 7, "totalTokens": 37}, "metrics": {"latencyMs": 400}}
    """#)
    #expect(bedrock.usage(fromResponse: good) == LLMUsage(promptTokens: 30, completionTokens: 7))
    #expect(bedrock.responseModel(fromResponse: good) == nil)
    #expect(bedrock.usage(fromResponse: ["usageMetadata": ["promptTokenCount": 2]]) == nil)
    #expect(bedrock.usage(fromResponse: .null) == nil)
}

// MARK: - Usage of streamed answers

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Feeds `body` cut into pieces at `cuts`, then ends the stream.
private func accumulate(_ format: LLMNativeFormat, contentType: String?, _ body: [UInt8], cuts: [Int] = [],
                        accumulateText: Bool = false) -> LLMNativeStreamUsage {
    var usage = LLMNativeStreamUsage(format: format, contentType: contentType, model: "m", accumulateText: accumulateText)
    var start = 0
    for cut in cuts.sorted() where cut > start && cut < body.count {
        usage.consume(body[start..<cut])
        start = cut
    }
    usage.consume(body[start...])
    usage.finish()
    return usage
}

private let geminiArrayStream = bytes(#"""
[{"candidates": [{"content": {"parts": [{"text": "The answer"}], "role": "model"}}],
  "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11}}
,
{"candidates": [{"content": {"parts": [{"text": " is 2."}], "role": "model"}, "finishReason": "STOP"}],
  "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 6, "totalTokenCount": 15}}
]
"""#)

@Test func geminiArrayStreamUsageIsTheLastReported() {
    let whole = accumulate(.gemini, contentType: "application/json; charset=UTF-8", geminiArrayStream, accumulateText: true)
    #expect(whole.isSupported)
    #expect(whole.splitError == nil)
    #expect(whole.usage == LLMUsage(promptTokens: 9, completionTokens: 6))
    let completion = whole.completion(logStatistics: true)
    #expect(completion.usage == LLMUsage(promptTokens: 9, completionTokens: 6))
    #expect(completion.finishReason == "STOP")
    #expect(completion.text == "The answer is 2.")
    // However the network cuts the body.
    for cut in 1..<geminiArrayStream.count {
        let split = accumulate(.gemini, contentType: "application/json", geminiArrayStream, cuts: [cut])
        #expect(split.usage == whole.usage, "cut at \(cut)")
    }
}

@Test func geminiSSEStreamUsage() {
    let body = bytes(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1}}\r\n\r\n"
        + "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":3}}")
    // The last event has no blank line after it: only the end of the body releases it.
    let usage = accumulate(.gemini, contentType: "text/event-stream", body, cuts: [40, 41, 150])
    #expect(usage.usage == LLMUsage(promptTokens: 4, completionTokens: 3))
    #expect(usage.converter.finishReason == "STOP")
}

@Test func geminiStreamThatIsNotAnArrayStopsCountingOnly() {
    var usage = LLMNativeStreamUsage(format: .gemini, contentType: "application/json")
    usage.consume(bytes(#"{"error": {"code": 400}}"#))
    usage.consume(geminiArrayStream)
    usage.finish()
    #expect(usage.splitError == .invalidArrayStart)
    #expect(usage.usage == LLMUsage())
}

/// One AWS event-stream message with string headers; CRCs are zero (the decoder ignores them).
private func eventStreamMessage(_ eventType: String, _ payload: String) -> [UInt8] {
    func uint32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) } }
    var headers: [UInt8] = []
    for (name, value) in [(":message-type", "event"), (":event-type", eventType), (":content-type", "application/json")] {
        headers += [UInt8(name.utf8.count)] + bytes(name) + [7]
        headers += [UInt8(value.utf8.count >> 8), UInt8(value.utf8.count & 0xFF)] + bytes(value)
    }
    let body = bytes(payload)
    return uint32(16 + headers.count + body.count) + uint32(headers.count) + uint32(0) + headers + body + uint32(0)
}

private let bedrockStream: [UInt8] =
    eventStreamMessage("messageStart", #"{"role":"assistant"}"#)
    + eventStreamMessage("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"text":"Two."}}"#)
    + eventStreamMessage("contentBlockStop", #"{"contentBlockIndex":0}"#)
    + eventStreamMessage("messageStop", #"{"stopReason":"end_turn"}"#)
    + eventStreamMessage("metadata", #"{"usage":{"inputTokens":21,"outputTokens":5,"totalTokens":26},"metrics":{"latencyMs":300}}"#)

@Test func bedrockEventStreamUsageComesFromTheMetadataEvent() {
    let whole = accumulate(.bedrock, contentType: "application/vnd.amazon.eventstream", bedrockStream, accumulateText: true)
    #expect(whole.splitError == nil)
    #expect(whole.usage == LLMUsage(promptTokens: 21, completionTokens: 5))
    let completion = whole.completion(logStatistics: true)
    #expect(completion.finishReason == "stop")
    #expect(completion.text == "Two.")
    for cut in 1..<bedrockStream.count {
        let split = accumulate(.bedrock, contentType: "application/vnd.amazon.eventstream", bedrockStream, cuts: [cut, cut + 7])
        #expect(split.usage == whole.usage, "cut at \(cut)")
    }
    // Before the metadata event nothing is reported.
    let early = accumulate(.bedrock, contentType: "application/vnd.amazon.eventstream", Array(bedrockStream.dropLast(1)))
    #expect(early.usage == LLMUsage())
}

@Test func unsupportedContentTypeCountsNothing() {
    let usage = accumulate(.gemini, contentType: "text/html", geminiArrayStream)
    #expect(!usage.isSupported)
    #expect(usage.usage == LLMUsage())
    #expect(usage.splitError == nil)
}

@Test func chunksAfterTheEndAreIgnored() {
    var usage = LLMNativeStreamUsage(format: .bedrock, contentType: "application/vnd.amazon.eventstream")
    usage.finish()
    usage.consume(bedrockStream)
    #expect(usage.usage == LLMUsage())
}
