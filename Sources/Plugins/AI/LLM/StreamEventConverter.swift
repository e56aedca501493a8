import Core

/// Converts a request's upstream stream events into the client's OpenAI-shaped SSE frames, and
/// keeps what the analytics need at the end (spec §2.8, §2.11). One value per request.
///
/// Output rule: every payload is written as `data: <json>\n\n`; the terminator as `data: [DONE]`
/// with no trailing newline (§10.4). Events that produce nothing write nothing.
///
/// Bookkeeping, all from what is sent (as Kong does, by decoding each produced frame):
/// * usage — token counts reported by upstream events are added, except Gemini's and OpenAI's
///   cumulative `usage`, which replace;
/// * finish reason — the last non-null `choices[0].finish_reason` (a later chunk without one does
///   not erase it);
/// * text — `choices[0].delta.content` or `choices[0].text` of every chunk, only when
///   `accumulateText` (= `logging.log_payloads`).
public struct StreamEventConverter: Sendable {
    /// How produced chunks are encoded: as Kong's cjson writes them (`/` as `\/`, like the
    /// non-stream converted bodies), keys sorted for deterministic output.

    /// The single frame that replaces a stream whose upstream content type §2.8 does not parse
    /// (Kong's exact bytes, spaces included, no trailing newline); it ends the response.
    public static let unsupportedContentTypeFrame: [UInt8] =
        Array(#"data: {"error": true, "message": "empty or unsupported transformer response"}"#.utf8)

    /// The terminator frame, exactly.
    public static let terminatorFrame: [UInt8] = Array("data: [DONE]".utf8)

    private var dialect: StreamProviderDialect
    private let accumulateText: Bool
    private let inspectPassthrough: Bool
    private let includeUsage: Bool
    private let modelName: String?
    private let route: LLMRouteType
    private var scratch: [StreamPayload] = []

    /// Tokens reported by the upstream so far (not yet estimated).
    public private(set) var usage = LLMUsage()
    public private(set) var finishReason: String?
    /// The accumulated completion text; empty unless `accumulateText`.
    public private(set) var text = ""
    /// Whether `data: [DONE]` was written.
    public private(set) var sentTerminator = false

    /// - Parameters:
    ///   - model: the resolved model (its name goes into the chunks; its `mistral_format` /
    ///     `llama2_format` picks the wire dialect).
    ///   - accumulateText: collect the completion text (`logging.log_payloads`); also what makes
    ///     the completion-token estimate non-zero.
    ///   - inspectPassthrough: decode OpenAI-compatible chunks that are forwarded verbatim, to learn
    ///     their finish reason and `usage`. Only worth turning off when no analytics are written.
    ///   - includeUsage: the client asked `stream_options.include_usage`: a converted stream
    ///     gets OpenAI's usage chunk (`choices: []`) before `[DONE]`, as OpenAI sends it.
    public init(route: LLMRouteType, model: LLMModelConfig,
                accumulateText: Bool = false, inspectPassthrough: Bool = true, includeUsage: Bool = false) {
        dialect = StreamProviderDialect(route: route, model: model)
        self.accumulateText = accumulateText
        // OpenAI-format upstreams get `stream_options` as sent and answer it themselves.
        self.includeUsage = includeUsage && LLMDialect(model) != .openAI
        self.inspectPassthrough = inspectPassthrough || accumulateText
        modelName = model.name
        self.route = route
    }

    /// Appends the client frames for `event` to `frames`.
    public mutating func convert(_ event: StreamEvent, into frames: inout [UInt8]) {
        scratch.removeAll(keepingCapacity: true)
        if let report = dialect.convert(event, into: &scratch) {
            record(report)
        }
        for payload in scratch {
            write(payload, into: &frames)
        }
    }

    /// The client frames for `events`.
    public mutating func convert(_ events: [StreamEvent]) -> [UInt8] {
        var frames: [UInt8] = []
        for event in events {
            convert(event, into: &frames)
        }
        return frames
    }

    /// Reads `events` for the analytics only (usage, finish reason, text): no client frame is
    /// built, for a stream the client gets as the upstream sent it (a native format, §2.12).
    public mutating func observe(_ events: [StreamEvent]) {
        for event in events {
            scratch.removeAll(keepingCapacity: true)
            if let report = dialect.convert(event, into: &scratch) {
                record(report)
            }
            for payload in scratch {
                switch payload {
                case .done: break
                case .verbatim(let data): inspect(data)
                case .json(let chunk): observe(chunk)
                }
            }
        }
    }

    /// The stream's analytics once the body is complete (spec §2.8 last paragraph, §2.11).
    /// - Parameters:
    ///   - logStatistics: `logging.log_statistics`; only then is a missing completion count estimated.
    ///   - promptTokenEstimate: the request-side estimate (§2.11, providers whose streams carry no
    ///     usage); asked for only when the upstream reported no prompt tokens.
    public func completion(logStatistics: Bool, promptTokenEstimate: @autoclosure () -> Int? = nil) -> StreamCompletion {
        let accumulated = accumulateText ? text : nil
        var result = usage
        if result.promptTokens == 0, let estimate = promptTokenEstimate() {
            result.promptTokens = estimate
        }
        if logStatistics, result.completionTokens == 0 {
            result.completionTokens = StreamCompletion.estimatedTokens(forCompletion: accumulated ?? "")
        }
        return StreamCompletion(usage: result, finishReason: finishReason, text: accumulated)
    }

    // MARK: - Private

    private mutating func record(_ report: StreamUsageReport) {
        switch report {
        case .add(let counts):
            usage.promptTokens += counts.promptTokens
            usage.completionTokens += counts.completionTokens
        case .replace(let counts):
            usage = counts
        }
    }

    private mutating func write(_ payload: StreamPayload, into frames: inout [UInt8]) {
        switch payload {
        case .done:
            if includeUsage { writeUsageChunk(into: &frames) }
            frames.append(contentsOf: StreamEventConverter.terminatorFrame)
            sentTerminator = true
        case .verbatim(let data):
            StreamEventConverter.frame(data, into: &frames)
            inspect(data)
        case .json(let chunk):
            StreamEventConverter.frame(chunk.serialized(.kong), into: &frames)
            observe(chunk)
        }
    }

    /// OpenAI's last chunk under `include_usage`: no choices, the stream's reported token counts.
    private func writeUsageChunk(into frames: inout [UInt8]) {
        var chunk: [String: JSONValue] = [
            "choices": .array([]),
            "object": route == .completions ? "text_completion" : "chat.completion.chunk",
            "usage": [
                "prompt_tokens": .number(Double(usage.promptTokens)),
                "completion_tokens": .number(Double(usage.completionTokens)),
                "total_tokens": .number(Double(usage.totalTokens)),
            ],
        ]
        if let modelName { chunk["model"] = .string(modelName) }
        StreamEventConverter.frame(JSONValue.object(chunk).serialized(.kong), into: &frames)
    }

    private static func frame(_ json: String, into frames: inout [UInt8]) {
        frames.append(contentsOf: "data: ".utf8)
        frames.append(contentsOf: json.utf8)
        frames.append(contentsOf: "\n\n".utf8)
    }

    /// A forwarded OpenAI chunk's finish reason, text and `usage`, when they are wanted.
    private mutating func inspect(_ data: String) {
        guard inspectPassthrough, let chunk = try? JSONValue.parse(data) else { return }
        observe(chunk)
        if let reported = StreamEventConverter.openAIUsage(chunk) { record(.replace(reported)) }
    }

    private mutating func observe(_ chunk: JSONValue) {
        guard let choice = chunk["choices"]?.arrayValue?.first else { return }
        if let reason = choice["finish_reason"]?.stringValue {
            finishReason = reason
        }
        if accumulateText, let piece = choice["delta"]?["content"]?.stringValue ?? choice["text"]?.stringValue {
            text += piece
        }
    }

    /// The `usage` object OpenAI adds to its last chunk when asked (`stream_options.include_usage`);
    /// Kong ignores it, but when present it is better than the estimate.
    private static func openAIUsage(_ chunk: JSONValue) -> LLMUsage? {
        guard let usage = chunk["usage"],
              let prompt = usage["prompt_tokens"]?.intValue,
              let completion = usage["completion_tokens"]?.intValue
        else { return nil }
        return LLMUsage(promptTokens: prompt, completionTokens: completion)
    }
}

/// What a finished stream leaves for analytics and later plugins (spec §2.8, §2.11).
public struct StreamCompletion: Sendable, Equatable {
    /// Reported or estimated counts.
    public var usage: LLMUsage
    /// The last non-null `choices[0].finish_reason` sent.
    public var finishReason: String?
    /// The accumulated completion text; nil unless it was collected (`log_payloads`).
    public var text: String?

    public init(usage: LLMUsage, finishReason: String?, text: String?) {
        self.usage = usage
        self.finishReason = finishReason
        self.text = text
    }

    /// §2.8: ceil(byte length of the whitespace-trimmed text / 4).
    ///
    /// §10.7: Kong 3.10's own streaming test expects 13 for `The answer to 1 + 1 is 2.` (25 bytes)
    /// because its text is accumulated twice; counting it once gives ceil(25 / 4) = 7, Kong's
    /// value before 2024 and the only one consistent with the rule. This is the clean value.
    public static func estimatedTokens(forCompletion text: String) -> Int {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isLuaSpace($0) }),
              let last = scalars.lastIndex(where: { !isLuaSpace($0) })
        else { return 0 }
        let bytes = text.unicodeScalars[first...last].reduce(0) { $0 + UTF8.width($1) }
        return (bytes + 3) / 4
    }

    /// Lua's `%s`: what Kong's `strip` trims.
    private static func isLuaSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case " ", "\t", "\n", "\r", "\u{0B}", "\u{0C}": return true
        default: return false
        }
    }

    /// The stream's stand-in for a response body (§2.11), also what later plugins see as "the
    /// response". A missing finish reason or text is JSON null; `response` is present only when
    /// `logPayloads` (Kong writes `false` there otherwise, which no consumer can use).
    public func compositeResponse(logPayloads: Bool) -> JSONValue {
        var body: [String: JSONValue] = [
            "choices": [[
                "finish_reason": finishReason.map(JSONValue.string) ?? .null,
                "index": 0,
                "logprobs": .null,
                "message": ["role": "assistant", "content": text.map(JSONValue.string) ?? .null],
            ]],
            "object": "chat.completion",
            "usage": [
                "prompt_tokens": .number(Double(usage.promptTokens)),
                "completion_tokens": .number(Double(usage.completionTokens)),
                "total_tokens": .number(Double(usage.totalTokens)),
            ],
        ]
        if logPayloads, let text {
            body["response"] = .string(text)
        }
        return .object(body)
    }
}
