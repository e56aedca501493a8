import Core

/// What one upstream event becomes toward the client.
enum StreamPayload: Equatable, Sendable {
    /// A newly built OpenAI `chat.completion.chunk` / `text_completion` object.
    case json(JSONValue)
    /// An OpenAI-compatible provider's `data`, forwarded byte for byte (spec §0.4).
    case verbatim(String)
    /// The `[DONE]` terminator.
    case done
}

/// Token counts carried by one upstream event (spec §2.8 "token meta").
enum StreamUsageReport: Equatable, Sendable {
    /// Counts to add to what earlier events reported (most providers report deltas or split
    /// prompt/completion across events).
    case add(LLMUsage)
    /// Cumulative counts that supersede earlier ones (Gemini `usageMetadata`, OpenAI `usage`).
    case replace(LLMUsage)
}

/// The per-provider half of spec §2.8's "Event → OpenAI chunk" table: turns one upstream event
/// into client payloads and usage. Holds the little state a provider spreads across events (the
/// Anthropic message id, the Cohere generation id). Events it cannot decode produce nothing, as
/// Kong's drivers return nothing for them.
struct StreamProviderDialect: Sendable {
    /// The provider's wire format; OpenAI-compatible in `preserve` (nothing to convert).
    let kind: LLMDialect
    /// Completions shapes (`text_completion`, `choices[].text`) instead of chat ones.
    let completions: Bool
    /// The resolved model name, absent from payloads when nil (as Kong omits a nil field).
    let model: JSONValue?
    private var streamID: JSONValue?

    init(route: LLMRouteType, model: LLMModelConfig) {
        completions = route == .completions
        self.model = model.name.map(JSONValue.string)
        // A mistral/llama2 format the schema would refuse reads as OpenAI-compatible.
        kind = route == .preserve ? .openAI : LLMDialect(model) ?? .openAI
    }

    mutating func convert(_ event: StreamEvent, into out: inout [StreamPayload]) -> StreamUsageReport? {
        // Empty `data` is a keep-alive for every provider.
        guard !event.data.isEmpty else { return nil }
        if kind == .openAI {
            out.append(event.data == StreamEvent.doneMarker ? .done : .verbatim(event.data))
            return nil
        }
        if kind == .gemini, event.data == StreamEvent.doneMarker {
            out.append(.done)
            return nil
        }
        if kind == .bedrock, let message = event.awsMessage {
            // The AWS message's parts, not the envelope in `data`: one parse of the payload.
            guard let type = message.eventType, let body = try? JSONValue.parse(message.payload) else { return nil }
            return bedrock(type, body, &out)
        }
        // Hugging Face's own `data: [DONE]` fails to decode here and yields nothing (Kong, §2.8).
        guard let body = try? JSONValue.parse(event.data) else { return nil }
        switch kind {
        case .openAI: return nil
        case .anthropic: return anthropic(event.event ?? body["type"]?.stringValue, body, &out)
        case .cohere: return cohere(body, &out)
        case .ollama: return ollama(body, &out)
        case .gemini: return gemini(body, &out)
        case .bedrock:
            // An envelope framed otherwise (SSE, NDJSON: a proxy re-framing the stream), read
            // from `data` as Kong's driver reads every event.
            guard let type = body["headers"]?[":event-type"]?.stringValue,
                  let payload = body["body"]?.stringValue.flatMap({ try? JSONValue.parse($0) }) else { return nil }
            return bedrock(type, payload, &out)
        case .huggingFace:
            huggingface(body, &out)
            return nil
        case .llama2Raw:
            llama2Raw(body, &out)
            return nil
        }
    }

    // MARK: - Providers

    /// Anthropic Messages API events, selected by the SSE `event` name (or the body's `type` when
    /// an upstream omits the `event:` line).
    private mutating func anthropic(_ type: String?, _ body: JSONValue, _ out: inout [StreamPayload]) -> StreamUsageReport? {
        if completions { return anthropicLegacyCompletion(body, &out) }
        switch type {
        case "message_start":
            guard let message = body["message"], message.objectValue != nil else { return nil }
            streamID = message["id"]
            out.append(.json(object([
                ("choices", [object([
                    ("delta", object([("content", ""), ("role", message["role"])])),
                    ("index", 0),
                    ("logprobs", .null),
                ])]),
                ("id", streamID),
                ("model", model),
                ("object", "chat.completion.chunk"),
                ("system_fingerprint", .null),
            ])))
            return .add(LLMUsage(promptTokens: message["usage"]?["input_tokens"]?.intValue ?? 0,
                                 completionTokens: message["usage"]?["output_tokens"]?.intValue ?? 0))
        case "content_block_start", "content_block_delta":
            out.append(.json(object([
                ("choices", [object([
                    ("delta", ["content": .string(body["delta"]?["text"]?.stringValue ?? "")]),
                    ("index", 0),
                    ("finish_reason", .null),
                    ("logprobs", .null),
                ])]),
                ("id", streamID),
                ("model", model),
                ("object", "chat.completion.chunk"),
            ])))
            return nil
        case "message_delta":
            return .add(LLMUsage(completionTokens: body["usage"]?["output_tokens"]?.intValue ?? 0))
        case "message_stop":
            out.append(.done)
            return nil
        default:  // ping, content_block_stop, error, unknown
            return nil
        }
    }

    /// Anthropic's legacy Text Completions stream (`completion` events). Kong has no stream
    /// transformer for it and sends the client nothing; mapping it the obvious way is better
    /// than an empty stream.
    private func anthropicLegacyCompletion(_ body: JSONValue, _ out: inout [StreamPayload]) -> StreamUsageReport? {
        guard let text = body["completion"]?.stringValue else { return nil }
        let stop = body["stop_reason"]?.stringValue
        out.append(.json(object([
            ("choices", [object([
                ("text", .string(text)),
                ("index", 0),
                ("finish_reason", stop.map(JSONValue.string) ?? .null),
                ("logprobs", .null),
            ])]),
            ("model", model),
            ("object", "text_completion"),
        ])))
        if stop != nil { out.append(.done) }
        return nil
    }

    private mutating func cohere(_ body: JSONValue, _ out: inout [StreamPayload]) -> StreamUsageReport? {
        switch body["event_type"]?.stringValue {
        case "stream-start":
            streamID = body["generation_id"]
            out.append(.json(object([
                ("choices", [object([
                    ("delta", ["content": "", "role": "assistant"]),
                    ("index", 0),
                ])]),
                ("id", streamID),
                ("model", model),
                ("object", "chat.completion.chunk"),
            ])))
            return nil
        case "text-generation":
            let text = JSONValue.string(body["text"]?.stringValue ?? "")
            out.append(.json(object([
                ("choices", [object([
                    completions ? ("text", text) : ("delta", ["content": text]),
                    ("index", 0),
                    ("finish_reason", .null),
                    ("logprobs", .null),
                ])]),
                ("id", streamID),
                ("model", model),
                ("object", completions ? "text_completion" : "chat.completion.chunk"),
            ])))
            return nil
        case "stream-end":
            out.append(.done)
            let response = body["response"]
            let billed = response?["meta"]?["billed_units"]
            let counted = response?["token_count"]
            return .add(LLMUsage(
                promptTokens: billed?["input_tokens"]?.intValue ?? counted?["prompt_tokens"]?.intValue ?? 0,
                completionTokens: billed?["output_tokens"]?.intValue ?? counted?["response_tokens"]?.intValue ?? 0))
        default:
            return nil
        }
    }

    /// Ollama NDJSON lines; the model named in each line is kept (Kong does not substitute it).
    private func ollama(_ body: JSONValue, _ out: inout [StreamPayload]) -> StreamUsageReport? {
        if body["done"]?.boolValue == true {
            out.append(.done)
            return .add(LLMUsage(promptTokens: body["prompt_eval_count"]?.intValue ?? 0,
                                 completionTokens: body["eval_count"]?.intValue ?? 0))
        }
        let choice: JSONValue = completions
            ? ["text": .string(body["response"]?.stringValue ?? ""), "index": 0]
            : ["delta": ["content": .string(body["message"]?["content"]?.stringValue ?? "")], "index": 0]
        out.append(.json(object([
            ("choices", [choice]),
            ("model", body["model"]),
            ("object", completions ? "text_completion" : "chat.completion.chunk"),
        ])))
        return nil
    }

    /// One element of Gemini's streamed array (or one SSE `data` with `alt=sse`). Its
    /// `finishReason` stays raw upper-case (§10.5); `usageMetadata` is cumulative.
    private func gemini(_ body: JSONValue, _ out: inout [StreamPayload]) -> StreamUsageReport? {
        let candidate = body["candidates"]?.arrayValue?.first
        let parts = candidate?["content"]?["parts"]?.arrayValue ?? []
        let finishReason = candidate?["finishReason"]
        if let text = parts.first?["text"]?.stringValue {
            out.append(.json(object([
                ("model", model),
                ("choices", [object([
                    ("delta", ["content": .string(text), "role": "assistant"]),
                    ("index", 0),
                    ("finish_reason", finishReason),
                ])]),
            ])))
        } else if parts.first?["functionCall"] != nil {
            let calls: [JSONValue] = parts.compactMap { part in
                guard let call = part["functionCall"] else { return nil }
                return object([
                    ("function", object([
                        ("name", call["name"]),
                        ("arguments", .string((call["args"] ?? [:]).serialized(.kong))),
                    ])),
                    ("type", "function"),
                ])
            }
            out.append(.json(object([
                ("model", model),
                ("choices", [object([
                    ("delta", ["tool_calls": .array(calls)]),
                    ("index", 0),
                    ("finish_reason", finishReason),
                ])]),
            ])))
        }
        guard let usage = body["usageMetadata"] else { return nil }
        return .replace(LLMUsage(promptTokens: usage["promptTokenCount"]?.intValue ?? 0,
                                 completionTokens: usage["candidatesTokenCount"]?.intValue ?? 0))
    }

    /// One AWS event-stream message of Bedrock `converse-stream`: its `:event-type` and payload.
    private func bedrock(_ type: String, _ body: JSONValue, _ out: inout [StreamPayload]) -> StreamUsageReport? {
        func chunk(_ delta: JSONValue) -> StreamPayload {
            .json(object([
                ("choices", [object([("delta", delta), ("index", 0), ("logprobs", .null)])]),
                ("model", model),
                ("object", "chat.completion.chunk"),
                ("system_fingerprint", .null),
            ]))
        }
        let blockIndex = body["contentBlockIndex"]
        switch type {
        case "messageStart":
            out.append(chunk(object([("content", ""), ("role", body["role"])])))
        case "contentBlockStart":
            guard let tool = body["start"]?["toolUse"] else { return nil }
            out.append(chunk(["tool_calls": [object([
                ("index", blockIndex),
                ("id", tool["toolUseId"]),
                ("function", object([("name", tool["name"]), ("arguments", "")])),
            ])]]))
        case "contentBlockDelta":
            if let tool = body["delta"]?["toolUse"] {
                out.append(chunk(["tool_calls": [object([
                    ("index", blockIndex),
                    ("function", object([("arguments", tool["input"])])),
                ])]]))
            } else {
                out.append(chunk(["content": .string(body["delta"]?["text"]?.stringValue ?? "")]))
            }
        case "messageStop":
            out.append(.json(object([
                ("choices", [object([
                    ("delta", [:]),
                    ("index", 0),
                    ("finish_reason", .string(LLMDrivers.Bedrock.finishReason(body["stopReason"]?.stringValue))),
                    ("logprobs", .null),
                ])]),
                ("model", model),
                ("object", "chat.completion.chunk"),
            ])))
        case "metadata":
            out.append(.done)
            return .add(LLMUsage(promptTokens: body["usage"]?["inputTokens"]?.intValue ?? 0,
                                 completionTokens: body["usage"]?["outputTokens"]?.intValue ?? 0))
        default:  // contentBlockStop, exceptions
            break
        }
        return nil
    }

    private func huggingface(_ body: JSONValue, _ out: inout [StreamPayload]) {
        if completions {
            out.append(.json(object([
                ("choices", [["text": .string(body["token"]?["text"]?.stringValue ?? ""), "index": 0]]),
                ("model", model),
                ("object", "text_completion"),
            ])))
        } else {
            let content = body["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? ""
            out.append(.json(object([
                ("choices", [["delta": ["content": .string(content), "role": "assistant"], "index": 0]]),
                ("model", body["model"] ?? model),
                ("object", "chat.completion.chunk"),
            ])))
        }
    }

    /// llama2 `raw` streams are text-generation-inference events (`{token:{text, special},
    /// generated_text}`). Kong has no stream transformer for them and sends nothing; here each
    /// non-special token becomes a chunk and the final event (non-null `generated_text`) ends the
    /// stream with `[DONE]`.
    private func llama2Raw(_ body: JSONValue, _ out: inout [StreamPayload]) {
        if let token = body["token"], token["special"]?.boolValue != true {
            let text = JSONValue.string(token["text"]?.stringValue ?? "")
            out.append(.json(object([
                ("choices", [completions ? ["text": text, "index": 0] : ["delta": ["content": text], "index": 0]]),
                ("model", model),
                ("object", completions ? "text_completion" : "chat.completion.chunk"),
            ])))
        }
        if body["generated_text"]?.stringValue != nil { out.append(.done) }
    }

    // MARK: - Building

    /// An object from members in writing order; nil values are left out (a Lua nil field).
    private func object(_ members: [(String, JSONValue?)]) -> JSONValue {
        var result: [String: JSONValue] = [:]
        result.reserveCapacity(members.count)
        for (key, value) in members {
            if let value { result[key] = value }
        }
        return .object(result)
    }
}
