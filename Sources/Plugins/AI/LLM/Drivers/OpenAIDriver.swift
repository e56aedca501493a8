import Core

extension LLMDrivers {
    /// openai, azure, and mistral/llama2 in `openai` format (cohere with tools as well): the
    /// upstream speaks the client's dialect, so requests pass through and responses are
    /// forwarded byte for byte.
    enum OpenAI {
        /// Spec §2.6: the request is kept (unknown fields included) with `model` set, `stream`
        /// defaulted to false and `top_k` (not an OpenAI parameter) removed.
        static func request(_ body: [String: JSONValue], name: String?) -> JSONValue {
            var out = body
            if let name { out["model"] = .string(name) }
            out["stream"] = LuaSemantics.or(body["stream"], false)
            out["top_k"] = nil
            return .object(out)
        }

        /// `llm/v1/embeddings`: the request as is (token arrays, `encoding_format`, `dimensions`,
        /// `user` included) with `model` set; no `stream` is added (OpenAI refuses unknown
        /// embeddings parameters).
        static func embeddingsRequest(_ body: [String: JSONValue], name: String?) -> JSONValue {
            var out = body
            if let name { out["model"] = .string(name) }
            return .object(out)
        }

        /// Spec §2.7: a decodable body with `choices` is forwarded verbatim. Embeddings answers
        /// need `data` instead. `skimming`: only `usage` and `model` are built (what analytics
        /// read); the body is still checked to be JSON whole. A transformer's call needs the
        /// whole document (it reads the answer's text).
        static func response(_ body: [UInt8], route: LLMRouteType, skimming: Bool) throws(LLMConversionError) -> LLMConvertedResponse {
            let parsed = skimming ? try? JSONValue.parse(bytes: body, skimmingAllBut: Self.readMembers)
                                  : try? JSONValue.parse(bytes: body)
            guard let document = parsed else {
                throw LLMConversionError("failed to decode \(route.rawValue) response")
            }
            let member = route == .embeddings ? "data" : "choices"
            guard LuaSemantics.truthy(document[member]) else {
                throw LLMConversionError("'\(member)' not in \(route.rawValue) response")
            }
            return LLMConvertedResponse(forwarding: document)
        }

        static let readMembers: Set<String> = ["usage", "model"]
    }
}
