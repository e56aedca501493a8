import Core

/// ai-prompt-decorator (`kong/plugins/ai-prompt-decorator/schema.lua`, spec ai-plugins §7): chat
/// messages the gateway puts before and after the client's.
public enum AIPromptDecoratorPlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "ai-prompt-decorator",
        priority: 772,
        version: KongVersion.number,
        config: RecordSchema([
            "prompts": Field.record([
                // Inserted before the client's messages, in this order.
                "prepend": Field.array(of: message).required(false).lenMax(15),
                // Inserted after the client's messages, in this order.
                "append": Field.array(of: message).required(false).lenMax(15),
            ]).required(false),
            // Bytes of request body the plugin introspects.
            "max_request_body_size": Field.integer.default(8192).gt(0),
            // The client's input format: the messages are added in its own shape.
            "llm_format": Field.string.required(false).default("openai").oneOf(LLMConfigSchema.inputFormats),
        ]),
        protocols: Typedefs.protocolsHTTP,
        checks: [.atLeastOneOf(["config.prompts.prepend", "config.prompts.append"])]
    )

    private static var message: Field {
        Field.record([
            "role": Field.string.required().default("system").oneOf(["system", "assistant", "user"]),
            "content": Field.string.required().lenMin(1).lenMax(500),
        ]).required(false)
    }

    /// The handler for one configured instance: the messages to add are built here, once per snapshot.
    static func makeHandler(_ instance: PluginInstance) throws -> any PluginHandler {
        AIPromptDecoratorHandler(config: AIPromptDecoratorConfig(instance.config))
    }
}
