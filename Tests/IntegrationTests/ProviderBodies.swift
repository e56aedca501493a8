import Core
import Foundation

/// Provider-shaped bodies beyond chat text: OpenAI-compatible usage chunks, tool calls,
/// completions and embeddings; Gemini `generateContent` / `streamGenerateContent` /
/// `batchEmbedContents`; Bedrock `converse` / `converse-stream` (AWS event stream) / Titan
/// `invoke` (spec ai-plugins §2.5, §2.7, §2.8). Texts are ASCII.
extension ProviderFixtures {
    // MARK: OpenAI-compatible (openai, azure, mistral)

    /// OpenAI SSE frames as `openAIStream`, and when `usage` is given (the request asked for
    /// `stream_options.include_usage`) OpenAI's extra last chunk before `[DONE]`: empty `choices`
    /// and the request's usage.
    static func openAIStream(deltas: [String], model: String, usage: (prompt: Int, completion: Int)?) -> [String] {
        var frames = openAIStream(deltas: deltas, model: model)
        if let usage {
            let chunk = #"data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"\#(model)","choices":[],"usage":{"prompt_tokens":\#(usage.prompt),"completion_tokens":\#(usage.completion),"total_tokens":\#(usage.prompt + usage.completion)}}"# + "\n\n"
            frames.insert(chunk, at: frames.count - 1)
        }
        return frames
    }

    /// An OpenAI chat completion whose message is one tool call (`arguments` is the JSON text).
    static func openAIToolCall(name: String, arguments: String, id: String = "call_mock_add",
                               model: String = "gpt-4o-mini") -> String {
        """
        {"id": "chatcmpl-tool", "object": "chat.completion", "created": 1700000000, "model": "\(model)", \
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "\(id)", \
        "type": "function", "function": {"name": "\(name)", "arguments": \(quoted(arguments))}}]}, \
        "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 60, "completion_tokens": 18, "total_tokens": 78}}
        """
    }

    /// An OpenAI legacy completion (`/v1/completions`).
    static func openAICompletion(text: String, model: String = "gpt-3.5-turbo-instruct",
                                 prompt: Int = 5, completion: Int = 6) -> String {
        """
        {"id": "cmpl-mock", "object": "text_completion", "created": 1700000000, "model": "\(model)", \
        "choices": [{"text": \(quoted(text)), "index": 0, "logprobs": null, "finish_reason": "stop"}], \
        "usage": {"prompt_tokens": \(prompt), "completion_tokens": \(completion), "total_tokens": \(prompt + completion)}}
        """
    }

    /// An OpenAI `/v1/embeddings` answer: vectors as JSON arrays, or (`base64`) as base64 of the
    /// little-endian float32 values, as OpenAI answers `encoding_format: "base64"`.
    static func openAIEmbeddings(_ vectors: [[Double]], base64: Bool, model: String = "text-embedding-3-small",
                                 promptTokens: Int = 8) -> String {
        let data = vectors.enumerated().map { index, vector in
            let embedding = base64 ? quoted(float32Base64(vector)) : numbers(vector)
            return #"{"object": "embedding", "index": \#(index), "embedding": \#(embedding)}"#
        }
        return #"{"object": "list", "data": [\#(data.joined(separator: ", "))], "model": "\#(model)", "usage": {"prompt_tokens": \#(promptTokens), "total_tokens": \#(promptTokens)}}"#
    }

    // MARK: Anthropic

    /// An Anthropic Messages response whose only block is a `tool_use`.
    static func anthropicToolUse(name: String, input: String, id: String = "toolu_mock_add",
                                 model: String = "claude-3-5-haiku-20241022") -> String {
        #"{"id":"msg_tool","type":"message","role":"assistant","model":"\#(model)","content":[{"type":"tool_use","id":"\#(id)","name":"\#(name)","input":\#(input)}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":30,"output_tokens":15}}"#
    }

    // MARK: Gemini

    /// A Gemini `generateContent` answer with one text part.
    static func geminiContent(text: String, prompt: Int = 5, completion: Int = 7) -> String {
        #"{"candidates":[{"content":{"parts":[{"text":\#(quoted(text))}],"role":"model"},"finishReason":"STOP","index":0,"avgLogprobs":-0.0133}],"usageMetadata":{"promptTokenCount":\#(prompt),"candidatesTokenCount":\#(completion),"totalTokenCount":\#(prompt + completion)},"modelVersion":"gemini-1.5-flash-002"}"#
    }

    /// A Gemini `generateContent` answer calling one function (`args` is a JSON object text).
    static func geminiFunctionCall(name: String, args: String) -> String {
        #"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"\#(name)","args":\#(args)}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":5,"totalTokenCount":25},"modelVersion":"gemini-1.5-flash-002"}"#
    }

    /// A Gemini `streamGenerateContent` body (no `alt=sse`): one JSON array, one element per
    /// delta, elements separated as Google does (`,\r\n`), `usageMetadata` cumulative in each
    /// element, the last one with `finishReason` and `completion` candidate tokens. Returned in
    /// `pieces` parts cut at arbitrary bytes (not at element boundaries), as a network delivers it.
    static func geminiStream(deltas: [String], prompt: Int = 4, completion: Int = 6, pieces: Int = 3) -> [String] {
        let elements = deltas.enumerated().map { index, delta -> String in
            let last = index == deltas.count - 1
            let finish = last ? #","finishReason":"STOP""# : ""
            let soFar = last ? completion : max(1, completion * (index + 1) / deltas.count)
            return #"{"candidates":[{"content":{"parts":[{"text":\#(quoted(delta))}],"role":"model"}\#(finish),"index":0}],"usageMetadata":{"promptTokenCount":\#(prompt),"candidatesTokenCount":\#(soFar),"totalTokenCount":\#(prompt + soFar)},"modelVersion":"gemini-1.5-flash-002"}"#
        }
        let body = Array(("[" + elements.joined(separator: ",\r\n") + "]").utf8)
        let size = (body.count + pieces - 1) / pieces
        return stride(from: 0, to: body.count, by: size).map {
            String(decoding: body[$0..<min($0 + size, body.count)], as: UTF8.self)
        }
    }

    /// A Gemini `batchEmbedContents` answer: one `values` vector per request.
    static func geminiEmbeddings(_ vectors: [[Double]]) -> String {
        #"{"embeddings":[\#(vectors.map { #"{"values":\#(numbers($0))}"# }.joined(separator: ","))]}"#
    }

    // MARK: Bedrock

    /// A Bedrock `converse` answer with one text block.
    static func bedrockConverse(text: String, input: Int = 10, output: Int = 6) -> String {
        #"{"metrics":{"latencyMs":321},"output":{"message":{"content":[{"text":\#(quoted(text))}],"role":"assistant"}},"stopReason":"end_turn","usage":{"inputTokens":\#(input),"outputTokens":\#(output),"totalTokens":\#(input + output)}}"#
    }

    /// A Bedrock `converse` answer whose only block is a `toolUse` (`input` is a JSON object text).
    static func bedrockToolUse(name: String, input: String, id: String = "tooluse_mock_add") -> String {
        #"{"metrics":{"latencyMs":402},"output":{"message":{"content":[{"toolUse":{"input":\#(input),"name":"\#(name)","toolUseId":"\#(id)"}}],"role":"assistant"}},"stopReason":"tool_use","usage":{"inputTokens":40,"outputTokens":20,"totalTokens":60}}"#
    }

    /// The AWS event-stream messages of a Bedrock `converse-stream` answer: messageStart, one
    /// contentBlockDelta per delta, contentBlockStop, messageStop, metadata (with the usage).
    static func bedrockStreamMessages(deltas: [String], input: Int = 8, output: Int = 5) -> [[UInt8]] {
        var messages = [AWSEventStreamEncoder.message(eventType: "messageStart", payload: #"{"p":"abcdefghijkl","role":"assistant"}"#)]
        for delta in deltas {
            messages.append(AWSEventStreamEncoder.message(
                eventType: "contentBlockDelta", payload: #"{"contentBlockIndex":0,"delta":{"text":\#(quoted(delta))},"p":"abcdefgh"}"#))
        }
        messages.append(AWSEventStreamEncoder.message(eventType: "contentBlockStop", payload: #"{"contentBlockIndex":0,"p":"abcd"}"#))
        messages.append(AWSEventStreamEncoder.message(eventType: "messageStop", payload: #"{"p":"abcdefghijklmnopq","stopReason":"end_turn"}"#))
        messages.append(AWSEventStreamEncoder.message(
            eventType: "metadata",
            payload: #"{"metrics":{"latencyMs":250},"p":"abc","usage":{"inputTokens":\#(input),"outputTokens":\#(output),"totalTokens":\#(input + output)}}"#))
        return messages
    }

    /// The reply of a Bedrock `converse-stream`: `application/vnd.amazon.eventstream`, the
    /// messages sent in chunks whose boundaries do not all fall between messages (the second
    /// delta's message is cut in two).
    static func bedrockStream(deltas: [String], input: Int = 8, output: Int = 5) -> ProviderReply {
        let messages = bedrockStreamMessages(deltas: deltas, input: input, output: output)
        var chunks: [[UInt8]] = []
        var pending: [UInt8] = []
        for (index, message) in messages.enumerated() {
            if index == 2 {
                let half = message.count / 2
                chunks.append(pending + message[..<half])
                pending = Array(message[half...])
            } else {
                pending += message
                if index == 1 || index == messages.count - 1 {
                    chunks.append(pending)
                    pending = []
                }
            }
        }
        return ProviderReply(status: 200, headers: [("Content-Type", "application/vnd.amazon.eventstream")],
                             chunks: chunks.map { ProviderReply.Chunk(bytes: $0) }, declaresLength: false)
    }

    /// An Amazon Titan embeddings answer (`/model/amazon.titan-embed-…/invoke`).
    static func bedrockTitanEmbedding(_ vector: [Double], inputTokens: Int = 4) -> String {
        #"{"embedding":\#(numbers(vector)),"embeddingsByType":{"float":\#(numbers(vector))},"inputTextTokenCount":\#(inputTokens)}"#
    }

    // MARK: Helpers

    /// A JSON array of numbers.
    static func numbers(_ vector: [Double]) -> String {
        "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
    }

    /// Base64 of the vector as little-endian float32 values (OpenAI's `encoding_format: base64`).
    static func float32Base64(_ vector: [Double]) -> String {
        var bytes: [UInt8] = []
        for value in vector {
            withUnsafeBytes(of: Float(value).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return Data(bytes).base64EncodedString()
    }
}

/// Writes AWS event-stream messages (`application/vnd.amazon.eventstream`, what Bedrock's
/// `converse-stream` answers with): prelude (total length and headers length, big-endian
/// UInt32), prelude CRC32, headers, payload, message CRC32 (over everything before it).
enum AWSEventStreamEncoder {
    /// One `event` message with Bedrock's three string headers and a JSON payload.
    static func message(eventType: String, payload: String) -> [UInt8] {
        var headers: [UInt8] = []
        for (name, value) in [(":event-type", eventType), (":content-type", "application/json"), (":message-type", "event")] {
            headers.append(UInt8(name.utf8.count))
            headers += name.utf8
            headers.append(7)  // string: UInt16 length, then UTF-8
            headers += bigEndian(UInt16(value.utf8.count))
            headers += value.utf8
        }
        let body = Array(payload.utf8)
        var message = bigEndian(UInt32(12 + headers.count + body.count + 4)) + bigEndian(UInt32(headers.count))
        message += bigEndian(crc32(message))
        message += headers
        message += body
        message += bigEndian(crc32(message))
        return message
    }

    static func bigEndian<Integer: FixedWidthInteger>(_ value: Integer) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    /// CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial value and final XOR
    /// 0xFFFFFFFF), the checksum of AWS event-stream messages. `crc32("123456789".utf8) == 0xCBF43926`.
    static func crc32<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 {
            crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
        }
        return crc
    }
}
