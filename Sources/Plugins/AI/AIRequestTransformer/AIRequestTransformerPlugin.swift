import Core

/// ai-request-transformer (spec ai-plugins §3): rewrites the request body with an LLM before
/// proxying. Cannot be scoped to a consumer.
public enum AIRequestTransformerPlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "ai-request-transformer",
        priority: 777,
        version: KongVersion.number,
        config: TransformerConfigSchema.config(),
        protocols: Typedefs.protocolsHTTP,
        forbiddenScopes: [.consumer],
        checks: TransformerConfigSchema.checks
    )
}
