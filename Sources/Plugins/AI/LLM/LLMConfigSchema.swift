import Core

/// The shared `llm` record (`kong/llm/schemas/init.lua`, spec ai-plugins §0.5): which provider and
/// model to call, how to authenticate, and what to log.
///
/// ai-proxy spreads these fields directly under `config` (its entity-check errors then sit under
/// `config["@entity"]`); the transformers nest the record as `config.llm`.
public enum LLMConfigSchema {
    public static let providers: [String] = ["openai", "azure", "anthropic", "cohere", "mistral", "llama2",
                                             "gemini", "bedrock", "huggingface"]
    /// The 3.10 route types: the transformers' `llm.route_type` (whose entity check then demands
    /// `llm/v1/chat`) keeps exactly these, and so its `expected one of: …` text.
    public static let routeTypes: [String] = ["llm/v1/chat", "llm/v1/completions", "preserve"]
    /// ai-proxy's route types: the 3.10 ones plus `llm/v1/embeddings` (a 3.11 value), in Kong
    /// 3.11's order (`preserve` last).
    public static let proxyRouteTypes: [String] = ["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings", "preserve"]
    /// Client input formats ai-proxy (and ai-rate-limiting-advanced) accept (`llm_format`).
    public static let inputFormats: [String] = ["openai", "bedrock", "gemini"]

    /// Route type → providers that cannot report statistics for it.
    static let unsupportedLogStatistics: [String: Set<String>] = ["llm/v1/completions": ["anthropic"]]

    public static let record: RecordSchema = RecordSchema([
        "route_type": Field.string.required().oneOf(routeTypes),
        "auth": auth,
        "model": model,
        "logging": logging,
    ], checks: checks)

    /// The record as ai-proxy spreads it under `config`: ``record`` with `route_type` also
    /// accepting `llm/v1/embeddings`.
    public static let proxyRecord: RecordSchema = record.overriding(with: [
        ("route_type", Field.string.required().oneOf(proxyRouteTypes)),
    ])

    // MARK: Sub-records

    static var auth: Field {
        Field.record([
            "header_name": Field.string.required(false).referenceable(),
            "header_value": Field.string.required(false).referenceable().encrypted(),
            "param_name": Field.string.required(false).referenceable(),
            "param_value": Field.string.required(false).referenceable().encrypted(),
            "param_location": Field.string.required(false).oneOf(["query", "body"]),
            "gcp_use_service_account": Field.boolean.required(false).default(false),
            // If null while gcp_use_service_account is true, the env GCP_SERVICE_ACCOUNT is used.
            "gcp_service_account_json": Field.string.required(false).referenceable(),
            "aws_access_key_id": Field.string.required(false).referenceable().encrypted(),
            "aws_secret_access_key": Field.string.required(false).referenceable().encrypted(),
            "allow_override": Field.boolean.required(false).default(false),
            // Enterprise 3.10 additions (schema only).
            "azure_use_managed_identity": Field.boolean.required(false).default(false),
            "azure_client_id": Field.string.required(false).referenceable(),
            "azure_client_secret": Field.string.required(false).referenceable().encrypted(),
            "azure_tenant_id": Field.string.required(false).referenceable(),
        ]).required(false)
    }

    static var model: Field {
        Field.record([
            "provider": Field.string.required().oneOf(providers),
            // May be templated from the request (`$(uri_captures.model)` etc.).
            "name": Field.string.required(false),
            "options": modelOptions,
        ]).required()
    }

    static var modelOptions: Field {
        Field.record([
            "max_tokens": Field.integer.required(false),
            "input_cost": Field.number.required(false).gt(0),
            "output_cost": Field.number.required(false).gt(0),
            "temperature": Field.number.required(false).between(0, 5),
            "top_p": Field.number.required(false).between(0, 1),
            "top_k": Field.integer.required(false).between(0, 500),
            "anthropic_version": Field.string.required(false),
            "azure_instance": Field.string.required(false),
            "azure_api_version": Field.string.required(false).default("2023-05-15"),
            "azure_deployment_id": Field.string.required(false),
            "llama2_format": Field.string.required(false).oneOf(["raw", "openai", "ollama"]),
            "mistral_format": Field.string.required(false).oneOf(["openai", "ollama"]),
            "upstream_url": Typedefs.url.required(false),
            "upstream_path": Field.string.required(false).deprecated(
                "llm: config.model.options.upstream_path is deprecated, please use config.model.options.upstream_url instead",
                removalInVersion: "4.0"),
            "gemini": Field.record([
                // Vertex regional host name only.
                "api_endpoint": Field.string.required(false),
                "project_id": Field.string.required(false),
                "location_id": Field.string.required(false),
            ], checks: [.mutuallyRequired(["api_endpoint", "project_id", "location_id"])]).required(false),
            "bedrock": Field.record([
                "aws_region": Field.string.required(false),
                // Enterprise 3.10 additions (schema only).
                "aws_assume_role_arn": Field.string.required(false),
                "aws_role_session_name": Field.string.required(false),
                "aws_sts_endpoint_url": Field.string.required(false),
            ]).required(false),
            "huggingface": Field.record([
                "use_cache": Field.boolean.required(false),
                "wait_for_model": Field.boolean.required(false),
            ]).required(false),
        ]).required(false)
    }

    static var logging: Field {
        Field.record([
            "log_statistics": Field.boolean.required().default(false),
            "log_payloads": Field.boolean.required().default(false),
        ]).required()
    }

    // MARK: Entity checks

    static let checks: [EntityCheck] = [
        .conditional(ifField: "model.provider", ifMatch: Field.rule.oneOf(["bedrock", "gemini"]),
                     thenField: "auth.allow_override", thenMatch: Field.rule.eq(false),
                     thenErr: "bedrock and gemini only support auth.allow_override = false"),
        .mutuallyRequired(["auth.header_name", "auth.header_value"]),
        .mutuallyRequired(["auth.param_name", "auth.param_value", "auth.param_location"]),
        optionRequired("llama2_format", forProvider: "llama2", err: "must set %s for llama2 provider"),
        optionRequired("mistral_format", forProvider: "mistral", err: "must set %s for mistral provider"),
        optionRequired("anthropic_version", forProvider: "anthropic", err: "must set %s for anthropic provider"),
        optionRequired("azure_instance", forProvider: "azure", err: "must set %s for azure provider"),
        optionRequired("azure_api_version", forProvider: "azure", err: "must set %s for azure provider"),
        optionRequired("azure_deployment_id", forProvider: "azure", err: "must set %s for azure provider"),
        optionRequired("upstream_url", forProvider: "llama2", err: "must set %s for self-hosted providers/models"),
        .custom(CustomEntityCheck(name: "log_statistics_supported",
                                  fieldSources: ["route_type", "model", "logging"]) { llm in
            guard llm["logging"]?["log_statistics"]?.boolValue == true,
                  let routeType = llm["route_type"]?.stringValue,
                  let provider = llm["model"]?["provider"]?.stringValue,
                  LLMConfigSchema.unsupportedLogStatistics[routeType]?.contains(provider) == true else { return nil }
            return EntityCheckFailure("\(provider) does not support statistics when route_type is \(routeType)")
        }),
    ]

    /// `conditional_at_least_one_of`: the provider needs `model.options.<option>` set.
    /// `err`'s `%s` becomes the quoted field name.
    private static func optionRequired(_ option: String, forProvider provider: String, err: String) -> EntityCheck {
        .conditionalAtLeastOneOf(ConditionalAtLeastOneOf(
            ifField: "model.provider", ifMatch: Field.rule.oneOf([provider]),
            thenAtLeastOneOf: ["model.options.\(option)"], thenErr: err))
    }
}
