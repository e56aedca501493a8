import Core

/// ai-proxy (`kong/plugins/ai-proxy/schema.lua`, spec ai-plugins §2.2): the shared `llm` fields
/// directly under `config`, plus the proxy's own options.
public enum AIProxyPlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "ai-proxy",
        priority: 770,
        version: KongVersion.number,
        config: LLMConfigSchema.proxyRecord.overriding(with: [
            ("response_streaming", Field.string.required(false).default("allow").oneOf(["allow", "deny", "always"])),
            // Bytes of request body the plugin introspects.
            ("max_request_body_size", Field.integer.default(8192).gt(0)),
            // Emit `X-Kong-LLM-Model`.
            ("model_name_header", Field.boolean.default(true)),
            // The client's input format.
            ("llm_format", Field.string.required(false).default("openai").oneOf(LLMConfigSchema.inputFormats)),
        ]),
        protocols: Typedefs.protocolsHTTP,
        checks: [
            .conditional(ifField: "config.llm_format", ifMatch: Field.rule.oneOf(["bedrock", "gemini"]),
                         thenField: "config.route_type", thenMatch: Field.rule.eq("llm/v1/chat"),
                         thenErr: "native provider options in llm_format can only be used with the 'llm/v1/chat' route_type"),
            nativeFormatNeedsProvider("bedrock"),
            nativeFormatNeedsProvider("gemini"),
        ]
    )

    private static func nativeFormatNeedsProvider(_ format: String) -> EntityCheck {
        .conditional(ifField: "config.llm_format", ifMatch: Field.rule.eq(.string(format)),
                     thenField: "config.model.provider", thenMatch: Field.rule.eq(.string(format)),
                     thenErr: "native llm_format '\(format)' can only be used with the '\(format)' model.provider")
    }
}
