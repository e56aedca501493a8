import Core

/// OpenAI-shaped client request → the configured provider's native request (spec §2.6).
///
/// Errors: `LLMConversionError.message` is the driver's detail, `clientMessage` the exact text
/// Kong answers with (400): `error transforming to gemini://llm/v1/chat: <detail>`,
/// `error transforming to anthropic://llm/v1/chat` (detail dropped), `error transforming to
/// llama2://llm/v1/chat/raw`, or the bare `no transformer for …` text. The "both `prompt` and
/// `messages`" refusals carry `isPlainTextBody`. `llm/v1/embeddings` (see `embeddings(_:…)`):
/// the bare `LLMEmbeddingsRequest` validation and unsupported-provider texts, or
/// `error transforming to <provider>://llm/v1/embeddings: <detail>`.
public enum LLMRequestConversion {
    /// - Parameters:
    ///   - request: the parsed client body (a JSON object; validated by the caller, §2.3-4).
    ///   - model: the configuration with `name` already resolved for this request (§2.4).
    /// - Returns: the body to send upstream (always `application/json`). `preserve` returns the
    ///   request untouched: ai-proxy never converts in that mode (§2.3-4.10).
    public static func toProvider(_ request: JSONValue, route: LLMRouteType, model: LLMModelConfig)
        throws(LLMConversionError) -> JSONValue
    {
        guard route != .preserve else { return request }
        guard var dialect = LLMDialect(model) else {
            let target = "\(model.provider.rawValue)://\(LLMDialect.formatTarget(route, model))"
            if model.provider == .mistral { throw LLMConversionError("no transformer available to format \(target)") }
            // Kong calls a missing llama2 transformer, which fails like any other conversion.
            throw LLMConversionError("unknown llama2_format", clientMessage: "error transforming to \(target)")
        }
        guard dialect.supports(route) else {
            if route == .embeddings, let text = LLMEmbeddingsRequest.unsupportedProviderMessage(model) {
                throw LLMConversionError(text)
            }
            throw LLMConversionError("no transformer for \(model.provider.rawValue)://\(route.rawValue)")
        }
        if route == .embeddings { return try embeddings(LLMDrivers.fields(request), dialect: dialect, model: model) }
        let body = mergingDefaults(LLMDrivers.fields(request), options: model.options)
        // Cohere's API takes OpenAI-style tool definitions, so Kong hands tool requests to the
        // OpenAI conversion unchanged.
        if dialect == .cohere, body["tools"] != nil { dialect = .openAI }

        do {
            return try convert(body, dialect: dialect, route: route, model: model)
        } catch where error.isPlainTextBody {
            throw error
        } catch {
            let text = clientMessage(detail: error.message, route: route, model: model)
            throw LLMConversionError(error.message, clientMessage: text)
        }
    }

    private static func convert(
        _ body: [String: JSONValue], dialect: LLMDialect, route: LLMRouteType, model: LLMModelConfig
    ) throws(LLMConversionError) -> JSONValue {
        switch dialect {
        case .openAI: return LLMDrivers.OpenAI.request(body, name: model.name)
        case .ollama: return try LLMDrivers.Ollama.request(body, model: model)
        case .llama2Raw: return try LLMDrivers.Llama2Raw.request(body)
        case .anthropic:
            return route == .chat
                ? try LLMDrivers.Anthropic.chatRequest(body, name: model.name)
                : try LLMDrivers.Anthropic.completionsRequest(body, name: model.name)
        case .cohere: return try LLMDrivers.Cohere.request(body, route: route, name: model.name)
        case .gemini: return try LLMDrivers.Gemini.chatRequest(body, name: model.name ?? "")
        case .bedrock: return try LLMDrivers.Bedrock.chatRequest(body, model: model)
        case .huggingFace: return LLMDrivers.HuggingFace.request(body, route: route, model: model)
        }
    }

    /// `llm/v1/embeddings`: no defaults merge (`temperature`, `max_tokens`… are not embeddings
    /// parameters; OpenAI refuses unknown ones). An invalid body fails with the bare
    /// `LLMEmbeddingsRequest` text; a driver failure with
    /// `error transforming to <provider>://llm/v1/embeddings: <detail>` (the detail is kept for
    /// every provider: it says what to change).
    private static func embeddings(
        _ body: [String: JSONValue], dialect: LLMDialect, model: LLMModelConfig
    ) throws(LLMConversionError) -> JSONValue {
        if let problem = LLMEmbeddingsRequest.validationError(body) { throw LLMConversionError(problem) }
        do throws(LLMConversionError) {
            switch dialect {
            case .openAI: return LLMDrivers.OpenAI.embeddingsRequest(body, name: model.name)
            case .ollama: return try LLMDrivers.Ollama.embeddingsRequest(body, name: model.name)
            case .cohere: return try LLMDrivers.Cohere.embeddingsRequest(body, name: model.name)
            case .gemini: return try LLMDrivers.Gemini.embeddingsRequest(body, model: model)
            case .bedrock: return try LLMDrivers.Bedrock.embeddingsRequest(body, name: model.name ?? "")
            case .huggingFace: return try LLMDrivers.HuggingFace.embeddingsRequest(body, model: model)
            case .anthropic, .llama2Raw:
                // Refused by `supports` before this point.
                throw LLMConversionError(LLMEmbeddingsRequest.unsupportedProviderMessage(model) ?? "no embeddings API")
            }
        } catch {
            let target = "\(model.provider.rawValue)://\(LLMRouteType.embeddings.rawValue)"
            throw LLMConversionError(error.message, clientMessage: "error transforming to \(target): \(error.message)")
        }
    }

    /// Spec §2.6 "defaults merge": each of `temperature`, `max_tokens`, `top_p`, `top_k` set in
    /// `model.options` replaces the request's value.
    public static func mergingDefaults(_ request: [String: JSONValue], options: LLMModelOptions) -> [String: JSONValue] {
        var body = request
        if let value = options.temperature { body["temperature"] = .number(value) }
        if let value = options.maxTokens { body["max_tokens"] = .number(Double(value)) }
        if let value = options.topP { body["top_p"] = .number(value) }
        if let value = options.topK { body["top_k"] = .number(Double(value)) }
        return body
    }

    /// Bedrock models that reject a system prompt (Kong's Lua patterns `amazon.titan.-.*`, …,
    /// matched anywhere in the name). The transformers use it too (§3.3-3).
    public static func bedrockRefusesSystemPrompts(model name: String) -> Bool {
        LLMDrivers.Bedrock.systemlessModelPatterns.contains { $0.matches(name) }
    }

    /// The client text for a failed transformer (§2.6 last paragraph): gemini and bedrock keep
    /// the detail, llama2's raw/ollama formats name the format, the others drop the detail.
    static func clientMessage(detail: String, route: LLMRouteType, model: LLMModelConfig) -> String {
        let target = "\(model.provider.rawValue)://\(route.rawValue)"
        switch model.provider {
        case .gemini, .bedrock: return "error transforming to \(target): \(detail)"
        case .llama2: return "error transforming to \(target)/\(model.options.llama2Format ?? "")"
        default: return "error transforming to \(target)"
        }
    }
}
