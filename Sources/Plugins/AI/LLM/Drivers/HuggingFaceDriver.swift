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
    }
}
