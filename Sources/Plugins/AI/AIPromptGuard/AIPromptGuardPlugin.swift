import Core

/// ai-prompt-guard (`kong/plugins/ai-prompt-guard/schema.lua`, spec ai-plugins §8): allow and deny
/// regular expressions over the prompt.
///
/// Patterns are not checked at configuration time, as in Kong: an invalid one answers a generic
/// 500 when a request reaches it.
public enum AIPromptGuardPlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "ai-prompt-guard",
        priority: 771,
        version: KongVersion.number,
        config: RecordSchema([
            // At least one must match (when any is set).
            "allow_patterns": Field.array(of: pattern).required(false).lenMax(10),
            // None may match.
            "deny_patterns": Field.array(of: pattern).required(false).lenMax(10),
            // true: only the latest matching message is checked (the history is trusted).
            "allow_all_conversation_history": Field.boolean.required().default(false),
            // Bytes of request body the plugin introspects.
            "max_request_body_size": Field.integer.default(8192).gt(0),
            // Check every role, not only `user`.
            "match_all_roles": Field.boolean.required().default(false),
            // The client's input format.
            "llm_format": Field.string.required(false).default("openai").oneOf(LLMConfigSchema.inputFormats),
        ]),
        protocols: Typedefs.protocolsHTTP,
        checks: [
            .atLeastOneOf(["config.allow_patterns", "config.deny_patterns"]),
            .conditional(ifField: "config.match_all_roles", ifMatch: Field.rule.eq(true),
                         thenField: "config.allow_all_conversation_history", thenMatch: Field.rule.eq(false)),
        ]
    )

    private static var pattern: Field { Field.string.lenMin(1).lenMax(500) }

    /// The handler for one configured instance: the patterns are compiled here, once per snapshot.
    static func makeHandler(_ instance: PluginInstance) throws -> any PluginHandler {
        AIPromptGuardHandler(config: AIPromptGuardConfig(instance.config))
    }
}
