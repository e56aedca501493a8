import Core

extension LLMDrivers {
    /// Google Gemini `generateContent` (public API and Vertex AI share the body format).
    enum Gemini {
        // MARK: Requests (spec §2.6)

        static func chatRequest(_ body: [String: JSONValue], name: String) throws(LLMConversionError) -> JSONValue {
            var out: [String: JSONValue] = [:]
            if let messages = LLMDrivers.nonEmptyArray(body["messages"]) {
                var contents: [JSONValue] = []
                var system: String?
                for (offset, message) in messages.enumerated() {
                    let fields = LLMDrivers.fields(message)
                    let role = fields["role"]?.stringValue
                    if role == "system" {
                        // Gemini has one system instruction: all system texts, concatenated.
                        system = (system ?? "") + systemText(fields["content"])
                    } else if role == "tool" {
                        contents.append(toolResult(fields["content"]))
                    } else if role == "assistant", let calls = LLMDrivers.nonEmptyArray(fields["tool_calls"]) {
                        contents.append(["role": "function", "parts": .array(calls.map(functionCall))])
                    } else {
                        var content: [String: JSONValue] = ["parts": try parts(fields["content"], position: offset + 1)]
                        // No role means user; a role Gemini does not know is left out.
                        if let role { content["role"] = geminiRole(role) } else { content["role"] = "user" }
                        contents.append(.object(content))
                    }
                }
                if !contents.isEmpty { out["contents"] = .array(contents) }
                if let system {
                    // System instructions arrived with Gemini 1.5.
                    if name.hasPrefix("gemini-1.0") {
                        throw LLMConversionError("system prompts aren't supported on gemini-1.0 models")
                    }
                    out["systemInstruction"] = ["parts": [["text": .string(system)]]]
                }
            }

            var generation: [String: JSONValue] = [:]
            generation["maxOutputTokens"] = body["max_tokens"]
            generation["stopSequences"] = body["stop"]
            generation["temperature"] = body["temperature"]
            generation["topK"] = body["top_k"]
            generation["topP"] = body["top_p"]
            out["generationConfig"] = .object(generation)

            let functions = (body["tools"]?.arrayValue ?? []).compactMap { $0["function"] }
            if !functions.isEmpty { out["tools"] = [["function_declarations": .array(functions)]] }
            out["tool_config"] = body["tool_config"]
            return .object(out)
        }

        /// OpenAI role → Gemini role; roles Gemini does not know are left out (nil).
        static func geminiRole(_ role: String) -> JSONValue? {
            switch role {
            case "user": return "user"
            case "assistant": return "model"
            default: return nil
            }
        }

        /// A system message's text. Kong only handles string content here; an array of text parts
        /// is joined as well, since OpenAI clients send both forms.
        static func systemText(_ content: JSONValue?) -> String {
            if let text = LuaSemantics.text(content) { return text }
            return (content?.arrayValue ?? []).compactMap { $0["type"] == "text" ? $0["text"]?.stringValue : nil }.joined()
        }

        /// A `tool` message as a function response. Kong names every one `get_product_info`
        /// whatever the tool was (spec §10.5), and the fixtures' Kong version does so; kept.
        static func toolResult(_ content: JSONValue?) -> JSONValue {
            let response: JSONValue = ["content": content.map { .array([$0]) } ?? KongJSON.emptyTable]
            return ["role": "function", "parts": [["function_response": ["response": response, "name": "get_product_info"]]]]
        }

        /// An assistant tool call as a `function_call` part: Kong passes only the name.
        static func functionCall(_ call: JSONValue) -> JSONValue {
            var function: [String: JSONValue] = [:]
            function["name"] = call["function"]?["name"]
            return ["function_call": .object(function)]
        }

        /// Message content as Gemini parts; `position` is the message's 1-based index.
        static func parts(_ content: JSONValue?, position: Int) throws(LLMConversionError) -> JSONValue {
            switch content {
            case .string(let text):
                return [["text": .string(text)]]
            case .array(let items) where !items.isEmpty:
                var parts: [JSONValue] = []
                for (offset, item) in items.enumerated() {
                    parts.append(try part(item, message: position, part: offset + 1))
                }
                return .array(parts)
            case .array, .object:
                throw LLMConversionError("message at position \(position) does not match expected array format")
            default:
                // Kong sends an empty parts table for content it cannot read (null, numbers…).
                return KongJSON.emptyTable
            }
        }

        static func part(_ item: JSONValue, message: Int, part: Int) throws(LLMConversionError) -> JSONValue {
            guard let type = item["type"]?.stringValue else {
                throw LLMConversionError("message at position \(message), part at position \(part) does not match expected OpenAI format")
            }
            switch type {
            case "text":
                guard let text = item["text"], LuaSemantics.truthy(text) else {
                    throw LLMConversionError("message part type is 'text' but is missing .text block")
                }
                return ["text": text]
            case "image_url":
                guard let url = item["image_url"]?["url"]?.stringValue else {
                    throw LLMConversionError("message part type is 'image_url' but is missing .image_url.url block")
                }
                return try imagePart(url)
            default:
                throw LLMConversionError("cannot transform part of type '\(type)' to Gemini format")
            }
        }

        /// `data:<mime>;<encoding>,<data>` URLs are inlined; anything else (https, gs://…) is
        /// passed by reference with a generic image type.
        static func imagePart(_ url: String) throws(LLMConversionError) -> JSONValue {
            let bytes = Array(url.utf8)
            guard bytes.count >= 10 else {
                throw LLMConversionError("could not decode OpenAI image-part, image URL is less than 10 bytes, which is not parsable")
            }
            // Kong reads the scheme from the first six bytes only.
            let scheme = bytes.prefix(6).split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false).first ?? []
            guard scheme.elementsEqual("data".utf8) else {
                return ["fileData": ["fileUri": .string(url), "mimeType": "image/generic"]]
            }
            let rest = bytes.dropFirst(5)
            let outer = rest.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
            let inner = outer.count > 1 ? outer[1].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) : []
            var inline: [String: JSONValue] = [:]
            inline["mimeType"] = outer.first.map { .string(String(decoding: $0, as: UTF8.self)) }
            if inner.count > 1 { inline["data"] = .string(String(decoding: inner[1], as: UTF8.self)) }
            return ["inlineData": .object(inline)]
        }

        // MARK: Embeddings requests

        /// `llm/v1/embeddings`. Public API (`:batchEmbedContents`):
        /// `{requests:[{model:"models/<model>", content:{parts:[{text}]}, outputDimensionality?}…]}`;
        /// Vertex (`:predict`): `{instances:[{content:<text>}…], parameters?:{outputDimensionality}}`.
        /// `dimensions` becomes `outputDimensionality`; token arrays are refused.
        static func embeddingsRequest(_ body: [String: JSONValue], model: LLMModelConfig) throws(LLMConversionError) -> JSONValue {
            let texts = try Embeddings.texts(body)
            let dimensions = Embeddings.dimensions(body).map { JSONValue.number(Double($0)) }
            if model.options.usesVertex {
                var out: [String: JSONValue] = ["instances": .array(texts.map { ["content": .string($0)] })]
                if let dimensions { out["parameters"] = ["outputDimensionality": dimensions] }
                return .object(out)
            }
            let name = JSONValue.string("models/\(model.name ?? "")")
            let requests = texts.map { text -> JSONValue in
                var request: [String: JSONValue] = ["model": name, "content": ["parts": [["text": .string(text)]]]]
                request["outputDimensionality"] = dimensions
                return .object(request)
            }
            return ["requests": .array(requests)]
        }

        // MARK: Responses (spec §2.7)

        /// - Parameter transformerCall: the ai-request/response-transformer introspection call,
        ///   where a safety-blocked candidate is an error instead of an empty answer (§3.3-5).
        static func chatResponse(_ body: [UInt8], name: String?, transformerCall: Bool) throws(LLMConversionError) -> JSONValue {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode response from Gemini")
            }
            guard let candidate = LLMDrivers.nonEmptyArray(document["candidates"])?.first else {
                throw LLMConversionError("no generation candidates received from Gemini, or max_tokens too short")
            }
            if transformerCall, candidate["finishReason"] == "SAFETY" {
                throw LLMConversionError("transformation generation candidate breached Gemini content safety")
            }

            var out: [String: JSONValue] = [:]
            out["model"] = name.map(JSONValue.string)
            let parts = LLMDrivers.nonEmptyArray(candidate["content"]?["parts"])
            if let text = parts?.first?["text"], LuaSemantics.truthy(text) {
                var choice: [String: JSONValue] = ["index": 0, "message": ["role": "assistant", "content": text]]
                choice["finish_reason"] = candidate["finishReason"]?.stringValue.map { .string($0.lowercased()) }
                out["choices"] = [.object(choice)]
                out["object"] = "chat.completion"
            } else if let parts, LuaSemantics.truthy(parts.first?["functionCall"]) {
                let calls = parts.compactMap { part -> JSONValue? in
                    guard let call = part["functionCall"] else { return nil }
                    var function: [String: JSONValue] = ["arguments": .string(KongJSON.encode(call["args"] ?? .null))]
                    function["name"] = call["name"]
                    return ["function": .object(function)]
                }
                out["choices"] = [["index": 0, "message": ["role": "assistant", "tool_calls": .array(calls)]]]
            } else {
                // E.g. finishReason SAFETY: no content. Kong answers with an empty choices table,
                // which encodes as `{}` (spec §10.1).
                out["choices"] = KongJSON.emptyTable
            }

            if let metadata = document["usageMetadata"], LuaSemantics.truthy(metadata) {
                var usage: [String: JSONValue] = [:]
                usage["prompt_tokens"] = metadata["promptTokenCount"]
                usage["completion_tokens"] = metadata["candidatesTokenCount"]
                usage["total_tokens"] = metadata["totalTokenCount"]
                out["usage"] = .object(usage)
            }
            return .object(out)
        }

        /// `llm/v1/embeddings`. Public API `{embeddings:[{values:[…]}…]}` (no token counts: usage
        /// 0); Vertex `{predictions:[{embeddings:{values, statistics:{token_count}}}…]}` (usage:
        /// the sum of `token_count`).
        static func embeddingsResponse(_ body: [UInt8], model: LLMModelConfig, encoding: LLMEmbeddingEncoding)
            throws(LLMConversionError) -> JSONValue
        {
            let document = try Embeddings.decode(body, "gemini")
            var vectors: [[Double]] = []
            var tokens = 0
            if let predictions = LLMDrivers.nonEmptyArray(document["predictions"]) {
                for prediction in predictions {
                    guard let vector = Embeddings.vector(prediction["embeddings"]?["values"]) else {
                        throw Embeddings.missing("gemini")
                    }
                    vectors.append(vector)
                    tokens += prediction["embeddings"]?["statistics"]?["token_count"]?.intValue ?? 0
                }
            } else if let embeddings = LLMDrivers.nonEmptyArray(document["embeddings"]) {
                for embedding in embeddings {
                    guard let vector = Embeddings.vector(embedding["values"]) else { throw Embeddings.missing("gemini") }
                    vectors.append(vector)
                }
            } else {
                throw Embeddings.missing("gemini")
            }
            return Embeddings.response(vectors, promptTokens: tokens, model: model.name, encoding: encoding)
        }
    }
}
