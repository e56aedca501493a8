import Core

/// ai-response-transformer (spec ai-plugins §4): calls the upstream itself, rewrites its response
/// with an LLM and answers the client. May be scoped to a consumer.
public enum AIResponseTransformerPlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "ai-response-transformer",
        priority: 768,
        version: KongVersion.number,
        config: TransformerConfigSchema.config(extraFields: [
            // Interpret the LLM output as `{status, headers, body}`.
            ("parse_llm_response_json_instructions", Field.boolean.required().default(false)),
        ]),
        protocols: Typedefs.protocolsHTTP,
        checks: TransformerConfigSchema.checks
    )
}
