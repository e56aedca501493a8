import Core

/// ai-prompt-decorator's configuration, typed once per snapshot.
struct AIPromptDecoratorConfig: Sendable {
    let decoration: PromptDecoration
    let maxRequestBodySize: Int

    init(_ config: JSONValue) {
        func messages(_ name: String) -> [PromptDecoration.Message] {
            (config["prompts"]?[name]?.arrayValue ?? []).compactMap { entry in
                guard let content = entry["content"]?.stringValue else { return nil }
                return PromptDecoration.Message(role: entry["role"]?.stringValue ?? "system", content: content)
            }
        }
        decoration = PromptDecoration(prepend: messages("prepend"), append: messages("append"),
                                      format: LLMNativeFormat(llmFormat: config["llm_format"]?.stringValue))
        maxRequestBodySize = config["max_request_body_size"]?.intValue ?? 8192
    }
}

/// The configured messages, already in the client's format, and how to splice them into a body.
///
/// OpenAI: `{role, content}` entries around `messages`. The native formats (beyond Kong 3.10,
/// docs/decisions.md) keep their own shape so ai-proxy can still forward the body as is:
/// * Bedrock Converse: `{role, content: [{text}]}` around `messages`; `system` entries go to the
///   top-level `system` list (`[{text}]`), prepended ones first, appended ones last.
/// * Gemini: `{role: user|model, parts: [{text}]}` around `contents`; `system` entries go to
///   `systemInstruction.parts` (or `system_instruction`, when the client wrote that spelling).
struct PromptDecoration: Sendable {
    struct Message: Sendable, Equatable {
        let role: String
        let content: String
    }

    let format: LLMNativeFormat?
    /// Entries for the message list.
    private let leading: [JSONValue]
    private let trailing: [JSONValue]
    /// Native formats only: text parts for the system instruction.
    private let leadingSystem: [JSONValue]
    private let trailingSystem: [JSONValue]

    init(prepend: [Message], append: [Message], format: LLMNativeFormat?) {
        self.format = format
        func entries(_ messages: [Message]) -> [JSONValue] {
            messages.filter { format == nil || $0.role != "system" }.map { Self.entry($0, format: format) }
        }
        func systemParts(_ messages: [Message]) -> [JSONValue] {
            format == nil ? [] : messages.filter { $0.role == "system" }.map { ["text": .string($0.content)] }
        }
        leading = entries(prepend)
        trailing = entries(append)
        leadingSystem = systemParts(prepend)
        trailingSystem = systemParts(append)
    }

    /// The key of the conversation list in the client's format.
    var listKey: String { format == .gemini ? "contents" : "messages" }

    /// Adds the messages to `body`; false (and `body` unchanged) when it holds no non-empty
    /// conversation list, i.e. is no chat request.
    func apply(to body: inout [String: JSONValue]) -> Bool {
        guard case .array(let existing)? = body[listKey], !existing.isEmpty else { return false }
        var messages: [JSONValue] = []
        messages.reserveCapacity(leading.count + existing.count + trailing.count)
        messages += leading
        messages += existing
        messages += trailing
        body[listKey] = .array(messages)
        if !leadingSystem.isEmpty || !trailingSystem.isEmpty { addSystemParts(to: &body) }
        return true
    }

    private func addSystemParts(to body: inout [String: JSONValue]) {
        switch format {
        case .bedrock?:
            body["system"] = .array(leadingSystem + Self.textParts(body["system"]) + trailingSystem)
        case .gemini?:
            let key = body["system_instruction"] != nil ? "system_instruction" : "systemInstruction"
            var instruction = body[key]?.objectValue ?? [:]
            let existing = instruction.isEmpty ? Self.textParts(body[key]) : Self.textParts(instruction["parts"])
            instruction["parts"] = .array(leadingSystem + existing + trailingSystem)
            body[key] = .object(instruction)
        case nil:
            break
        }
    }

    private static func entry(_ message: Message, format: LLMNativeFormat?) -> JSONValue {
        let text: JSONValue = ["text": .string(message.content)]
        switch format {
        case nil:
            return ["role": .string(message.role), "content": .string(message.content)]
        case .bedrock?:
            return ["role": .string(message.role), "content": [text]]
        case .gemini?:
            return ["role": .string(message.role == "assistant" ? "model" : "user"), "parts": [text]]
        }
    }

    /// A native system list as its parts: a list as is, a single part or a bare string as one.
    private static func textParts(_ value: JSONValue?) -> [JSONValue] {
        switch value {
        case .array(let parts)?: return parts
        case .object?: return [value!]
        case .string(let text)?: return [["text": .string(text)]]
        default: return []
        }
    }
}

/// ai-prompt-decorator (spec §7): adds the configured messages around the conversation of the
/// body in use and hands the result on (through `AIRequestBody`) to the guard and ai-proxy.
struct AIPromptDecoratorHandler: WithoutRewritePhase {
    let config: AIPromptDecoratorConfig

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        // A body that is no JSON object counts as no chat request, as Kong's empty table does.
        guard var body = await AIRequestBody.object(context, maxRequestBodySize: config.maxRequestBodySize),
              config.decoration.apply(to: &body) else {
            return .aiError(400, "this LLM route only supports llm/chat type requests")
        }
        AIRequestBody.replace(context, with: body)
        return .proceed
    }
}
