import Core

/// Configuration shared by ai-request-transformer and ai-response-transformer (spec ai-plugins
/// §3.2, §4.2): the prompt, the one-shot LLM call's HTTP options and the nested `llm` record.
enum TransformerConfigSchema {
    /// The `config` record; `extraFields` follow `prompt` (ai-response-transformer's
    /// `parse_llm_response_json_instructions`).
    static func config(extraFields: [(name: String, field: Field)] = []) -> RecordSchema {
        let prompt: [(name: String, field: Field)] = [("prompt", Field.string.required())]
        let common: [(name: String, field: Field)] = [
            ("transformation_extract_pattern", Field.string.required(false)),
            ("http_timeout", Field.integer.required().default(60000)),
            ("https_verify", Field.boolean.required().default(true)),
            ("max_request_body_size", Field.integer.default(8192).gt(0)),
            ("http_proxy_host", Typedefs.host),
            ("http_proxy_port", Typedefs.port),
            ("https_proxy_host", Typedefs.host),
            ("https_proxy_port", Typedefs.port),
            ("llm", Field.record(LLMConfigSchema.record).required()),
        ]
        return RecordSchema(fields: prompt + extraFields + common)
    }

    /// Plugin-level checks (fields addressed from the plugin entity: `config.x`).
    static let checks: [EntityCheck] = [
        .conditional(ifField: "config.llm.route_type", ifMatch: Field.rule.notOneOf(["llm/v1/chat"]),
                     thenField: "config.llm.route_type", thenMatch: Field.rule.eq("llm/v1/chat"),
                     thenErr: "'config.llm.route_type' must be 'llm/v1/chat' for AI transformer plugins"),
        .mutuallyRequired(["config.http_proxy_host", "config.http_proxy_port"]),
        .mutuallyRequired(["config.https_proxy_host", "config.https_proxy_port"]),
    ]
}
