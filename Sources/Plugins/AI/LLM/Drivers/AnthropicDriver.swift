import Core

extension LLMDrivers {
    /// Anthropic Messages API (chat) and Text Completions API (completions).
    enum Anthropic {
        // MARK: Requests (spec §2.6)

        static func chatRequest(_ body: [String: JSONValue], name: String?) throws(LLMConversionError) -> JSONValue {
            guard let messages = body["messages"]?.arrayValue else {
                throw LLMConversionError("request is missing .messages command")
            }
            var converted: [JSONValue] = []
            var system: JSONValue?
            for message in messages {
                let fields = LLMDrivers.fields(message)
                switch fields["role"]?.stringValue {
                case "assistant":
                    if let calls = LLMDrivers.nonEmptyArray(fields["tool_calls"]) {
                        converted.append(["role": "assistant", "content": .array(try calls.map(toolUse))])
                    } else {
                        converted.append(message)
                    }
                case "user":
                    converted.append(message)
                case "tool":
                    var result: [String: JSONValue] = ["type": "tool_result"]
                    result["tool_use_id"] = fields["tool_call_id"]
                    result["content"] = fields["content"]
                    converted.append(["role": "user", "content": [.object(result)]])
                default:
                    // Anthropic takes the system prompt apart from the turns; the last one wins.
                    system = fields["content"]
                }
            }

            var out: [String: JSONValue] = ["messages": .array(converted)]
            out["model"] = name.map(JSONValue.string) ?? body["model"]
            out["system"] = system
            out["max_tokens"] = body["max_tokens"]
            out["temperature"] = body["temperature"]
            out["stream"] = LuaSemantics.or(body["stream"], false)
            if let tools = body["tools"]?.arrayValue {
                // An empty conversion is left out rather than sent as Kong's `{}`, which
                // Anthropic would refuse anyway.
                let functions = tools.compactMap(toolDefinition)
                if !functions.isEmpty { out["tools"] = .array(functions) }
            }
            out["tool_choice"] = toolChoice(body["tool_choice"])
            return .object(out)
        }

        static func completionsRequest(_ body: [String: JSONValue], name: String?) throws(LLMConversionError) -> JSONValue {
            let prompt: String
            if LuaSemantics.truthy(body["prompt"]) {
                guard let text = LuaSemantics.text(body["prompt"]) else {
                    throw LLMConversionError("prompt is not a string")
                }
                prompt = "Human: \(text)\n\nAssistant:"
            } else if let messages = body["messages"]?.arrayValue {
                prompt = try transcript(messages)
            } else {
                throw LLMConversionError("request is missing .prompt and .messages commands")
            }
            var out: [String: JSONValue] = ["prompt": .string(prompt)]
            out["model"] = name.map(JSONValue.string) ?? body["model"]
            out["max_tokens_to_sample"] = body["max_tokens"]
            out["temperature"] = body["temperature"]
            out["stream"] = LuaSemantics.or(body["stream"], false)
            return .object(out)
        }

        /// Claude 2's single-prompt form of a chat history: `Human: `/`Assistant: ` turns, system
        /// text unprefixed, ending with an open `Assistant:` turn.
        static func transcript(_ messages: [JSONValue]) throws(LLMConversionError) -> String {
            var prompt = ""
            for message in messages {
                let fields = LLMDrivers.fields(message)
                switch fields["role"]?.stringValue {
                case "assistant": prompt += "Assistant: "
                case "user": prompt += "Human: "
                default: break
                }
                guard let content = LuaSemantics.text(fields["content"]) else {
                    throw LLMConversionError("message content is not a string")
                }
                prompt += content + "\n\n"
            }
            return prompt + "Assistant:"
        }

        /// An OpenAI `tool_calls` entry as a `tool_use` block; arguments must be JSON text.
        static func toolUse(_ call: JSONValue) throws(LLMConversionError) -> JSONValue {
            let function = LLMDrivers.fields(call["function"])
            guard let arguments = function["arguments"]?.stringValue,
                  let input = try? JSONValue.parse(arguments)
            else { throw LLMConversionError("failed to decode function arguments, not JSON format") }
            var block: [String: JSONValue] = ["type": "tool_use", "input": input]
            block["id"] = call["id"]
            block["name"] = function["name"]
            return .object(block)
        }

        /// An OpenAI tool as an Anthropic tool: the function object with `parameters` renamed.
        static func toolDefinition(_ tool: JSONValue) -> JSONValue? {
            guard var function = tool["function"]?.objectValue else { return nil }
            function["input_schema"] = function.removeValue(forKey: "parameters")
            return .object(function)
        }

        static func toolChoice(_ choice: JSONValue?) -> JSONValue? {
            switch choice {
            case .string("required"): return ["type": "any"]
            case .string("none"): return ["type": "none"]
            case .string("auto"): return ["type": "auto"]
            case .object(let fields) where fields["type"] == "function":
                guard let name = fields["function"]?["name"] else { return nil }
                return ["type": "tool", "name": name]
            default: return nil
            }
        }

        // MARK: Responses (spec §2.7)

        static func chatResponse(_ body: [UInt8]) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode anthropic response")
            }
            guard LuaSemantics.truthy(document["content"]) else {
                throw LLMConversionError("'content' not in anthropic://llm/v1/chat response")
            }
            let blocks = document["content"]?.arrayValue ?? []

            var message: [String: JSONValue] = ["role": "assistant", "content": .string(text(of: blocks))]
            let toolCalls = blocks.compactMap(toolCall)
            if !toolCalls.isEmpty { message["tool_calls"] = .array(toolCalls) }

            var choice: [String: JSONValue] = ["index": 0, "message": .object(message)]
            choice["finish_reason"] = document["stop_reason"]

            var out: [String: JSONValue] = ["choices": [.object(choice)], "object": "chat.completion"]
            out["model"] = document["model"]
            out["usage"] = usage(document["usage"])
            return .object(out)
        }

        static func completionsResponse(_ body: [UInt8]) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode anthropic response")
            }
            guard LuaSemantics.truthy(document["completion"]) else {
                // Kong's text says "chat" on the completions route too.
                throw LLMConversionError("'completion' not in anthropic://llm/v1/chat response")
            }
            var choice: [String: JSONValue] = ["index": 0]
            choice["text"] = document["completion"]
            choice["finish_reason"] = document["stop_reason"]
            var out: [String: JSONValue] = ["choices": [.object(choice)], "object": "text_completion"]
            out["model"] = document["model"]
            return .object(out)
        }

        /// The `text` of the content blocks, each but the block at array position 1 preceded
        /// by "\n" (Kong counts positions over all blocks, not just text ones).
        static func text(of blocks: [JSONValue]) -> String {
            var text = ""
            for (index, block) in blocks.enumerated() {
                guard let piece = LuaSemantics.text(block["text"]) else { continue }
                if index != 0 { text += "\n" }
                text += piece
            }
            return text
        }

        static func toolCall(_ block: JSONValue) -> JSONValue? {
            guard block["type"] == "tool_use" else { return nil }
            var function: [String: JSONValue] = ["arguments": .string(KongJSON.encode(block["input"] ?? .null))]
            function["name"] = block["name"]
            var call: [String: JSONValue] = ["type": "function", "function": .object(function)]
            call["id"] = block["id"]
            return .object(call)
        }

        /// Anthropic usage in OpenAI terms; without upstream usage Kong puts a string there
        /// (spec §10.2), and a usage object without the token fields becomes `{}` (§10.1).
        static func usage(_ usage: JSONValue?) -> JSONValue {
            guard let fields = usage?.objectValue else { return "no usage data returned from upstream" }
            var out: [String: JSONValue] = [:]
            out["prompt_tokens"] = fields["input_tokens"]
            out["completion_tokens"] = fields["output_tokens"]
            if let input = fields["input_tokens"]?.numberValue, let output = fields["output_tokens"]?.numberValue {
                out["total_tokens"] = .number(input + output)
            }
            return .object(out)
        }
    }
}
