import Core

extension LLMDrivers {
    /// AWS Bedrock Converse API.
    enum Bedrock {
        /// Kong's Lua patterns of Bedrock models without a system role (spec §2.6).
        /// Kong's Lua patterns, matched anywhere in the model name; compiled once.
        static let systemlessModelPatterns = [
            "amazon.titan.-.*",
            "cohere.command.-text.-.*",
            "cohere.command.-light.-text.-.*",
            "mistral.mistral.-7b.-instruct.-.*",
            "mistral.mixtral.-8x7b.-instruct.-.*",
        ].map(LuaPattern.init)

        // MARK: Requests (spec §2.6)

        static func chatRequest(_ body: [String: JSONValue], model: LLMModelConfig) throws(LLMConversionError) -> JSONValue {
            var out: [String: JSONValue] = [:]
            out["anthropic_version"] = .string(model.options.anthropicVersion ?? "bedrock-2023-05-31")

            if let messages = LLMDrivers.nonEmptyArray(body["messages"]) {
                var system: [JSONValue] = []
                var converted: [JSONValue] = []
                for message in messages {
                    let fields = LLMDrivers.fields(message)
                    switch fields["role"]?.stringValue {
                    case "system":
                        var prompt: [String: JSONValue] = [:]
                        prompt["text"] = fields["content"]
                        system.append(.object(prompt))
                    case "tool":
                        converted.append(try toolResult(fields))
                    case let role:
                        var turn: [String: JSONValue] = ["content": try content(fields)]
                        turn["role"] = bedrockRole(role)
                        converted.append(.object(turn))
                    }
                }
                if !converted.isEmpty { out["messages"] = .array(converted) }
                if !system.isEmpty {
                    let name = model.name ?? ""
                    if LLMRequestConversion.bedrockRefusesSystemPrompts(model: name) {
                        // Kong's text lacks the closing quote.
                        throw LLMConversionError("system prompts are unsupported for model '\(name)")
                    }
                    out["system"] = .array(system)
                }
            }

            var inference: [String: JSONValue] = [:]
            inference["maxTokens"] = body["max_tokens"]
            inference["stopSequences"] = body["stop"]
            inference["temperature"] = body["temperature"]
            inference["topP"] = body["top_p"]
            out["inferenceConfig"] = .object(inference)
            out["guardrailConfig"] = body["guardrailConfig"]

            let legacy = LLMDrivers.fields(body["bedrock"])
            let specs = (body["tools"]?.arrayValue ?? []).compactMap(toolSpec)
            if !specs.isEmpty {
                out["toolConfig"] = ["tools": .array(specs)]
            } else if let config = legacy["toolConfig"], LuaSemantics.truthy(config) {
                // Kong's pre-`tools` pass-through, wrapped in a one-element list as Kong does.
                out["toolConfig"] = [config]
            }
            if let fields = legacy["additionalModelRequestFields"], LuaSemantics.truthy(fields) {
                out["additionalModelRequestFields"] = [fields]
            }
            return .object(out)
        }

        /// user/assistant keep their role, a missing role is user; others are left out.
        static func bedrockRole(_ role: String?) -> JSONValue? {
            switch role {
            case nil, "user": return "user"
            case "assistant": return "assistant"
            default: return nil
            }
        }

        /// A `tool` message as a `toolResult` block: the content must be JSON; an object is the
        /// result document itself, any other value is wrapped as `{"result": …}`.
        static func toolResult(_ fields: [String: JSONValue]) throws(LLMConversionError) -> JSONValue {
            guard let text = fields["content"]?.stringValue, let decoded = try? JSONValue.parse(text) else {
                throw LLMConversionError("failed to decode function response arguments, not JSON format")
            }
            let document: JSONValue = decoded.objectValue != nil ? decoded : ["result": decoded]
            var result: [String: JSONValue] = ["content": [["json": document]]]
            result["toolUseId"] = fields["tool_call_id"]
            result["status"] = fields["status"]
            return ["role": "user", "content": [["toolResult": .object(result)]]]
        }

        /// A turn's content blocks: array content as is, tool calls as `toolUse`, else text.
        static func content(_ fields: [String: JSONValue]) throws(LLMConversionError) -> JSONValue {
            if case .array = fields["content"] { return fields["content"]! }
            if let calls = LLMDrivers.nonEmptyArray(fields["tool_calls"]) {
                // Kong overwrites the block for every call, so only the last one survives
                // (spec §10.5); kept for compatibility.
                let call = calls[calls.count - 1]
                let function = LLMDrivers.fields(call["function"])
                guard let arguments = function["arguments"]?.stringValue, let input = try? JSONValue.parse(arguments) else {
                    throw LLMConversionError("failed to decode function response arguments from assistant's message, not JSON format")
                }
                var use: [String: JSONValue] = ["input": input]
                use["toolUseId"] = call["id"]
                use["name"] = function["name"]
                return [["toolUse": .object(use)]]
            }
            let text = fields["content"].flatMap { $0.isNull ? nil : $0 } ?? ""
            return [["text": text]]
        }

        static func toolSpec(_ tool: JSONValue) -> JSONValue? {
            guard let function = tool["function"]?.objectValue else { return nil }
            var spec: [String: JSONValue] = [:]
            spec["name"] = function["name"]
            spec["description"] = function["description"]
            var schema: [String: JSONValue] = [:]
            schema["json"] = function["parameters"]
            spec["inputSchema"] = .object(schema)
            return ["toolSpec": .object(spec)]
        }

        // MARK: Embeddings requests (`/model/<model>/invoke`)

        /// `llm/v1/embeddings`, by model family:
        /// - `amazon.titan…`: `{inputText, dimensions?}`, one input only (detail
        ///   `Amazon Titan embedding models take one input per request, got <n>`);
        /// - `cohere.…`: `{texts, input_type}` (`input_type` as for Cohere; `dimensions` refused);
        /// - any other model: detail
        ///   `bedrock embeddings need an Amazon Titan (amazon.titan-*) or Cohere (cohere.*) model, got '<name>'`.
        ///
        /// Token arrays are refused.
        static func embeddingsRequest(_ body: [String: JSONValue], name: String) throws(LLMConversionError) -> JSONValue {
            let texts = try Embeddings.texts(body)
            if name.hasPrefix("amazon.titan") {
                guard texts.count == 1 else {
                    throw LLMConversionError("Amazon Titan embedding models take one input per request, got \(texts.count)")
                }
                var out: [String: JSONValue] = ["inputText": .string(texts[0])]
                out["dimensions"] = Embeddings.dimensions(body).map { .number(Double($0)) }
                return .object(out)
            }
            if name.hasPrefix("cohere.") {
                try Embeddings.refuseDimensions(body, "Cohere on bedrock")
                return ["texts": .array(texts.map(JSONValue.string)), "input_type": Embeddings.cohereInputType(body)]
            }
            throw LLMConversionError(
                "bedrock embeddings need an Amazon Titan (amazon.titan-*) or Cohere (cohere.*) model, got '\(name)'")
        }

        // MARK: Responses (spec §2.7)

        static func chatResponse(_ body: [UInt8], name: String?) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode response from Bedrock")
            }
            guard let blocks = LLMDrivers.nonEmptyArray(document["output"]?["message"]?["content"]) else {
                throw LLMConversionError("no generation candidates received from Bedrock, or max_tokens too short")
            }
            var message: [String: JSONValue] = ["role": "assistant"]
            message["content"] = blocks[0]["text"]
            let calls = blocks.compactMap { $0["toolUse"] }.map(toolCall)
            if !calls.isEmpty { message["tool_calls"] = .array(calls) }

            let choice: JSONValue = [
                "index": 0, "message": .object(message),
                "finish_reason": .string(finishReason(document["stopReason"]?.stringValue)),
            ]
            var out: [String: JSONValue] = ["choices": [choice], "object": "chat.completion"]
            out["model"] = name.map(JSONValue.string)
            if let usage = document["usage"], LuaSemantics.truthy(usage) {
                var counts: [String: JSONValue] = [:]
                counts["prompt_tokens"] = usage["inputTokens"]
                counts["completion_tokens"] = usage["outputTokens"]
                counts["total_tokens"] = usage["totalTokens"]
                out["usage"] = .object(counts)
            }
            out["trace"] = document["trace"]
            return .object(out)
        }

        static func finishReason(_ stopReason: String?) -> String {
            switch stopReason {
            case "max_tokens": return "length"
            case "tool_use": return "tool_calls"
            case "guardrail_intervened": return "guardrail_intervened"
            default: return "stop"  // end_turn, stop_sequence, anything new
            }
        }

        static func toolCall(_ use: JSONValue) -> JSONValue {
            var function: [String: JSONValue] = [:]
            function["name"] = use["name"]
            if let input = use["input"], input.isNonEmpty {
                function["arguments"] = .string(KongJSON.encode(input))
            }
            var call: [String: JSONValue] = ["type": "function", "function": .object(function)]
            call["id"] = use["toolUseId"]
            return .object(call)
        }

        /// `llm/v1/embeddings`: Titan `{embedding:[…], inputTextTokenCount}` (usage: the count);
        /// Cohere `{embeddings:[[…]] or {float:[[…]]}}` (no counts in the body: usage 0).
        static func embeddingsResponse(_ body: [UInt8], name: String?, encoding: LLMEmbeddingEncoding)
            throws(LLMConversionError) -> JSONValue
        {
            let document = try Embeddings.decode(body, "bedrock")
            if let vector = Embeddings.vector(document["embedding"]) {
                return Embeddings.response([vector], promptTokens: document["inputTextTokenCount"]?.intValue ?? 0,
                                           model: name, encoding: encoding)
            }
            guard let vectors = Embeddings.cohereVectors(document["embeddings"]) else { throw Embeddings.missing("bedrock") }
            return Embeddings.response(vectors, promptTokens: 0, model: name, encoding: encoding)
        }
    }
}
