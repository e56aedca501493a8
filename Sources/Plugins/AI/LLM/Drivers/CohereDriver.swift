import Core

extension LLMDrivers {
    /// Cohere's chat (v1, `chat_history` + `message`) and generate APIs; responses in the v1 and
    /// v2 chat shapes.
    enum Cohere {
        // MARK: Requests (spec §2.6)

        static func request(_ body: [String: JSONValue], route: LLMRouteType, name: String?) throws(LLMConversionError) -> JSONValue {
            if LuaSemantics.truthy(body["prompt"]), LuaSemantics.truthy(body["messages"]) {
                throw LLMConversionError(
                    "cannot run a 'prompt' and a history of 'messages' at the same time - refer to schema",
                    isPlainTextBody: true)
            }
            var out = body
            out["model"] = name.map(JSONValue.string) ?? body["model"]
            if route == .chat, let messages = body["messages"]?.arrayValue {
                // Everything before the last message is history; the last one is the question.
                if messages.count > 1 {
                    out["chat_history"] = .array(messages.dropLast().map { message in
                        var turn: [String: JSONValue] = [:]
                        let role = message["role"]?.stringValue
                        turn["role"] = role == "assistant" || role == "CHATBOT" ? "CHATBOT" : "USER"
                        turn["message"] = message["content"]
                        return .object(turn)
                    })
                }
                out["message"] = messages.last?["content"]
                out["messages"] = nil
            }
            out["p"] = body["top_p"]
            out["k"] = body["top_k"]
            out["top_p"] = nil
            out["top_k"] = nil
            out["stream"] = LuaSemantics.or(body["stream"], false)
            return .object(out)
        }

        /// `llm/v1/embeddings` (`/v1/embed`): `{model, texts, input_type}`; `input_type` is the
        /// request's own when it sends one, else `search_document`. Token arrays and `dimensions`
        /// are refused.
        static func embeddingsRequest(_ body: [String: JSONValue], name: String?) throws(LLMConversionError) -> JSONValue {
            let texts = try Embeddings.texts(body)
            try Embeddings.refuseDimensions(body, "cohere embed")
            var out: [String: JSONValue] = ["texts": .array(texts.map(JSONValue.string)),
                                            "input_type": Embeddings.cohereInputType(body)]
            out["model"] = name.map(JSONValue.string) ?? body["model"]
            return .object(out)
        }

        // MARK: Responses (spec §2.7)

        static func response(_ body: [UInt8], route: LLMRouteType, name: String?) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode cohere response")
            }
            let model = name.map(JSONValue.string)
            if route == .chat {
                if LuaSemantics.truthy(document["prompt"]), let generations = document["generations"],
                   LuaSemantics.truthy(generations) {
                    return completions(generations, document: document, model: model)
                }
                if let text = document["text"], LuaSemantics.truthy(text) {
                    let usage = billedUsage(document["meta"]?["billed_units"])
                    return chat(text, id: document["generation_id"], usage: usage, model: model)
                }
                if let message = document["message"]?.objectValue {
                    return v2Chat(message, document: document, model: model)
                }
            } else {
                if let generations = document["generations"], LuaSemantics.truthy(generations) {
                    return completions(generations, document: document, model: model)
                }
                if let text = document["text"], LuaSemantics.truthy(text) {
                    let usage = tokenCountUsage(document["token_count"])
                    return chat(text, id: document["generation_id"], usage: usage, model: model)
                }
            }
            throw LLMConversionError("'text' or 'generations' missing from cohere response body")
        }

        /// `{embeddings:[[…]] or {float:[[…]]}, meta:{billed_units:{input_tokens}}}` → OpenAI list.
        static func embeddingsResponse(_ body: [UInt8], name: String?, encoding: LLMEmbeddingEncoding)
            throws(LLMConversionError) -> JSONValue
        {
            let document = try Embeddings.decode(body, "cohere")
            guard let vectors = Embeddings.cohereVectors(document["embeddings"]) else { throw Embeddings.missing("cohere") }
            let tokens = document["meta"]?["billed_units"]?["input_tokens"]?.intValue ?? 0
            return Embeddings.response(vectors, promptTokens: tokens, model: name, encoding: encoding)
        }

        static func completions(_ generations: JSONValue, document: JSONValue, model: JSONValue?) -> JSONValue {
            let choices = (generations.arrayValue ?? []).enumerated().map { index, generation -> JSONValue in
                var choice: [String: JSONValue] = ["index": .number(Double(index)), "finish_reason": "stop"]
                choice["text"] = generation["text"]
                return .object(choice)
            }
            var out: [String: JSONValue] = ["choices": KongJSON.list(choices), "object": "text_completion"]
            out["model"] = model
            out["id"] = document["id"]
            out["usage"] = billedUsage(document["meta"]?["billed_units"])
            return .object(out)
        }

        static func chat(_ text: JSONValue, id: JSONValue?, usage: JSONValue, model: JSONValue?) -> JSONValue {
            let choice: JSONValue = [
                "index": 0, "message": ["role": "assistant", "content": text], "finish_reason": "stop",
            ]
            var out: [String: JSONValue] = ["choices": [choice], "object": "chat.completion", "usage": usage]
            out["model"] = model
            out["id"] = id
            return .object(out)
        }

        /// Cohere's v2 chat answer: `message.tool_plan` stands in for the content when the model
        /// plans tool calls.
        static func v2Chat(_ message: [String: JSONValue], document: JSONValue, model: JSONValue?) -> JSONValue {
            var converted: [String: JSONValue] = ["role": "assistant"]
            converted["content"] = LuaSemantics.truthy(message["tool_plan"]) ? message["tool_plan"] : message["content"]
            converted["tool_calls"] = message["tool_calls"]
            var choice: [String: JSONValue] = ["index": 0, "message": .object(converted)]
            choice["finish_reason"] = document["finish_reason"]
            var out: [String: JSONValue] = ["choices": [.object(choice)], "object": "chat.completion"]
            out["model"] = model
            out["id"] = document["id"]
            out["usage"] = billedUsage(document["usage"]?["billed_units"])
            return .object(out)
        }

        /// `billed_units` in OpenAI terms; absent counts stay absent, so no units give `{}`.
        static func billedUsage(_ units: JSONValue?) -> JSONValue {
            var out: [String: JSONValue] = [:]
            out["prompt_tokens"] = units?["input_tokens"]
            out["completion_tokens"] = units?["output_tokens"]
            if let prompt = units?["input_tokens"]?.numberValue, let completion = units?["output_tokens"]?.numberValue {
                out["total_tokens"] = .number(prompt + completion)
            }
            return .object(out)
        }

        /// The generate API's `token_count` (completions route answered with a chat body).
        static func tokenCountUsage(_ counts: JSONValue?) -> JSONValue {
            var out: [String: JSONValue] = [:]
            out["prompt_tokens"] = counts?["prompt_tokens"]
            out["completion_tokens"] = counts?["response_tokens"]
            out["total_tokens"] = counts?["total_tokens"]
            return .object(out)
        }
    }
}
