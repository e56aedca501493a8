import Core

extension LLMDrivers {
    /// Ollama's `/api/chat` and `/api/generate`, used by mistral and llama2 in `ollama` format.
    enum Ollama {
        static let conflictingPrompts = LLMConversionError(
            "cannot run raw 'prompt' and chat history 'messages' requests at the same time - refer to schema",
            isPlainTextBody: true)

        /// Spec §2.6. `options` is always written: Kong writes it whenever `model.options`
        /// exists, and the schema always fills that record (azure_api_version has a default).
        static func request(_ body: [String: JSONValue], model: LLMModelConfig) throws(LLMConversionError) -> JSONValue {
            var out: [String: JSONValue] = [:]
            if LuaSemantics.truthy(body["prompt"]), LuaSemantics.truthy(body["messages"]) {
                throw conflictingPrompts
            } else if LuaSemantics.truthy(body["messages"]) {
                out["messages"] = body["messages"]
            } else if LuaSemantics.truthy(body["prompt"]) {
                out["prompt"] = body["prompt"]
            }
            out["model"] = model.name.map(JSONValue.string) ?? body["model"]
            out["stream"] = LuaSemantics.or(body["stream"], false)
            out["tools"] = body["tools"]
            out["tool_choice"] = body["tool_choice"]

            var options: [String: JSONValue] = [:]
            options["num_predict"] = body["max_tokens"]
            options["temperature"] = body["temperature"]
            options["top_p"] = body["top_p"]
            options["top_k"] = body["top_k"]
            out["options"] = .object(options)
            return .object(out)
        }

        /// Spec §2.7. Ollama reports no stop reason; hitting exactly `max_tokens` means "length".
        static func response(_ body: [UInt8], route: LLMRouteType, model: LLMModelConfig) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body), case .object(let fields) = document else {
                throw LLMConversionError("failed to decode ollama response")
            }
            let completion = fields["eval_count"]?.numberValue ?? 0
            let prompt = fields["prompt_eval_count"]?.numberValue ?? 0

            var out: [String: JSONValue] = [
                "usage": [
                    "completion_tokens": .number(completion),
                    "prompt_tokens": .number(prompt),
                    "total_tokens": .number(completion + prompt),
                ],
            ]
            out["model"] = fields["model"]
            out["created"] = fields["created_at"]

            if route == .chat {
                var choice: [String: JSONValue] = ["index": 0]
                if LuaSemantics.truthy(fields["finish_reason"]) {
                    choice["finish_reason"] = fields["finish_reason"]
                } else {
                    let hitLimit = fields["eval_count"] != nil && model.options.maxTokens.map(Double.init) == completion
                    choice["finish_reason"] = hitLimit ? "length" : "stop"
                }
                choice["message"] = fields["message"]
                out["choices"] = [.object(choice)]
                out["object"] = "chat.completion"
            } else {
                var choice: [String: JSONValue] = ["index": 0]
                choice["text"] = fields["response"]
                out["choices"] = [.object(choice)]
                out["object"] = "text_completion"
            }
            return .object(out)
        }

        // MARK: Embeddings (`/api/embed`)

        /// `{model, input}` (the client's string or list of strings) plus `dimensions` when
        /// asked for; token arrays are refused.
        static func embeddingsRequest(_ body: [String: JSONValue], name: String?) throws(LLMConversionError) -> JSONValue {
            _ = try Embeddings.texts(body)
            var out: [String: JSONValue] = [:]
            out["model"] = name.map(JSONValue.string) ?? body["model"]
            out["input"] = body["input"]
            out["dimensions"] = Embeddings.dimensions(body).map { .number(Double($0)) }
            return .object(out)
        }

        /// `{model, embeddings:[[…]], prompt_eval_count}` → OpenAI list; prompt tokens =
        /// `prompt_eval_count` (0 when absent).
        static func embeddingsResponse(_ body: [UInt8], name: String?, encoding: LLMEmbeddingEncoding)
            throws(LLMConversionError) -> JSONValue
        {
            let document = try Embeddings.decode(body, "ollama")
            guard let vectors = Embeddings.vectors(document["embeddings"]) else { throw Embeddings.missing("ollama") }
            return Embeddings.response(vectors, promptTokens: document["prompt_eval_count"]?.intValue ?? 0,
                                       model: name ?? document["model"]?.stringValue, encoding: encoding)
        }
    }

    /// llama2 in `raw` format: a Hugging Face text-generation endpoint fed Llama 2's
    /// `[INST]` prompt template.
    enum Llama2Raw {
        static func request(_ body: [String: JSONValue]) throws(LLMConversionError) -> JSONValue {
            var parameters: [String: JSONValue] = [:]
            parameters["max_new_tokens"] = body["max_tokens"]
            parameters["top_p"] = body["top_p"]
            parameters["top_k"] = body["top_k"]
            parameters["temperature"] = body["temperature"]
            parameters["stream"] = LuaSemantics.or(body["stream"], false)

            var out: [String: JSONValue] = ["parameters": .object(parameters)]
            if LuaSemantics.truthy(body["prompt"]), LuaSemantics.truthy(body["messages"]) {
                throw Ollama.conflictingPrompts
            } else if let messages = body["messages"], LuaSemantics.truthy(messages) {
                out["inputs"] = .string(try instructions(messages.arrayValue ?? []))
            } else if LuaSemantics.truthy(body["prompt"]) {
                guard let prompt = LuaSemantics.text(body["prompt"]) else {
                    throw LLMConversionError("prompt is not a string")
                }
                // Kong's template closes the system block with `<<SYS>>`, not `<</SYS>>` (pinned by U10).
                out["inputs"] = .string("<s> [INST] <<SYS>> You are a helpful assistant. <<SYS>> \(prompt) [/INST]")
            }
            return .object(out)
        }

        /// Llama 2's chat template as Kong fills it: the first message (any role) is the system
        /// block, the second closes the first instruction, later user turns open new ones, later
        /// system turns end a model answer, assistant turns are dropped.
        static func instructions(_ messages: [JSONValue]) throws(LLMConversionError) -> String {
            var text = ""
            for (index, message) in messages.enumerated() {
                let role = message["role"]?.stringValue
                guard index < 2 || role == "system" || role == "user" else { continue }
                guard let content = LuaSemantics.text(message["content"]) else {
                    throw LLMConversionError("message content is not a string")
                }
                switch index {
                case 0: text += "<s>[INST] <<SYS>> \(content) <</SYS>>"
                case 1: text += " \(content) [/INST]"
                default: text += role == "system" ? " \(content) </s>" : " <s>[INST] \(content) [/INST]"
                }
            }
            return text
        }

        /// Spec §2.7: the generated text repeats the prompt; the answer is what follows the last
        /// `[/INST]`.
        static func response(_ body: [UInt8], route: LLMRouteType) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode llama2 response")
            }
            guard let data = document["data"]?.arrayValue, data.count <= 1 else {
                throw LLMConversionError("cannot parse response from llama2 endpoint")
            }
            guard let generated = data.first?["generated_text"]?.stringValue else {
                throw LLMConversionError("response data is empty from llama2 endpoint")
            }
            guard !generated.isEmpty else { throw LLMConversionError("response did not contain a system reply") }
            let answer = LuaSemantics.trim(lastPiece(of: generated, after: "[/INST]"))

            var out: [String: JSONValue]
            if route == .chat {
                out = [
                    "choices": [["message": ["content": .string(answer), "role": "assistant"], "index": 0]],
                    "object": "chat.completion",
                ]
            } else {
                out = ["choices": [["index": 0, "text": .string(answer)]], "object": "text_completion"]
            }
            if LuaSemantics.truthy(document["usage"]) { out["usage"] = document["usage"] }
            return .object(out)
        }

        /// The text after the last occurrence of `separator` (all of it when absent), compared
        /// byte-wise like Penlight's plain split.
        static func lastPiece(of text: String, after separator: String) -> String {
            let bytes = Array(text.utf8), sep = Array(separator.utf8)
            guard bytes.count >= sep.count else { return text }
            var start = bytes.count - sep.count
            while start >= 0 {
                if bytes[start..<start + sep.count].elementsEqual(sep) {
                    return String(decoding: bytes[(start + sep.count)...], as: UTF8.self)
                }
                start -= 1
            }
            return text
        }
    }
}
