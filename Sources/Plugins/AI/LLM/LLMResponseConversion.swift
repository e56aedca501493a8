import Core

/// The outcome of converting a non-stream upstream 200 body to the OpenAI shape (spec §2.7).
public struct LLMConvertedResponse: Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        /// OpenAI-compatible upstreams: the client gets the upstream bytes unchanged (§0.4).
        case upstream
        /// Every other provider: a newly encoded document.
        case converted(JSONValue)
    }

    public let body: Body
    /// The OpenAI-shaped document the client receives (the parsed upstream body when forwarded;
    /// `null` when a preserve-mode body is not JSON). Analytics read it. An OpenAI-format answer
    /// forwarded outside a transformer's call is skimmed: only `usage` and `model` are built,
    /// the other members hold their Lua truthiness (`JSONValue.parse(bytes:skimmingAllBut:)`).
    /// Payload logging reads the bytes sent, not this.
    public let document: JSONValue

    /// Forwarding the upstream body unchanged.
    init(forwarding document: JSONValue) {
        body = .upstream
        self.document = document
    }

    init(converted document: JSONValue) {
        body = .converted(document)
        self.document = document
    }

    /// `usage.prompt_tokens` of the document, when reported (each count may be missing alone:
    /// Gemini's safety answer has no completion count).
    public var promptTokens: Int? { document["usage"]?["prompt_tokens"]?.intValue }
    public var completionTokens: Int? { document["usage"]?["completion_tokens"]?.intValue }

    /// The reported usage, a missing count as 0; nil when neither count is reported (e.g. the
    /// Anthropic `"no usage data returned from upstream"` string, §10.2).
    public var usage: LLMUsage? {
        guard promptTokens != nil || completionTokens != nil else { return nil }
        return LLMUsage(promptTokens: promptTokens ?? 0, completionTokens: completionTokens ?? 0)
    }

    /// `model` of the final body: analytics' `response_model` (§2.11); nil → the request model.
    public var model: String? { document["model"]?.stringValue }

    /// The bytes to send the client: the upstream's own, or the converted document encoded as
    /// Kong's encoder writes it (`/` escaped).
    public func bytes(upstream: [UInt8]) -> [UInt8] {
        switch body {
        case .upstream: return upstream
        case .converted(let document): return Array(KongJSON.encode(document).utf8)
        }
    }
}

/// Provider response → OpenAI shape, for upstream status 200 (other statuses pass through
/// without calling this).
///
/// Errors: `LLMConversionError.message` is Kong's `<reason>`, `clientMessage` the 500 text
/// `transformation failed from type <provider>://<route>: <reason>` (or the bare
/// `no transformer available from format …` for a route the driver lacks).
public enum LLMResponseConversion {
    /// - Parameters:
    ///   - model: the configuration with `name` resolved; converted bodies carry that name
    ///     where Kong writes the configured one.
    ///   - transformerCall: true for the ai-request/response-transformer introspection call,
    ///     where a Gemini safety block is an error (§3.3-5) instead of an empty answer.
    ///   - embeddingEncoding: `llm/v1/embeddings` only: the client's `encoding_format`
    ///     (`LLMEmbeddingEncoding(request:)`), honoured by every converted answer. OpenAI-compatible
    ///     upstreams answer for themselves (their body is forwarded).
    public static func fromProvider(
        _ body: [UInt8], route: LLMRouteType, model: LLMModelConfig, transformerCall: Bool = false,
        embeddingEncoding: LLMEmbeddingEncoding = .float
    ) throws(LLMConversionError) -> LLMConvertedResponse {
        if route == .preserve {
            // Never converted; parsed (when JSON) only so analytics can read usage and model.
            return LLMConvertedResponse(forwarding: (try? JSONValue.parse(bytes: body)) ?? .null)
        }
        guard let dialect = LLMDialect(model) else {
            throw noTransformer(model.provider, LLMDialect.formatTarget(route, model))
        }
        guard dialect.supports(route) else {
            if route == .embeddings, let text = LLMEmbeddingsRequest.unsupportedProviderMessage(model) {
                throw LLMConversionError(text)
            }
            throw noTransformer(model.provider, route.rawValue)
        }

        do {
            if route == .embeddings { return try embeddings(body, dialect: dialect, model: model, encoding: embeddingEncoding) }
            return try convert(body, dialect: dialect, route: route, model: model, transformerCall: transformerCall)
        } catch {
            let text = clientMessage(reason: error.message, provider: model.provider, route: route)
            throw LLMConversionError(error.message, clientMessage: text)
        }
    }

    /// The failure of a 200 answer the gateway cannot read at all (a body marked gzip that does
    /// not inflate): what the provider's driver says of a body that is not JSON, in the same
    /// `transformation failed from type …` envelope (§2.7).
    public static func undecodable(route: LLMRouteType, model: LLMModelConfig) -> LLMConversionError {
        do {
            _ = try fromProvider([], route: route, model: model)
        } catch {
            return error
        }
        // Unreachable for a route that converts (no driver reads an empty body as an answer).
        return LLMConversionError("failed to decode the upstream response")
    }

    private static func convert(
        _ body: [UInt8], dialect: LLMDialect, route: LLMRouteType, model: LLMModelConfig, transformerCall: Bool
    ) throws(LLMConversionError) -> LLMConvertedResponse {
        let document: JSONValue
        switch dialect {
        case .openAI: return try LLMDrivers.OpenAI.response(body, route: route, skimming: !transformerCall)
        case .ollama: document = try LLMDrivers.Ollama.response(body, route: route, model: model)
        case .llama2Raw: document = try LLMDrivers.Llama2Raw.response(body, route: route)
        case .anthropic:
            document = route == .chat
                ? try LLMDrivers.Anthropic.chatResponse(body)
                : try LLMDrivers.Anthropic.completionsResponse(body)
        case .cohere: document = try LLMDrivers.Cohere.response(body, route: route, name: model.name)
        case .gemini: document = try LLMDrivers.Gemini.chatResponse(body, name: model.name, transformerCall: transformerCall)
        case .bedrock: document = try LLMDrivers.Bedrock.chatResponse(body, name: model.name)
        case .huggingFace: document = try LLMDrivers.HuggingFace.response(body, route: route, name: model.name)
        }
        return LLMConvertedResponse(converted: document)
    }

    /// `llm/v1/embeddings` answers: forwarded from OpenAI-compatible upstreams, converted to
    /// `{object:"list", data:[{object:"embedding", index, embedding}], model, usage}` otherwise.
    private static func embeddings(
        _ body: [UInt8], dialect: LLMDialect, model: LLMModelConfig, encoding: LLMEmbeddingEncoding
    ) throws(LLMConversionError) -> LLMConvertedResponse {
        let document: JSONValue
        switch dialect {
        case .openAI: return try LLMDrivers.OpenAI.response(body, route: .embeddings, skimming: true)
        case .ollama: document = try LLMDrivers.Ollama.embeddingsResponse(body, name: model.name, encoding: encoding)
        case .cohere: document = try LLMDrivers.Cohere.embeddingsResponse(body, name: model.name, encoding: encoding)
        case .gemini: document = try LLMDrivers.Gemini.embeddingsResponse(body, model: model, encoding: encoding)
        case .bedrock: document = try LLMDrivers.Bedrock.embeddingsResponse(body, name: model.name, encoding: encoding)
        case .huggingFace: document = try LLMDrivers.HuggingFace.embeddingsResponse(body, name: model.name, encoding: encoding)
        case .anthropic, .llama2Raw:
            // Refused by `supports` before this point.
            throw LLMConversionError(LLMEmbeddingsRequest.unsupportedProviderMessage(model) ?? "no embeddings API")
        }
        return LLMConvertedResponse(converted: document)
    }

    /// Kong's answer for a route (or mistral/llama2 format) the driver has no transformer for.
    private static func noTransformer(_ provider: LLMProvider, _ target: String) -> LLMConversionError {
        LLMConversionError("no transformer available from format \(provider.rawValue)://\(target)")
    }

    /// The 500 text for a failed conversion (§2.7).
    public static func clientMessage(reason: String, provider: LLMProvider, route: LLMRouteType) -> String {
        "transformation failed from type \(provider.rawValue)://\(route.rawValue): \(reason)"
    }
}
