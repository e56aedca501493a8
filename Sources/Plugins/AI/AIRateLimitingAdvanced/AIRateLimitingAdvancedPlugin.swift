import Core

/// ai-rate-limiting-advanced [EE] (spec ai-plugins §5.2, 3.10 schema): token-based rate limits per
/// LLM provider, on top of Rate Limiting Advanced counters.
public enum AIRateLimitingAdvancedPlugin {
    public static let providerNames: [String] = ["openai", "azure", "anthropic", "cohere", "mistral", "llama2",
                                                 "bedrock", "gemini", "huggingface", "requestPrompt"]

    static let maxInt: Double = 2_147_483_646

    public static let definition: PluginDefinition = {
        var definition = PluginDefinition(
        name: "ai-rate-limiting-advanced",
        priority: 905,
        version: KongVersion.number,
        config: RecordSchema([
            "identifier": Field.string.required().default("consumer")
                .oneOf(["ip", "credential", "consumer", "service", "header", "path", "consumer-group"]),
            "window_type": Field.string.default("sliding").oneOf(["fixed", "sliding"]),
            // -1: node-local only; 0: synchronous; > 0: period in seconds (min 0.02).
            "sync_rate": Field.number,
            "llm_providers": Field.array(of: llmProvider).required(),
            "strategy": Field.string.required().default("local").oneOf(["cluster", "redis", "local"]),
            "dictionary_name": Field.string.required().default("kong_rate_limiting_counters"),
            "hide_client_headers": Field.boolean.default(false),
            // Seconds.
            "retry_after_jitter_max": Field.number.default(0),
            "header_name": Typedefs.headerName,
            "path": Typedefs.path,
            "redis": redis,
            "disable_penalty": Field.boolean.default(false),
            // Lua source returning the request's cost for the `requestPrompt` provider, compiled
            // when the configuration is validated, as Kong does.
            "request_prompt_count_function": Field.string.required(false).custom("request_prompt_count_function") { value in
                guard let source = value.stringValue else { return nil }
                return RequestPromptFunction.compileProblem(source).map { "error parsing prompt function: \($0)" }
            },
            "error_code": Field.number.default(429).gt(0),
            "error_message": Field.string.default("AI token rate limit exceeded for provider(s): "),
            "error_hide_providers": Field.boolean.default(false),
            "tokens_count_strategy": Field.string.required().default("total_tokens")
                .oneOf(["total_tokens", "prompt_tokens", "completion_tokens", "cost"]),
            "llm_format": Field.string.required(false).default("openai").oneOf(LLMConfigSchema.inputFormats),
        ]),
        protocols: Typedefs.protocolsHTTP,
        checks: [
            .custom(CustomEntityCheck(name: "ai_rate_limiting_advanced_config", fieldSources: ["config"]) { plugin in
                guard let config = plugin["config"] else { return nil }
                return AIRateLimitingAdvancedPlugin.configProblem(config).map { EntityCheckFailure($0) }
            }),
        ]
        )
        definition.dblessChecks = [clusterNeedsDatabase]
        return definition
    }()

    static let clusterUnsupportedMessage = "[ai-rate-limiting-advanced] strategy 'cluster' is not supported with Hybrid "
        + "deployments or DB-less mode. If you did not specify the strategy, please use 'redis' strategy, "
        + "'local' strategy or set 'sync_rate' to -1."

    /// Counters of the `cluster` strategy live in the database: a DB-less node has none, unless
    /// `sync_rate` is -1 (node-local counting only).
    static let clusterNeedsDatabase = EntityCheck.custom(CustomEntityCheck(
        name: "cluster_strategy_needs_database", fieldSources: ["config"]
    ) { plugin in
        guard plugin["config"]?["strategy"] == "cluster", plugin["config"]?["sync_rate"] != -1 else { return nil }
        return EntityCheckFailure(AIRateLimitingAdvancedPlugin.clusterUnsupportedMessage)
    })

    static var llmProvider: Field {
        Field.record([
            "window_size": Field.array(of: Field.number).required(),
            "name": Field.string.required().oneOf(providerNames),
            "limit": Field.array(of: Field.number).required(),
        ])
    }

    /// The shared EE Redis record (`kong/enterprise_edition/tools/redis/v2`).
    static var redis: Field {
        Field.record([
            "host": Typedefs.host.default("127.0.0.1"),
            "port": Typedefs.port.default(6379),
            "connect_timeout": Typedefs.timeout.default(2000),
            "send_timeout": Typedefs.timeout.default(2000),
            "read_timeout": Typedefs.timeout.default(2000),
            "username": Field.string.referenceable(),
            "password": Field.string.referenceable().encrypted(),
            "sentinel_username": Field.string.referenceable(),
            "sentinel_password": Field.string.referenceable().encrypted(),
            "database": Field.integer.default(0),
            "keepalive_pool_size": Field.integer.default(256).between(1, maxInt),
            "keepalive_backlog": Field.integer.between(0, maxInt),
            "sentinel_master": Field.string,
            "sentinel_role": Field.string.oneOf(["master", "slave", "any"]),
            "sentinel_nodes": Field.array(of: Field.record([
                "host": Typedefs.host.required().default("127.0.0.1"),
                "port": Typedefs.port.default(6379),
            ])).required(false).lenMin(1),
            "cluster_nodes": Field.array(of: Field.record([
                "ip": Typedefs.host.required().default("127.0.0.1"),
                "port": Typedefs.port.default(6379),
            ])).required(false).lenMin(1),
            "ssl": Field.boolean.required(false).default(false),
            "ssl_verify": Field.boolean.required(false).default(false),
            // SNI (Kong: `typedefs.sni`).
            "server_name": Field.string.required(false),
            "cluster_max_redirections": Field.integer.required(false).default(5),
            "connection_is_proxied": Field.boolean.required(false).default(false),
        ])
    }

    /// Kong's single `custom_entity_check` over `config`: the first failing rule wins.
    static func configProblem(_ config: JSONValue) -> String? {
        var seen: Set<String> = []
        for provider in config["llm_providers"]?.arrayValue ?? [] {
            let name = provider["name"]?.stringValue ?? ""
            if !seen.insert(name).inserted { return "Provider '\(name)' is not unique" }
            if provider["limit"]?.arrayValue?.count != provider["window_size"]?.arrayValue?.count {
                return "'limit' and 'window_size' must have the same number of elements"
            }
            if name == "requestPrompt" && config["request_prompt_count_function"].isNullOrAbsent {
                return "You must provide request prompt count function when using requestPrompt provider"
            }
        }

        let strategy = config["strategy"]?.stringValue
        let syncRate = config["sync_rate"]?.numberValue

        if strategy == "redis" {
            let redis = config["redis"] ?? .null
            if redis["host"].isNullOrAbsent && redis["sentinel_nodes"].isNullOrAbsent
                && redis["cluster_nodes"].isNullOrAbsent {
                return "No redis config provided"
            }
        }
        if strategy == "local" {
            if let syncRate, syncRate > -1 { return "sync_rate cannot be configured when using a local strategy" }
        } else if syncRate == nil {
            return "sync_rate is required if not using a local strategy"
        }
        if config["identifier"]?.stringValue == "header" && config["header_name"].isNullOrAbsent {
            return "No header name provided"
        }
        if config["identifier"]?.stringValue == "path" && config["path"].isNullOrAbsent {
            return "No path provided"
        }
        if let jitter = config["retry_after_jitter_max"]?.numberValue, jitter < 0 {
            return "Non-negative retry_after_jitter_max value is expected"
        }
        // A decimal in (0, 0.02) breaks the counters' time arithmetic.
        if let syncRate, syncRate > 0, syncRate < 0.02 {
            return "Config option 'sync_rate' must not be a decimal between 0 and 0.02"
        }
        return nil
    }
}
