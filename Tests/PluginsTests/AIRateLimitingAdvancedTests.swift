import Core
import Plugins
import Testing

let minimalRateLimiting: JSONValue = [
    "llm_providers": [["name": "openai", "limit": [1000], "window_size": [60]]],
]

func rateLimiting(_ patch: JSONValue, extra: [String: JSONValue] = [:]) -> Result<[String: JSONValue], ErrorRecord> {
    processPlugin("ai-rate-limiting-advanced", config: merging(minimalRateLimiting, patch), extra: extra)
}

let rateLimitingDefaults: [DefaultValue] = [
    DefaultValue("config.identifier", "consumer"),
    DefaultValue("config.window_type", "sliding"),
    DefaultValue("config.sync_rate", nil),
    DefaultValue("config.strategy", "local"),
    DefaultValue("config.dictionary_name", "kong_rate_limiting_counters"),
    DefaultValue("config.hide_client_headers", false),
    DefaultValue("config.retry_after_jitter_max", 0),
    DefaultValue("config.header_name", nil),
    DefaultValue("config.path", nil),
    DefaultValue("config.disable_penalty", false),
    DefaultValue("config.request_prompt_count_function", nil),
    DefaultValue("config.error_code", 429),
    DefaultValue("config.error_message", "AI token rate limit exceeded for provider(s): "),
    DefaultValue("config.error_hide_providers", false),
    DefaultValue("config.tokens_count_strategy", "total_tokens"),
    DefaultValue("config.llm_format", "openai"),
    DefaultValue("config.llm_providers", [["name": "openai", "limit": [1000], "window_size": [60]]]),
    DefaultValue("config.redis.host", "127.0.0.1"),
    DefaultValue("config.redis.port", 6379),
    DefaultValue("config.redis.connect_timeout", 2000),
    DefaultValue("config.redis.send_timeout", 2000),
    DefaultValue("config.redis.read_timeout", 2000),
    DefaultValue("config.redis.username", nil),
    DefaultValue("config.redis.password", nil),
    DefaultValue("config.redis.database", 0),
    DefaultValue("config.redis.keepalive_pool_size", 256),
    DefaultValue("config.redis.keepalive_backlog", nil),
    DefaultValue("config.redis.sentinel_master", nil),
    DefaultValue("config.redis.sentinel_role", nil),
    DefaultValue("config.redis.sentinel_nodes", nil),
    DefaultValue("config.redis.cluster_nodes", nil),
    DefaultValue("config.redis.ssl", false),
    DefaultValue("config.redis.ssl_verify", false),
    DefaultValue("config.redis.server_name", nil),
    DefaultValue("config.redis.cluster_max_redirections", 5),
    DefaultValue("config.redis.connection_is_proxied", false),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
]

@Test(arguments: rateLimitingDefaults)
func rateLimitingMinimalConfigGetsDefaults(_ expected: DefaultValue) {
    guard let entity = expectValid(rateLimiting([:])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

@Test func rateLimitingRedisNodesGetDefaults() {
    let result = rateLimiting([
        "strategy": "redis", "sync_rate": 1,
        "redis": ["host": nil, "sentinel_master": "mymaster", "sentinel_role": "master",
                  "sentinel_nodes": [[:], ["host": "sentinel-2", "port": 26379]],
                  "cluster_nodes": [["port": 7000]]],
    ])
    guard let entity = expectValid(result) else { return }
    let sentinels: JSONValue = [["host": "127.0.0.1", "port": 6379], ["host": "sentinel-2", "port": 26379]]
    let clusterNodes: JSONValue = [["ip": "127.0.0.1", "port": 7000]]
    #expect(lookup(entity, "config.redis.sentinel_nodes") == sentinels)
    #expect(lookup(entity, "config.redis.cluster_nodes") == clusterNodes)
}

let validRateLimitingConfigs: [ConfigCase] = [
    ConfigCase("several providers and windows", [
        "llm_providers": [["name": "openai", "limit": [100, 1000], "window_size": [60, 3600]],
                          ["name": "azure", "limit": [5000], "window_size": [86400]],
                          ["name": "huggingface", "limit": [10], "window_size": [1]]],
    ], [:]),
    ConfigCase("requestPrompt with function", [
        "llm_providers": [["name": "requestPrompt", "limit": [2000], "window_size": [60]]],
        "request_prompt_count_function": "return 100",
    ], [:]),
    ConfigCase("local with sync_rate -1", ["sync_rate": -1], [:]),
    ConfigCase("redis synchronous", ["strategy": "redis", "sync_rate": 0], [:]),
    ConfigCase("redis with smallest period", ["strategy": "redis", "sync_rate": 0.02], [:]),
    ConfigCase("redis cluster nodes only", [
        "strategy": "redis", "sync_rate": 1, "redis": ["host": nil, "cluster_nodes": [["ip": "10.0.0.1", "port": 7000]]],
    ], [:]),
    ConfigCase("cluster strategy on a database-backed node", ["strategy": "cluster", "sync_rate": 1], [:]),
    ConfigCase("cluster strategy without sync", ["strategy": "cluster", "sync_rate": -1], [:]),
    ConfigCase("header identifier", ["identifier": "header", "header_name": "X-Tenant-Id"], [:]),
    ConfigCase("path identifier", ["identifier": "path", "path": "/v1/chat/completions"], [:]),
    ConfigCase("vault reference for the redis password", [
        "strategy": "redis", "sync_rate": 1, "redis": ["password": "{vault://env/redis-password}"],
    ], [:]),
    ConfigCase("cost strategy, fixed windows, custom error", [
        "tokens_count_strategy": "cost", "window_type": "fixed", "error_code": 403,
        "error_message": "slow down", "retry_after_jitter_max": 5, "llm_format": "gemini",
    ], [:]),
]

@Test(arguments: validRateLimitingConfigs)
func rateLimitingAcceptsValidConfigs(_ config: ConfigCase) {
    _ = expectValid(rateLimiting(config.patch))
}

let providerNamesMessage =
    "expected one of: openai, azure, anthropic, cohere, mistral, llama2, bedrock, gemini, huggingface, requestPrompt"

let invalidRateLimitingConfigs: [ConfigCase] = [
    // llm_providers
    ConfigCase("llm_providers required", ["llm_providers": nil], ["config.llm_providers": "required field missing"]),
    ConfigCase("llm_providers type", ["llm_providers": "openai"], ["config.llm_providers": "expected an array"]),
    ConfigCase("provider name one_of", ["llm_providers": [["name": "openrouter", "limit": [1], "window_size": [1]]]],
               ["config.llm_providers.0.name": providerNamesMessage]),
    ConfigCase("provider name required", ["llm_providers": [["limit": [1], "window_size": [1]]]],
               ["config.llm_providers.0.name": "required field missing"]),
    ConfigCase("provider limit required", ["llm_providers": [["name": "openai", "window_size": [1]]]],
               ["config.llm_providers.0.limit": "required field missing"]),
    ConfigCase("provider window_size required", ["llm_providers": [["name": "openai", "limit": [1]]]],
               ["config.llm_providers.0.window_size": "required field missing"]),
    ConfigCase("provider limit elements", ["llm_providers": [["name": "openai", "limit": ["many"], "window_size": [1]]]],
               ["config.llm_providers.0.limit.0": "expected a number"]),
    ConfigCase("provider window_size type", ["llm_providers": [["name": "openai", "limit": [1], "window_size": 60]]],
               ["config.llm_providers.0.window_size": "expected an array"]),
    ConfigCase("provider unknown field",
               ["llm_providers": [["name": "openai", "limit": [1], "window_size": [1], "tokens": 5]]],
               ["config.llm_providers.0.tokens": "unknown field"]),
    ConfigCase("second provider invalid", [
        "llm_providers": [["name": "openai", "limit": [1], "window_size": [1]], ["name": "x", "limit": [1], "window_size": [1]]],
    ], ["config.llm_providers.1.name": providerNamesMessage]),

    // scalar fields
    ConfigCase("identifier one_of", ["identifier": "user"],
               ["config.identifier": "expected one of: ip, credential, consumer, service, header, path, consumer-group"]),
    ConfigCase("identifier required", ["identifier": nil], ["config.identifier": "required field missing"]),
    ConfigCase("window_type one_of", ["window_type": "rolling"], ["config.window_type": "expected one of: fixed, sliding"]),
    ConfigCase("strategy one_of", ["strategy": "memory"], ["config.strategy": "expected one of: cluster, redis, local"]),
    ConfigCase("strategy required", ["strategy": nil], ["config.strategy": "required field missing"]),
    ConfigCase("sync_rate type", ["sync_rate": "1s"], ["config.sync_rate": "expected a number"]),
    ConfigCase("dictionary_name required", ["dictionary_name": nil], ["config.dictionary_name": "required field missing"]),
    ConfigCase("dictionary_name empty", ["dictionary_name": ""], ["config.dictionary_name": "length must be at least 1"]),
    ConfigCase("hide_client_headers type", ["hide_client_headers": 0], ["config.hide_client_headers": "expected a boolean"]),
    ConfigCase("retry_after_jitter_max type", ["retry_after_jitter_max": "1"],
               ["config.retry_after_jitter_max": "expected a number"]),
    ConfigCase("header_name syntax", ["identifier": "header", "header_name": "X Tenant"],
               ["config.header_name": "bad header name 'X Tenant', allowed characters are A-Z, a-z, 0-9, '_', and '-'"]),
    ConfigCase("path starts with /", ["identifier": "path", "path": "v1/chat"], ["config.path": "should start with: /"]),
    ConfigCase("path empty segments", ["identifier": "path", "path": "/v1//chat"],
               ["config.path": "must not have empty segments"]),
    ConfigCase("disable_penalty type", ["disable_penalty": "no"], ["config.disable_penalty": "expected a boolean"]),
    ConfigCase("request_prompt_count_function empty", ["request_prompt_count_function": ""],
               ["config.request_prompt_count_function": "length must be at least 1"]),
    ConfigCase("request_prompt_count_function type", ["request_prompt_count_function": 100],
               ["config.request_prompt_count_function": "expected a string"]),
    ConfigCase("error_code gt 0", ["error_code": 0], ["config.error_code": "value must be greater than 0"]),
    ConfigCase("error_message type", ["error_message": false], ["config.error_message": "expected a string"]),
    ConfigCase("error_hide_providers type", ["error_hide_providers": "yes"],
               ["config.error_hide_providers": "expected a boolean"]),
    ConfigCase("tokens_count_strategy one_of", ["tokens_count_strategy": "requests"],
               ["config.tokens_count_strategy": "expected one of: total_tokens, prompt_tokens, completion_tokens, cost"]),
    ConfigCase("tokens_count_strategy required", ["tokens_count_strategy": nil],
               ["config.tokens_count_strategy": "required field missing"]),
    ConfigCase("llm_format one_of", ["llm_format": "anthropic"], ["config.llm_format": "expected one of: openai, bedrock, gemini"]),
    ConfigCase("unknown config field", ["namespace": "x"], ["config.namespace": "unknown field"]),

    // redis
    ConfigCase("redis type", ["redis": "redis://localhost"], ["config.redis": "expected a record"]),
    ConfigCase("redis.host with port", ["redis": ["host": "redis:6379"]], ["config.redis.host": "must not have a port"]),
    ConfigCase("redis.port range", ["redis": ["port": 70000]], ["config.redis.port": "value should be between 0 and 65535"]),
    ConfigCase("redis.connect_timeout range", ["redis": ["connect_timeout": -1]],
               ["config.redis.connect_timeout": "value should be between 0 and 2147483646"]),
    ConfigCase("redis.send_timeout range", ["redis": ["send_timeout": 2_147_483_647]],
               ["config.redis.send_timeout": "value should be between 0 and 2147483646"]),
    ConfigCase("redis.read_timeout integer", ["redis": ["read_timeout": 1.5]], ["config.redis.read_timeout": "expected an integer"]),
    ConfigCase("redis.username empty", ["redis": ["username": ""]], ["config.redis.username": "length must be at least 1"]),
    ConfigCase("redis.password type", ["redis": ["password": 1234]], ["config.redis.password": "expected a string"]),
    ConfigCase("redis.database integer", ["redis": ["database": "0"]], ["config.redis.database": "expected an integer"]),
    ConfigCase("redis.keepalive_pool_size range", ["redis": ["keepalive_pool_size": 0]],
               ["config.redis.keepalive_pool_size": "value should be between 1 and 2147483646"]),
    ConfigCase("redis.keepalive_backlog range", ["redis": ["keepalive_backlog": -1]],
               ["config.redis.keepalive_backlog": "value should be between 0 and 2147483646"]),
    ConfigCase("redis.sentinel_role one_of", ["redis": ["sentinel_role": "boss"]],
               ["config.redis.sentinel_role": "expected one of: master, slave, any"]),
    ConfigCase("redis.sentinel_nodes len_min", ["redis": ["sentinel_nodes": []]],
               ["config.redis.sentinel_nodes": "length must be at least 1"]),
    ConfigCase("redis.sentinel_nodes host", ["redis": ["sentinel_nodes": [["host": "bad host!"]]]],
               ["config.redis.sentinel_nodes.0.host": "invalid value: bad host!"]),
    ConfigCase("redis.cluster_nodes len_min", ["redis": ["cluster_nodes": []]],
               ["config.redis.cluster_nodes": "length must be at least 1"]),
    ConfigCase("redis.cluster_nodes port", ["redis": ["cluster_nodes": [["port": 70000]]]],
               ["config.redis.cluster_nodes.0.port": "value should be between 0 and 65535"]),
    ConfigCase("redis.ssl type", ["redis": ["ssl": "on"]], ["config.redis.ssl": "expected a boolean"]),
    ConfigCase("redis.ssl_verify type", ["redis": ["ssl_verify": 1]], ["config.redis.ssl_verify": "expected a boolean"]),
    ConfigCase("redis.cluster_max_redirections integer", ["redis": ["cluster_max_redirections": 2.5]],
               ["config.redis.cluster_max_redirections": "expected an integer"]),
    ConfigCase("redis.connection_is_proxied type", ["redis": ["connection_is_proxied": "no"]],
               ["config.redis.connection_is_proxied": "expected a boolean"]),
    ConfigCase("redis unknown field", ["redis": ["timeout": 2000]], ["config.redis.timeout": "unknown field"]),
    ConfigCase("request prompt function that does not compile", [
        "llm_providers": [["name": "requestPrompt", "limit": [100], "window_size": [60]]],
        "request_prompt_count_function": "return (",
    ], ["config.request_prompt_count_function": #"error parsing prompt function: [string "return ("]:1: unexpected symbol near '<eof>'"#]),

    // plugin-level entity check (top-level "@entity")
    ConfigCase("provider names unique", [
        "llm_providers": [["name": "openai", "limit": [1], "window_size": [60]],
                          ["name": "openai", "limit": [2], "window_size": [3600]]],
    ], ["@entity": "Provider 'openai' is not unique"]),
    ConfigCase("limit and window_size lengths", [
        "llm_providers": [["name": "openai", "limit": [100, 1000], "window_size": [60]]],
    ], ["@entity": "'limit' and 'window_size' must have the same number of elements"]),
    ConfigCase("requestPrompt needs a function", [
        "llm_providers": [["name": "requestPrompt", "limit": [100], "window_size": [60]]],
    ], ["@entity": "You must provide request prompt count function when using requestPrompt provider"]),
    ConfigCase("redis strategy without any redis address", [
        "strategy": "redis", "sync_rate": 1, "redis": ["host": nil],
    ], ["@entity": "No redis config provided"]),
    ConfigCase("local strategy with a sync_rate", ["sync_rate": 1],
               ["@entity": "sync_rate cannot be configured when using a local strategy"]),
    ConfigCase("local strategy with sync_rate 0", ["strategy": "local", "sync_rate": 0],
               ["@entity": "sync_rate cannot be configured when using a local strategy"]),
    ConfigCase("redis strategy without sync_rate", ["strategy": "redis"],
               ["@entity": "sync_rate is required if not using a local strategy"]),
    ConfigCase("cluster strategy without sync_rate", ["strategy": "cluster"],
               ["@entity": "sync_rate is required if not using a local strategy"]),
    ConfigCase("header identifier without header_name", ["identifier": "header"],
               ["@entity": "No header name provided"]),
    ConfigCase("path identifier without path", ["identifier": "path"], ["@entity": "No path provided"]),
    ConfigCase("negative jitter", ["retry_after_jitter_max": -1],
               ["@entity": "Non-negative retry_after_jitter_max value is expected"]),
    ConfigCase("sync_rate below 0.02", ["strategy": "redis", "sync_rate": 0.01],
               ["@entity": "Config option 'sync_rate' must not be a decimal between 0 and 0.02"]),
]

@Test(arguments: invalidRateLimitingConfigs)
func rateLimitingRejectsInvalidConfigs(_ config: ConfigCase) {
    expectErrors(rateLimiting(config.patch), config.expected)
}

@Test func rateLimitingReportsOnlyTheFirstFailingRule() {
    // Kong's check is one function returning at the first problem.
    guard case .failure(let errors) = rateLimiting(["identifier": "header", "retry_after_jitter_max": -1]) else {
        Issue.record("expected a schema violation")
        return
    }
    let expected: [String] = ["No header name provided"]
    #expect(errors.entity == expected)
    #expect(KongError.schemaViolation(errors).message == "schema violation (No header name provided)")
}

@Test func rateLimitingMayBeScopedToConsumersAndGroups() {
    _ = expectValid(rateLimiting([:], extra: ["consumer": someConsumer]))
    _ = expectValid(rateLimiting([:], extra: ["consumer_group": someConsumer]))
}

@Test func rateLimitingRestrictsProtocolsToHTTP() {
    expectErrors(rateLimiting([:], extra: ["protocols": ["http", "udp"]]),
                 ["protocols.1": "expected one of: grpc, grpcs, http, https"])
}

@Test func rateLimitingClusterStrategyIsRefusedOnDBlessNodes() {
    let dbless = EntityRegistry(plugins: BundledPlugins.all, dbless: true)
    func process(_ config: JSONValue) -> Result<[String: JSONValue], ErrorRecord> {
        let base: JSONValue = ["llm_providers": [["name": "openai", "limit": [100], "window_size": [60]]]]
        return dbless["plugins"]!.process(["name": "ai-rate-limiting-advanced", "config": merging(base, config)],
                                          context: .insert)
    }
    guard case .failure(let errors) = process(["strategy": "cluster", "sync_rate": 1]) else {
        Issue.record("cluster strategy accepted on a DB-less node")
        return
    }
    #expect(errors.entity == ["[ai-rate-limiting-advanced] strategy 'cluster' is not supported with Hybrid deployments or DB-less mode. If you did not specify the strategy, please use 'redis' strategy, 'local' strategy or set 'sync_rate' to -1."])
    if case .failure(let e) = process(["strategy": "cluster", "sync_rate": -1]) {
        Issue.record("node-local cluster counting must stay allowed: \(e.json)")
    }
}
