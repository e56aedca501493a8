import Core

extension LLMDrivers {
    /// Hugging Face Inference API: OpenAI-style chat endpoint, text-generation for completions.
    enum HuggingFace {
        // MARK: Requests (spec §2.6)

        static func request(_ body: [String: JSONValue], route: LLMRouteType, model: LLMModelConfig) -> JSONValue {
            var out = body
            var parameters = body["parameters"]?.objectValue ?? [:]
            for key in ["top_k", "top_p", "temperature"] where parameters[key] == nil {
                parameters[key] = body[key]
            }
            // Kong tests `parameters.max_tokens` (not the key it then sets); kept as specified.
            if parameters["max_tokens"] == nil {
                // Conversational models read `max_length`, text generation `max_new_tokens`.
                parameters[LuaSemantics.truthy(body["messages"]) ? "max_length" : "max_new_tokens"] = body["max_tokens"]
            }
            for key in ["top_k", "top_p", "temperature", "max_tokens"] { out[key] = nil }

            out["options"] = [
                "use_cache": .bool(model.options.huggingfaceUseCache ?? false),
                "wait_for_model": .bool(model.options.huggingfaceWaitForModel ?? false),
            ]
            if route == .completions {
                out["inputs"] = body["prompt"]
                out["prompt"] = nil
            }
            out["parameters"] = .object(parameters)
            out["model"] = model.name.map(JSONValue.string) ?? body["model"]
            return .object(out)
        }

        /// `llm/v1/embeddings` (feature-extraction pipeline): `{inputs:[…]}` (always a list), with
        /// `options:{use_cache, wait_for_model}` only when either is configured. Token arrays and
        /// `dimensions` are refused.
        static func embeddingsRequest(_ body: [String: JSONValue], model: LLMModelConfig) throws(LLMConversionError) -> JSONValue {
            let texts = try Embeddings.texts(body)
            try Embeddings.refuseDimensions(body, "huggingface feature-extraction")
            var out: [String: JSONValue] = ["inputs": .array(texts.map(JSONValue.string))]
            var options: [String: JSONValue] = [:]
            options["use_cache"] = model.options.huggingfaceUseCache.map(JSONValue.bool)
            options["wait_for_model"] = model.options.huggingfaceWaitForModel.map(JSONValue.bool)
            if !options.isEmpty { out["options"] = .object(options) }
            return .object(out)
        }

        // MARK: Responses (spec §2.7)

        static func response(_ body: [UInt8], route: LLMRouteType, name: String?) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("Failed to decode response")
            }
            let problem = LuaSemantics.truthy(document["error"]) ? document["error"] : document["message"]
            if let problem, LuaSemantics.truthy(problem) {
                throw LLMConversionError("API error: \(LuaSemantics.text(problem) ?? KongJSON.encode(problem))")
            }

            let choices: [JSONValue]
            if let generated = document.arrayValue?.first?["generated_text"] {
                // Text generation answers with a list of generations; Kong takes the first.
                choices = [["message": ["content": generated], "index": 0, "finish_reason": "complete"]]
            } else if let upstream = document["choices"]?.arrayValue {
                choices = upstream.enumerated().map { index, choice in
                    var message: [String: JSONValue] = [:]
                    message["content"] = choice["message"]?["content"]
                    return ["message": .object(message), "index": .number(Double(index)), "finish_reason": "complete"]
                }
            } else {
                throw LLMConversionError("Invalid response format")
            }

            var out: [String: JSONValue] = ["choices": KongJSON.list(choices)]
            out["model"] = name.map(JSONValue.string)
            out["object"] = LuaSemantics.truthy(document["object"]) ? document["object"] : .string(route.rawValue)
            out["usage"] = LuaSemantics.truthy(document["usage"]) ? document["usage"] : KongJSON.emptyTable
            return .object(out)
        }

        /// `llm/v1/embeddings`: a list of vectors (or one vector) → OpenAI list, usage 0 (the API
        /// reports none). Token-level output (a list of vectors per input, from a model without
        /// pooling) is refused: it is not one embedding per input.
        static func embeddingsResponse(_ body: [UInt8], name: String?, encoding: LLMEmbeddingEncoding)
            throws(LLMConversionError) -> JSONValue
        {
            let document = try Embeddings.decode(body, "huggingface")
            if let problem = document["error"], LuaSemantics.truthy(problem) {
                throw LLMConversionError("API error: \(LuaSemantics.text(problem) ?? KongJSON.encode(problem))")
            }
            let vectors: [[Double]]
            if let single = Embeddings.vector(document), !single.isEmpty {
                vectors = [single]
            } else if let list = Embeddings.vectors(document) {
                vectors = list
            } else if document.arrayValue?.first?.arrayValue?.first?.arrayValue != nil {
                throw LLMConversionError(
                    "huggingface returned token-level embeddings (a vector per token); use a sentence-embedding model")
            } else {
                throw Embeddings.missing("huggingface")
            }
            return Embeddings.response(vectors, promptTokens: 0, model: name, encoding: encoding)
        }
    }
}
