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

        /// Spec §2.7: a decodable body with `choices` is forwarded verbatim.
        static func response(_ body: [UInt8], route: LLMRouteType) throws(LLMConversionError) -> LLMConvertedResponse {
            guard let document = try? JSONValue.parse(bytes: body) else {
                throw LLMConversionError("failed to decode \(route.rawValue) response")
            }
            guard LuaSemantics.truthy(document["choices"]) else {
                throw LLMConversionError("'choices' not in \(route.rawValue) response")
            }
            return LLMConvertedResponse(forwarding: document)
        }
    }
}
