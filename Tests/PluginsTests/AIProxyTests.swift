import Core
import Plugins
import Testing

/// ai-proxy, and through it the shared `llm` record (its fields sit directly under `config`, its
/// entity-check errors under `config["@entity"]`).
let minimalProxy: JSONValue = ["route_type": "llm/v1/chat", "model": ["provider": "openai"]]

private func proxy(_ patch: JSONValue) -> Result<[String: JSONValue], ErrorRecord> {
    processPlugin("ai-proxy", config: merging(minimalProxy, patch))
}

let proxyDefaults: [DefaultValue] = [
    DefaultValue("config.response_streaming", "allow"),
    DefaultValue("config.max_request_body_size", 8192),
    DefaultValue("config.model_name_header", true),
    DefaultValue("config.llm_format", "openai"),
    DefaultValue("config.logging.log_statistics", false),
    DefaultValue("config.logging.log_payloads", false),
    DefaultValue("config.auth", nil),
    DefaultValue("config.model.name", nil),
    DefaultValue("config.model.options", nil),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
    DefaultValue("consumer", nil),
    DefaultValue("enabled", true),
]

@Test(arguments: proxyDefaults)
func aiProxyMinimalConfigGetsDefaults(_ expected: DefaultValue) {
    guard let entity = expectValid(proxy([:])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

let nestedRecordDefaults: [DefaultValue] = [
    DefaultValue("config.auth.allow_override", false),
    DefaultValue("config.auth.gcp_use_service_account", false),
    DefaultValue("config.auth.azure_use_managed_identity", false),
    DefaultValue("config.auth.header_name", nil),
    DefaultValue("config.model.options.azure_api_version", "2023-05-15"),
    DefaultValue("config.model.options.max_tokens", nil),
    DefaultValue("config.model.options.temperature", nil),
    DefaultValue("config.model.options.upstream_url", nil),
    DefaultValue("config.model.options.gemini", nil),
    DefaultValue("config.model.options.bedrock", nil),
    DefaultValue("config.model.options.huggingface", nil),
]

@Test(arguments: nestedRecordDefaults)
func aiProxyOptionalRecordsGetDefaultsWhenGiven(_ expected: DefaultValue) {
    guard let entity = expectValid(proxy(["auth": [:], "model": ["options": [:]]])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

/// Configurations Kong accepts, one per provider family.
let validProxyConfigs: [ConfigCase] = [
    ConfigCase("openai with header auth and options", [
        "auth": ["header_name": "Authorization", "header_value": "Bearer sk-test"],
        "model": ["name": "gpt-4o", "options": ["max_tokens": 512, "temperature": 0.5, "top_p": 1, "top_k": 500,
                                                 "input_cost": 2.5, "output_cost": 10]],
    ], [:]),
    ConfigCase("azure", [
        "model": ["provider": "azure", "options": ["azure_instance": "inst", "azure_deployment_id": "dep"]],
    ], [:]),
    ConfigCase("anthropic", ["model": ["provider": "anthropic", "options": ["anthropic_version": "2023-06-01"]]], [:]),
    ConfigCase("mistral", ["model": ["provider": "mistral", "options": ["mistral_format": "openai"]]], [:]),
    ConfigCase("llama2", [
        "model": ["provider": "llama2", "options": ["llama2_format": "ollama",
                                                    "upstream_url": "http://ollama:11434/api/chat"]],
    ], [:]),
    ConfigCase("gemini vertex", [
        "auth": ["gcp_use_service_account": true],
        "model": ["provider": "gemini", "options": ["gemini": ["api_endpoint": "us-central1-aiplatform.googleapis.com",
                                                               "project_id": "p", "location_id": "us-central1"]]],
    ], [:]),
    ConfigCase("bedrock native format", [
        "llm_format": "bedrock", "auth": ["allow_override": false],
        "model": ["provider": "bedrock", "options": ["bedrock": ["aws_region": "us-east-1"]]],
    ], [:]),
    ConfigCase("huggingface", ["model": ["provider": "huggingface", "options": ["huggingface": ["use_cache": true]]]], [:]),
    ConfigCase("cohere completions with statistics", [
        "route_type": "llm/v1/completions", "logging": ["log_statistics": true], "model": ["provider": "cohere"],
    ], [:]),
    ConfigCase("param auth", [
        "auth": ["param_name": "key", "param_value": "secret", "param_location": "query"],
    ], [:]),
    ConfigCase("preserve", ["route_type": "preserve", "response_streaming": "deny"], [:]),
]

@Test(arguments: validProxyConfigs)
func aiProxyAcceptsValidConfigs(_ config: ConfigCase) {
    _ = expectValid(proxy(config.patch))
}

let invalidProxyConfigs: [ConfigCase] = [
    // llm record: field constraints
    ConfigCase("route_type one_of", ["route_type": "llm/v1/responses"],
                  ["config.route_type": "expected one of: llm/v1/chat, llm/v1/completions, llm/v1/embeddings, preserve"]),
    ConfigCase("route_type required", ["route_type": nil], ["config.route_type": "required field missing"]),
    ConfigCase("route_type type", ["route_type": 1], ["config.route_type": "expected a string"]),
    ConfigCase("auth record type", ["auth": "Bearer x"], ["config.auth": "expected a record"]),
    ConfigCase("auth.header_name type", ["auth": ["header_name": 1, "header_value": "v"]],
                  ["config.auth.header_name": "expected a string"]),
    ConfigCase("auth.header_value empty", ["auth": ["header_name": "h", "header_value": ""]],
                  ["config.auth.header_value": "length must be at least 1"]),
    ConfigCase("auth.param_location one_of",
                  ["auth": ["param_name": "k", "param_value": "v", "param_location": "header"]],
                  ["config.auth.param_location": "expected one of: query, body"]),
    ConfigCase("auth.allow_override type", ["auth": ["allow_override": "yes"]],
                  ["config.auth.allow_override": "expected a boolean"]),
    ConfigCase("auth.gcp_use_service_account type", ["auth": ["gcp_use_service_account": 1]],
                  ["config.auth.gcp_use_service_account": "expected a boolean"]),
    ConfigCase("auth.azure_use_managed_identity type", ["auth": ["azure_use_managed_identity": "no"]],
                  ["config.auth.azure_use_managed_identity": "expected a boolean"]),
    ConfigCase("auth unknown field", ["auth": ["token": "x"]], ["config.auth.token": "unknown field"]),
    ConfigCase("model.provider one_of", ["model": ["provider": "openrouter"]],
                  ["config.model.provider":
                    "expected one of: openai, azure, anthropic, cohere, mistral, llama2, gemini, bedrock, huggingface"]),
    ConfigCase("model.provider required", ["model": ["provider": nil]],
                  ["config.model.provider": "required field missing"]),
    ConfigCase("model required", ["model": nil], ["config.model": "required field missing"]),
    ConfigCase("model record type", ["model": "gpt-4o"], ["config.model": "expected a record"]),
    ConfigCase("model.name type", ["model": ["name": 4]], ["config.model.name": "expected a string"]),
    ConfigCase("model.options type", ["model": ["options": [1]]], ["config.model.options": "expected a record"]),
    ConfigCase("max_tokens integer", ["model": ["options": ["max_tokens": 1.5]]],
                  ["config.model.options.max_tokens": "expected an integer"]),
    ConfigCase("input_cost gt 0", ["model": ["options": ["input_cost": 0]]],
                  ["config.model.options.input_cost": "value must be greater than 0"]),
    ConfigCase("output_cost gt 0", ["model": ["options": ["output_cost": -1]]],
                  ["config.model.options.output_cost": "value must be greater than 0"]),
    ConfigCase("input_cost type", ["model": ["options": ["input_cost": "1"]]],
                  ["config.model.options.input_cost": "expected a number"]),
    ConfigCase("temperature above 5", ["model": ["options": ["temperature": 6]]],
                  ["config.model.options.temperature": "value should be between 0 and 5"]),
    ConfigCase("temperature below 0", ["model": ["options": ["temperature": -0.1]]],
                  ["config.model.options.temperature": "value should be between 0 and 5"]),
    ConfigCase("top_p above 1", ["model": ["options": ["top_p": 1.5]]],
                  ["config.model.options.top_p": "value should be between 0 and 1"]),
    ConfigCase("top_k above 500", ["model": ["options": ["top_k": 501]]],
                  ["config.model.options.top_k": "value should be between 0 and 500"]),
    ConfigCase("top_k integer", ["model": ["options": ["top_k": 2.5]]],
                  ["config.model.options.top_k": "expected an integer"]),
    ConfigCase("anthropic_version empty", ["model": ["options": ["anthropic_version": ""]]],
                  ["config.model.options.anthropic_version": "length must be at least 1"]),
    ConfigCase("azure_api_version type", ["model": ["options": ["azure_api_version": 2024]]],
                  ["config.model.options.azure_api_version": "expected a string"]),
    ConfigCase("llama2_format one_of", ["model": ["options": ["llama2_format": "gguf"]]],
                  ["config.model.options.llama2_format": "expected one of: raw, openai, ollama"]),
    ConfigCase("mistral_format one_of", ["model": ["options": ["mistral_format": "raw"]]],
                  ["config.model.options.mistral_format": "expected one of: openai, ollama"]),
    ConfigCase("upstream_url without host", ["model": ["options": ["upstream_url": "not-a-url"]]],
                  ["config.model.options.upstream_url": "missing host in url"]),
    ConfigCase("upstream_url without scheme", ["model": ["options": ["upstream_url": "//ollama:11434/api"]]],
                  ["config.model.options.upstream_url": "missing scheme in url"]),
    ConfigCase("upstream_path type", ["model": ["options": ["upstream_path": true]]],
                  ["config.model.options.upstream_path": "expected a string"]),
    ConfigCase("gemini options type", ["model": ["options": ["gemini": "vertex"]]],
                  ["config.model.options.gemini": "expected a record"]),
    ConfigCase("gemini.project_id type", ["model": ["options": ["gemini": ["project_id": 1]]]],
                  ["config.model.options.gemini.project_id": "expected a string"]),
    ConfigCase("bedrock.aws_region type", ["model": ["options": ["bedrock": ["aws_region": 1]]]],
                  ["config.model.options.bedrock.aws_region": "expected a string"]),
    ConfigCase("bedrock.aws_sts_endpoint_url type", ["model": ["options": ["bedrock": ["aws_sts_endpoint_url": 1]]]],
                  ["config.model.options.bedrock.aws_sts_endpoint_url": "expected a string"]),
    ConfigCase("huggingface.use_cache type", ["model": ["options": ["huggingface": ["use_cache": "yes"]]]],
                  ["config.model.options.huggingface.use_cache": "expected a boolean"]),
    ConfigCase("huggingface.wait_for_model type", ["model": ["options": ["huggingface": ["wait_for_model": 1]]]],
                  ["config.model.options.huggingface.wait_for_model": "expected a boolean"]),
    ConfigCase("options unknown field", ["model": ["options": ["frequency_penalty": 1]]],
                  ["config.model.options.frequency_penalty": "unknown field"]),
    ConfigCase("logging required", ["logging": nil], ["config.logging": "required field missing"]),
    ConfigCase("logging.log_statistics required", ["logging": ["log_statistics": nil]],
                  ["config.logging.log_statistics": "required field missing"]),
    ConfigCase("logging.log_payloads type", ["logging": ["log_payloads": "true"]],
                  ["config.logging.log_payloads": "expected a boolean"]),

    // llm record: entity checks, reported under config["@entity"]
    ConfigCase("bedrock allow_override", [
        "auth": ["allow_override": true], "model": ["provider": "bedrock"],
    ], [
        "config.@entity": "bedrock and gemini only support auth.allow_override = false",
        "config.auth.allow_override": "value must be false",
    ]),
    ConfigCase("gemini without auth record", ["model": ["provider": "gemini"]], [
        "config.@entity": "bedrock and gemini only support auth.allow_override = false",
        "config.auth.allow_override": "value must be false",
    ]),
    ConfigCase("header auth needs both", ["auth": ["header_name": "Authorization"]], [
        "config.@entity": "all or none of these fields must be set: 'auth.header_name', 'auth.header_value'",
    ]),
    // Kong looks a check's field up flat in the error table (`errors["auth.header_name"]`), never
    // finding the nested error: the check runs over a field that already failed.
    ConfigCase("header auth needs both, the name mistyped", ["auth": ["header_name": 123]], [
        "config.auth.header_name": "expected a string",
        "config.@entity": "all or none of these fields must be set: 'auth.header_name', 'auth.header_value'",
    ]),
    // A conditional match checks the value's type first, as Kong's validate_field does.
    ConfigCase("bedrock allow_override mistyped", [
        "auth": ["allow_override": "no"], "model": ["provider": "bedrock"],
    ], [
        "config.@entity": "bedrock and gemini only support auth.allow_override = false",
        "config.auth.allow_override": "expected a boolean",
    ]),
    ConfigCase("param auth needs all three", ["auth": ["param_name": "key", "param_value": "v"]], [
        "config.@entity":
            "all or none of these fields must be set: 'auth.param_name', 'auth.param_value', 'auth.param_location'",
    ]),
    ConfigCase("llama2 needs llama2_format", [
        "model": ["provider": "llama2", "options": ["upstream_url": "http://ollama:11434/api/chat"]],
    ], ["config.@entity": "must set 'model.options.llama2_format' for llama2 provider"]),
    ConfigCase("mistral needs mistral_format", ["model": ["provider": "mistral"]],
                  ["config.@entity": "must set 'model.options.mistral_format' for mistral provider"]),
    ConfigCase("anthropic needs anthropic_version", ["model": ["provider": "anthropic", "options": [:]]],
                  ["config.@entity": "must set 'model.options.anthropic_version' for anthropic provider"]),
    ConfigCase("azure needs azure_instance", [
        "model": ["provider": "azure", "options": ["azure_deployment_id": "dep"]],
    ], ["config.@entity": "must set 'model.options.azure_instance' for azure provider"]),
    ConfigCase("azure needs azure_api_version", [
        "model": ["provider": "azure", "options": ["azure_instance": "i", "azure_deployment_id": "d",
                                                   "azure_api_version": nil]],
    ], ["config.@entity": "must set 'model.options.azure_api_version' for azure provider"]),
    ConfigCase("azure needs azure_deployment_id", [
        "model": ["provider": "azure", "options": ["azure_instance": "i"]],
    ], ["config.@entity": "must set 'model.options.azure_deployment_id' for azure provider"]),
    ConfigCase("llama2 needs upstream_url", [
        "model": ["provider": "llama2", "options": ["llama2_format": "raw"]],
    ], ["config.@entity": "must set 'model.options.upstream_url' for self-hosted providers/models"]),
    ConfigCase("anthropic completions statistics", [
        "route_type": "llm/v1/completions", "logging": ["log_statistics": true],
        "model": ["provider": "anthropic", "options": ["anthropic_version": "2023-06-01"]],
    ], ["config.@entity": "anthropic does not support statistics when route_type is llm/v1/completions"]),
    ConfigCase("gemini vertex options all or none", [
        "auth": [:], "model": ["provider": "gemini", "options": ["gemini": ["api_endpoint": "x.googleapis.com"]]],
    ], [
        "config.model.options.gemini.@entity":
            "all or none of these fields must be set: 'api_endpoint', 'project_id', 'location_id'",
    ]),

    // ai-proxy's own fields
    ConfigCase("response_streaming one_of", ["response_streaming": "sometimes"],
                  ["config.response_streaming": "expected one of: allow, deny, always"]),
    ConfigCase("max_request_body_size gt 0", ["max_request_body_size": 0],
                  ["config.max_request_body_size": "value must be greater than 0"]),
    ConfigCase("max_request_body_size integer", ["max_request_body_size": 10.5],
                  ["config.max_request_body_size": "expected an integer"]),
    ConfigCase("model_name_header type", ["model_name_header": "yes"],
                  ["config.model_name_header": "expected a boolean"]),
    ConfigCase("llm_format one_of", ["llm_format": "cohere"],
                  ["config.llm_format": "expected one of: openai, bedrock, gemini"]),
    ConfigCase("unknown config field", ["llm": ["route_type": "llm/v1/chat"]], ["config.llm": "unknown field"]),

    // plugin-level entity checks, reported under the top-level "@entity"
    ConfigCase("native format needs chat", [
        "llm_format": "bedrock", "route_type": "preserve", "auth": [:], "model": ["provider": "bedrock"],
    ], [
        "@entity": "native provider options in llm_format can only be used with the 'llm/v1/chat' route_type",
        "config.route_type": "value must be llm/v1/chat",
    ]),
    ConfigCase("bedrock format needs bedrock provider", ["llm_format": "bedrock"], [
        "@entity": "native llm_format 'bedrock' can only be used with the 'bedrock' model.provider",
        "config.model.provider": "value must be bedrock",
    ]),
    ConfigCase("bedrock format, provider mistyped", ["llm_format": "bedrock", "model": ["provider": 5]], [
        "@entity": "native llm_format 'bedrock' can only be used with the 'bedrock' model.provider",
        "config.model.provider": "expected a string",
    ]),
    ConfigCase("gemini format needs gemini provider", ["llm_format": "gemini"], [
        "@entity": "native llm_format 'gemini' can only be used with the 'gemini' model.provider",
        "config.model.provider": "value must be gemini",
    ]),
]

@Test(arguments: invalidProxyConfigs)
func aiProxyRejectsInvalidConfigs(_ config: ConfigCase) {
    expectErrors(proxy(config.patch), config.expected)
}

@Test func aiProxyEntityErrorsAreListedInCheckOrder() {
    let result = proxy(["model": ["provider": "azure"]])
    guard case .failure(let errors) = result else {
        Issue.record("expected a schema violation")
        return
    }
    // No options record at all: its default is not filled, so the api-version check fires too.
    let expected: JSONValue = [
        "must set 'model.options.azure_instance' for azure provider",
        "must set 'model.options.azure_api_version' for azure provider",
        "must set 'model.options.azure_deployment_id' for azure provider",
    ]
    #expect(lookup(errors.json, "config.@entity") == expected)
}

@Test func aiProxyAcceptsVaultReferences() {
    let result = proxy(["auth": ["header_name": "Authorization", "header_value": "{vault://env/openai-key}",
                                 "aws_secret_access_key": "{vault://aws/bedrock/secret}"]])
    guard let entity = expectValid(result) else { return }
    #expect(lookup(entity, "config.auth.header_value") == JSONValue.string("{vault://env/openai-key}"))
}

@Test func aiProxyMayBeScopedToAConsumer() {
    _ = expectValid(processPlugin("ai-proxy", config: minimalProxy, extra: ["consumer": someConsumer]))
}

@Test func aiProxyRestrictsProtocolsToHTTP() {
    expectErrors(processPlugin("ai-proxy", config: minimalProxy, extra: ["protocols": ["tcp"]]),
                 ["protocols.0": "expected one of: grpc, grpcs, http, https"])
}

@Test func aiProxyConfigIsRequired() {
    expectErrors(processPlugin("ai-proxy", config: nil), [
        "config.route_type": "required field missing",
        "config.model.provider": "required field missing",
    ])
}

@Test func aiProxySchemaViolationMessage() {
    guard case .failure(let errors) = proxy(["llm_format": "gemini"]) else {
        Issue.record("expected a schema violation")
        return
    }
    #expect(KongError.schemaViolation(errors).message.hasPrefix(
        "2 schema violations (native llm_format 'gemini' can only be used with the 'gemini' model.provider; "))
}

/// Kong's conditional checks inherit the checked field's definition: a null provider or route
/// type fails the match, so only `required field missing` is reported.
@Test func nullProviderReportsOnlyTheMissingField() {
    let result = processPlugin("ai-proxy", config: ["route_type": "llm/v1/chat", "model": ["provider": nil]])
    guard case .failure(let errors) = result else {
        Issue.record("accepted a null provider")
        return
    }
    #expect(errors.json == ["config": ["model": ["provider": "required field missing"]]])
}

@Test func transformerNullRouteTypeReportsOnlyTheMissingField() {
    let result = processPlugin("ai-request-transformer", config: [
        "prompt": "p", "llm": ["route_type": nil, "model": ["provider": "openai"]],
    ])
    guard case .failure(let errors) = result else {
        Issue.record("accepted a null route_type")
        return
    }
    #expect(errors.json == ["config": ["llm": ["route_type": "required field missing"]]])
}

/// Spec §0.5: `model.options.upstream_path` is deprecated (removal in 4.0): `/schemas` shows it
/// as Kong's field does, and a value still validates.
@Test func upstreamPathIsMarkedDeprecated() throws {
    func field(_ record: JSONValue?, _ name: String) -> JSONValue? {
        record?["fields"]?.arrayValue?.lazy.compactMap { $0[name] }.first
    }
    let config = Field.record(AIProxyPlugin.definition.config).exportJSON
    let upstreamPath = try #require(field(field(field(config, "model"), "options"), "upstream_path"))
    #expect(upstreamPath["deprecation"] == [
        "message": "llm: config.model.options.upstream_path is deprecated, please use config.model.options.upstream_url instead",
        "removal_in_version": "4.0",
    ])
    #expect(expectValid(proxy(["model": ["options": ["upstream_path": "/v1/other"]]])) != nil)
}
