import Core

/// ai-proxy's native client formats (`config.llm_format` = `gemini` | `bedrock`, spec §2.12): the
/// client speaks the provider's own API and the gateway forwards the native body and the native
/// answer unchanged. What the gateway still needs from them lives here, as pure functions:
///
/// * the model and the stream flag, from the route's named captures or the request path;
/// * an OpenAI-shaped copy of the request, for the model checks and analytics only (never sent);
/// * the token usage of a native answer, whole (`usage(fromResponse:)`) or streamed
///   (`LLMNativeStreamUsage`).
///
/// The request mapping is pinned by Kong's `native/**` fixtures (MANIFEST §4).
public enum LLMNativeFormat: String, Sendable, CaseIterable {
    case gemini, bedrock

    /// The format `config.llm_format` names; nil for `openai` (nothing native to do) or an
    /// unknown value.
    public init?(llmFormat: String?) {
        guard let llmFormat, let format = LLMNativeFormat(rawValue: llmFormat) else { return nil }
        self = format
    }

    /// The only provider the schema allows with this format (§2.2 entity checks).
    public var provider: LLMProvider {
        switch self {
        case .gemini: return .gemini
        case .bedrock: return .bedrock
        }
    }

    // MARK: - Model and stream flag

    /// What the request path says about the call.
    public struct Invocation: Sendable, Equatable {
        /// The model named by the capture or the path; nil when neither names one.
        public var model: String?
        /// Gemini `generateContent`/`streamGenerateContent`, Bedrock `converse`/`converse-stream`.
        public var operation: String?
        /// Gemini `streamGenerateContent`, Bedrock `converse-stream`.
        public var stream: Bool

        public init(model: String?, operation: String?, stream: Bool) {
            self.model = model
            self.operation = operation
            self.stream = stream
        }
    }

    /// The model and operation of a native request: the route's named captures `model` and
    /// `operation` win, each on its own; otherwise they are read from the path (its query string,
    /// if any, ignored):
    /// * Gemini `…/models/<model>:<operation>`;
    /// * Bedrock `…/model/<model>/<operation>`, the model URL-decoded
    ///   (`cohere.command-r-v1%3A0` → `cohere.command-r-v1:0`; a captured model too, since the
    ///   router matches the raw path).
    public func invocation(path: String, captures: [String: String] = [:]) -> Invocation {
        let fromPath = parse(path: path)
        var model = captures["model"].flatMap { $0.isEmpty ? nil : $0 } ?? fromPath.model
        if self == .bedrock { model = model.map { CloudEncoding.percentDecoded($0[...]) } }
        let operation = captures["operation"].flatMap { $0.isEmpty ? nil : $0 } ?? fromPath.operation
        return Invocation(model: model, operation: operation, stream: operation == streamOperation)
    }

    /// The operation that streams its answer.
    public var streamOperation: String {
        switch self {
        case .gemini: return "streamGenerateContent"
        case .bedrock: return "converse-stream"
        }
    }

    private func parse(path: String) -> (model: String?, operation: String?) {
        let segments = path.prefix { $0 != "?" }.split(separator: "/", omittingEmptySubsequences: true)
        switch self {
        case .gemini:
            // `models/<model>:<operation>`; a `%3A` for the colon is accepted as well.
            guard let index = segments.lastIndex(of: "models"), index + 1 < segments.count else { return (nil, nil) }
            let rest = CloudEncoding.percentDecoded(segments[(index + 1)...].joined(separator: "/")[...])
            guard let colon = rest.lastIndex(of: ":") else { return (rest.isEmpty ? nil : rest, nil) }
            let model = String(rest[..<colon])
            let operation = String(rest[rest.index(after: colon)...])
            return (model.isEmpty ? nil : model, operation.isEmpty ? nil : operation)
        case .bedrock:
            // `model/<model>/<operation>`. A model id is one segment when encoded as Bedrock's
            // SDKs do (`%3A`, `%2F`); an ARN sent with raw `/` spans the segments before the
            // operation. (Decoding happens in `invocation`, after the captures.)
            guard let index = segments.lastIndex(of: "model"), index + 1 < segments.count else { return (nil, nil) }
            let after = segments[(index + 1)...]
            guard after.count >= 2 else { return (String(after.first!), nil) }
            return (after.dropLast().joined(separator: "/"), String(after.last!))
        }
    }

    // MARK: - Native request → OpenAI shape

    /// The OpenAI-shaped request for a native body (§2.12): `messages`, `tools` (when declared),
    /// the generation parameters the body sets, `model` (when known) and `stream`. Total: parts it
    /// does not know are skipped, a body that is not an object gives no messages.
    public func openAIRequest(from native: JSONValue, model: String?, stream: Bool) -> JSONValue {
        var out: [String: JSONValue]
        switch self {
        case .gemini: out = GeminiNative.request(native)
        case .bedrock: out = BedrockNative.request(native)
        }
        out["model"] = model.map(JSONValue.string)
        out["stream"] = .bool(stream)
        return .object(out)
    }

    /// `openAIRequest(from:model:stream:)` with the model and stream flag of `invocation`.
    public func openAIRequest(from native: JSONValue, invocation: Invocation) -> JSONValue {
        openAIRequest(from: native, model: invocation.model, stream: invocation.stream)
    }

    // MARK: - Usage

    /// The token counts of a native non-stream answer: Gemini
    /// `usageMetadata.promptTokenCount/candidatesTokenCount`, Bedrock
    /// `usage.inputTokens/outputTokens`. A missing count is 0; nil when neither is reported.
    public func usage(fromResponse body: JSONValue) -> LLMUsage? {
        let prompt: Int?
        let completion: Int?
        switch self {
        case .gemini:
            prompt = body["usageMetadata"]?["promptTokenCount"]?.intValue
            completion = body["usageMetadata"]?["candidatesTokenCount"]?.intValue
        case .bedrock:
            prompt = body["usage"]?["inputTokens"]?.intValue
            completion = body["usage"]?["outputTokens"]?.intValue
        }
        guard prompt != nil || completion != nil else { return nil }
        return LLMUsage(promptTokens: prompt ?? 0, completionTokens: completion ?? 0)
    }

    /// analytics' `response_model` of a native non-stream answer (§2.11): Gemini's
    /// `modelVersion`; Bedrock answers name no model (nil → the request model).
    public func responseModel(fromResponse body: JSONValue) -> String? {
        switch self {
        case .gemini: return body["modelVersion"]?.stringValue
        case .bedrock: return nil
        }
    }
}

// MARK: - Streamed usage

/// Token usage (and finish reason, and optionally the text) of a native streamed answer, fed
/// chunk by chunk as the upstream bytes pass through to the client unchanged.
///
/// The framing is the shared `StreamFrameSplitter` (Gemini's JSON array or `alt=sse` events,
/// Bedrock's AWS event stream, chosen by the upstream `Content-Type`), and each event is read by
/// the same provider dialect as the converted streams of §2.8 (a `StreamNormalizer` that only
/// observes): Gemini `usageMetadata` replaces what earlier elements reported, Bedrock's
/// `metadata` event carries `usage`. The OpenAI chunks that dialect builds are read, never encoded.
///
/// A body that cannot be split (not a JSON array, a corrupt AWS message, an unsupported content
/// type) stops the counting, never the response: the client gets the native bytes regardless.
public struct LLMNativeStreamUsage: Sendable {
    public let format: LLMNativeFormat
    private var reader: StreamNormalizer

    /// - Parameters:
    ///   - contentType: the upstream response's `Content-Type`.
    ///   - model: the request model.
    ///   - accumulateText: also collect the answer text (`logging.log_payloads`), which is what
    ///     lets `completion(logStatistics:)` estimate missing completion tokens.
    public init(format: LLMNativeFormat, contentType: String?, model: String? = nil, accumulateText: Bool = false) {
        self.format = format
        reader = StreamNormalizer(observing: contentType, model: LLMModelConfig(provider: format.provider, name: model),
                                  accumulateText: accumulateText)
    }

    /// Whether the upstream content type is one the splitter reads (else nothing is counted).
    public var isSupported: Bool { reader.splitter.isSupported }

    /// What the events reported; its `usage`, `finishReason` and (when accumulated) `text` are
    /// read for analytics, as for converted streams.
    public var converter: StreamEventConverter { reader.converter }

    /// Why counting stopped early, when the body could not be split.
    public var splitError: StreamSplitError? { reader.splitError }

    /// The tokens reported so far (0 for a count not reported yet).
    public var usage: LLMUsage { reader.converter.usage }

    /// Reads one upstream chunk (as received, already inflated).
    public mutating func consume<Bytes: Collection>(_ chunk: Bytes) where Bytes.Element == UInt8 {
        _ = reader.process(chunk)
    }

    /// The end of the upstream body (releases a last SSE event without its blank line).
    public mutating func finish() {
        _ = reader.finish()
    }

    /// The stream's analytics, as `StreamEventConverter.completion` computes them for converted
    /// streams (§2.8, §2.11).
    public func completion(logStatistics: Bool) -> StreamCompletion {
        reader.converter.completion(logStatistics: logStatistics)
    }
}

// MARK: - Gemini

/// Gemini `generateContent` bodies → OpenAI shape. Gemini's JSON accepts both the proto field
/// names (`system_instruction`, `inline_data`, `function_response`…) and their lowerCamel forms
/// (`systemInstruction`, `inlineData`, `functionResponse`…); both are read. Wherever Gemini takes
/// a list (`contents`, `parts`), a single object is accepted too.
private enum GeminiNative {
    static func request(_ body: JSONValue) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        var messages: [JSONValue] = []
        if let system = member(body, "system_instruction", "systemInstruction") {
            let parts = list(system["parts"]).compactMap(textPart)
            if !parts.isEmpty { messages.append(["role": "system", "content": .array(parts)]) }
        }
        for content in list(member(body, "contents")) {
            messages += self.messages(content)
        }
        out["messages"] = .array(messages)

        let tools = list(body["tools"]).flatMap { list(member($0, "function_declarations", "functionDeclarations")) }
            .compactMap(tool)
        if !tools.isEmpty { out["tools"] = .array(tools) }

        if let config = member(body, "generationConfig", "generation_config") {
            out["temperature"] = config["temperature"]
            out["max_tokens"] = member(config, "maxOutputTokens", "max_output_tokens")
            out["top_p"] = member(config, "topP", "top_p")
            out["top_k"] = member(config, "topK", "top_k")
            out["stop"] = member(config, "stopSequences", "stop_sequences")
        }
        return out
    }

    /// One `contents` entry: one `tool` message per function response (OpenAI has no parts for
    /// those), then a message with the text/image parts and tool calls, if any.
    static func messages(_ content: JSONValue) -> [JSONValue] {
        let role = openAIRole(content["role"]?.stringValue)
        var parts: [JSONValue] = []
        var calls: [JSONValue] = []
        var results: [JSONValue] = []
        for part in list(content["parts"]) {
            if let text = textPart(part) {
                parts.append(text)
            } else if let data = member(part, "inline_data", "inlineData") {
                let mime = member(data, "mime_type", "mimeType")?.stringValue ?? ""
                let encoded = data["data"]?.stringValue ?? ""
                parts.append(["type": "image_url", "image_url": ["url": .string("data:\(mime);base64,\(encoded)")]])
            } else if let file = member(part, "file_data", "fileData") {
                var image: [String: JSONValue] = [:]
                image["url"] = member(file, "file_uri", "fileUri")
                parts.append(["type": "image_url", "image_url": .object(image)])
            } else if let call = member(part, "functionCall", "function_call") {
                // Gemini calls carry no id: Kong puts the function name where the id goes.
                var function: [String: JSONValue] = ["arguments": .string(KongJSON.encode(call["args"] ?? KongJSON.emptyTable))]
                function["name"] = call["name"]
                function["id"] = call["name"]
                calls.append(["type": "function", "function": .object(function)])
            } else if let response = member(part, "function_response", "functionResponse") {
                // The result's `content` when the client wrapped it so (as Kong's fixture does),
                // else the whole `response` object.
                let result = response["response"]?["content"] ?? response["response"] ?? .null
                results.append(["role": "tool", "content": .string(KongJSON.encode(result))])
            }
        }
        var messages = results
        if !parts.isEmpty || !calls.isEmpty || results.isEmpty {
            var message: [String: JSONValue] = ["role": .string(role)]
            if !parts.isEmpty || calls.isEmpty { message["content"] = .array(parts) }
            if !calls.isEmpty { message["tool_calls"] = .array(calls) }
            messages.append(.object(message))
        }
        return messages
    }

    /// Gemini role → OpenAI role (§2.12); no role is a user turn, an unknown one is kept.
    static func openAIRole(_ role: String?) -> String {
        switch role {
        case nil, "user", "human": return "user"
        case "model": return "assistant"
        case "function": return "tool"
        case let role?: return role
        }
    }

    static func textPart(_ part: JSONValue) -> JSONValue? {
        guard let text = part["text"]?.stringValue else { return nil }
        return ["type": "text", "text": .string(text)]
    }

    static func tool(_ declaration: JSONValue) -> JSONValue? {
        guard declaration.objectValue != nil else { return nil }
        var function: [String: JSONValue] = [:]
        function["name"] = declaration["name"]
        function["description"] = declaration["description"]
        function["parameters"] = declaration["parameters"]
        return ["type": "function", "function": .object(function)]
    }
}

// MARK: - Bedrock

/// Bedrock Converse bodies → OpenAI shape.
private enum BedrockNative {
    static func request(_ body: JSONValue) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        var messages: [JSONValue] = []
        let system = list(body["system"]).compactMap(textPart)
        if !system.isEmpty { messages.append(["role": "system", "content": .array(system)]) }
        for message in list(body["messages"]) {
            messages += self.messages(message)
        }
        out["messages"] = .array(messages)

        let tools = list(body["toolConfig"]?["tools"]).compactMap(tool)
        if !tools.isEmpty { out["tools"] = .array(tools) }

        if let config = body["inferenceConfig"] {
            out["temperature"] = config["temperature"]
            out["max_tokens"] = config["maxTokens"]
            out["top_p"] = config["topP"]
            out["stop"] = config["stopSequences"]
        }
        return out
    }

    /// One Converse message: its text/image blocks and tool uses as one message, and each
    /// `toolResult` block as a `tool` message placed before it (a user turn answering tool calls
    /// is usually nothing but results).
    static func messages(_ message: JSONValue) -> [JSONValue] {
        let role = message["role"]?.stringValue ?? "user"
        var parts: [JSONValue] = []
        var calls: [JSONValue] = []
        var results: [JSONValue] = []
        for block in list(message["content"]) {
            if let text = textPart(block) {
                parts.append(text)
            } else if let image = block["image"] {
                let format = image["format"]?.stringValue ?? ""
                let bytes = image["source"]?["bytes"]?.stringValue ?? ""
                parts.append(["type": "image_url", "image_url": ["url": .string("data:image/\(format);base64,\(bytes)")]])
            } else if let use = block["toolUse"] {
                var function: [String: JSONValue] = ["arguments": .string(KongJSON.encode(use["input"] ?? KongJSON.emptyTable))]
                function["name"] = use["name"]
                var call: [String: JSONValue] = ["type": "function", "function": .object(function)]
                call["id"] = use["toolUseId"]
                calls.append(.object(call))
            } else if let result = block["toolResult"] {
                var tool: [String: JSONValue] = ["role": "tool", "content": .string(resultText(result["content"]))]
                tool["tool_call_id"] = result["toolUseId"]
                results.append(.object(tool))
            }
        }
        var messages = results
        if !parts.isEmpty || !calls.isEmpty || results.isEmpty {
            var converted: [String: JSONValue] = ["role": .string(role)]
            if !parts.isEmpty || calls.isEmpty { converted["content"] = .array(parts) }
            if !calls.isEmpty { converted["tool_calls"] = .array(calls) }
            messages.append(.object(converted))
        }
        return messages
    }

    /// A tool result's content blocks as text: `json` blocks as their JSON, `text` blocks as is,
    /// several joined by newlines; other kinds (images, documents) are left out.
    static func resultText(_ content: JSONValue?) -> String {
        list(content).compactMap { block -> String? in
            if let json = block["json"] { return KongJSON.encode(json) }
            return block["text"]?.stringValue
        }.joined(separator: "\n")
    }

    static func textPart(_ block: JSONValue) -> JSONValue? {
        guard let text = block["text"]?.stringValue else { return nil }
        return ["type": "text", "text": .string(text)]
    }

    static func tool(_ entry: JSONValue) -> JSONValue? {
        guard let spec = entry["toolSpec"], spec.objectValue != nil else { return nil }
        var function: [String: JSONValue] = [:]
        function["name"] = spec["name"]
        function["description"] = spec["description"]
        function["parameters"] = spec["inputSchema"]?["json"]
        return ["type": "function", "function": .object(function)]
    }
}

// MARK: - Helpers

/// The first of `names` present in `value` (an object).
private func member(_ value: JSONValue?, _ names: String...) -> JSONValue? {
    guard let object = value?.objectValue else { return nil }
    for name in names {
        if let found = object[name] { return found }
    }
    return nil
}

/// A JSON list as its elements; a single object as a one-element list; anything else as none.
private func list(_ value: JSONValue?) -> [JSONValue] {
    switch value {
    case .array(let items): return items
    case .object: return [value!]
    default: return []
    }
}
