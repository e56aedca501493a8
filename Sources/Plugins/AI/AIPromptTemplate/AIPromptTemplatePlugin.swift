import Core

/// ai-prompt-template (`kong/plugins/ai-prompt-template/schema.lua`, spec ai-plugins §9): named
/// request templates a client calls with `{template://<name>}` and fills with `properties`.
///
/// Beyond Kong, `templates[].template` is checked at configuration time: a `{{ … }}` expression
/// that does not parse (unknown function, wrong argument count, unbalanced parentheses) refuses
/// the configuration with the reason (docs/decisions.md).
public enum AIPromptTemplatePlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "ai-prompt-template",
        priority: 773,
        version: KongVersion.number,
        config: RecordSchema([
            "templates": Field.array(of: Field.record([
                // Called as `{template://<name>}`.
                "name": Field.string.required(),
                // Text with `{{placeholder}}` markers (and expressions); becomes the upstream body.
                "template": Field.string.required().custom("prompt_template_expressions") { value in
                    value.stringValue.flatMap(PromptTemplate.validationMessage(for:))
                },
            ]).required()).required(),
            "allow_untemplated_requests": Field.boolean.required().default(true),
            // Logs the raw body at `ai.payload.original_request`.
            "log_original_request": Field.boolean.required().default(false),
            // Bytes of request body the plugin reads.
            "max_request_body_size": Field.integer.default(8192).gt(0),
        ]),
        protocols: Typedefs.protocolsHTTP
    )

    /// The handler for one configured instance: every template parsed here, once per snapshot.
    static func makeHandler(_ instance: PluginInstance) throws -> any PluginHandler {
        try AIPromptTemplateHandler(config: AIPromptTemplateConfig(instance.config))
    }
}
