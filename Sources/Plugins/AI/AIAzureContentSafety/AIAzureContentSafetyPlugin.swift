import Core

/// ai-azure-content-safety [EE] (spec ai-plugins §6.2, 3.10 schema plus the 3.12–3.14 additions
/// `guarding_mode`, `response_buffer_size`, `stop_on_error`, `ssl_verify`): screens prompts with
/// Azure AI Content Safety.
///
/// Cannot be scoped to a consumer or a consumer group: Kong's published schema offers neither
/// (`no_consumer`, `no_consumer_group`).
public enum AIAzureContentSafetyPlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "ai-azure-content-safety",
        priority: 774,
        version: KongVersion.number,
        config: RecordSchema([
            // Full URL of `…/contentsafety/text:analyze`.
            "content_safety_url": Field.string.required().referenceable(),
            // Sent as `Ocp-Apim-Subscription-Key`.
            "content_safety_key": Field.string.required(false).referenceable().encrypted(),
            "azure_api_version": Field.string.required(false).default("2023-10-01").lenMin(1),
            "azure_use_managed_identity": Field.boolean.required(false).default(false),
            "azure_client_id": Field.string.required(false),
            "azure_client_secret": Field.string.required(false),
            "azure_tenant_id": Field.string.required(false),
            "categories": Field.array(of: Field.record([
                // Azure category: Hate, SelfHarm, Sexual, Violence.
                "name": Field.string.required(),
                // Reject when the severity reaches this level.
                "rejection_level": Field.integer.required(),
            ])).required(false),
            "blocklist_names": Field.array(of: Field.string).required(false),
            "halt_on_blocklist_hit": Field.boolean.required(false).default(true),
            "output_type": Field.string.required(false).default("FourSeverityLevels")
                .oneOf(["FourSeverityLevels", "EightSeverityLevels"]),
            "reveal_failure_reason": Field.boolean.required(false).default(true),
            "text_source": Field.string.required(false).default("concatenate_all_content")
                .oneOf(["concatenate_all_content", "concatenate_user_content"]),
            // 3.12+
            "guarding_mode": Field.string.required(false).default("INPUT").oneOf(["INPUT", "OUTPUT", "BOTH"]),
            // Bytes buffered from the upstream before a response check (3.12+).
            "response_buffer_size": Field.number.required(false).default(100),
            "stop_on_error": Field.boolean.required(false).default(true),
            // 3.13+ (default true from 3.14).
            "ssl_verify": Field.boolean.required(false).default(true),
        ]),
        protocols: Typedefs.protocolsHTTP,
        forbiddenScopes: [.consumer, .consumerGroup]
    )
}
