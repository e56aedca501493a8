import Core
import Plugins
import Testing

/// ai-request-transformer and ai-response-transformer share their config (§3.2, §4.2): the common
/// cases run against both.
let transformerNames = ["ai-request-transformer", "ai-response-transformer"]

let minimalTransformer: JSONValue = [
    "prompt": "Translate the body to French",
    "llm": ["route_type": "llm/v1/chat", "model": ["provider": "openai", "name": "gpt-4o"]],
]

func transformer(_ name: String, _ patch: JSONValue, extra: [String: JSONValue] = [:])
    -> Result<[String: JSONValue], ErrorRecord>
{
    processPlugin(name, config: merging(minimalTransformer, patch), extra: extra)
}

let transformerDefaults: [DefaultValue] = [
    DefaultValue("config.transformation_extract_pattern", nil),
    DefaultValue("config.http_timeout", 60000),
    DefaultValue("config.https_verify", true),
    DefaultValue("config.max_request_body_size", 8192),
    DefaultValue("config.http_proxy_host", nil),
    DefaultValue("config.http_proxy_port", nil),
    DefaultValue("config.https_proxy_host", nil),
    DefaultValue("config.https_proxy_port", nil),
    DefaultValue("config.llm.auth", nil),
    DefaultValue("config.llm.model.options", nil),
    DefaultValue("config.llm.logging.log_statistics", false),
    DefaultValue("config.llm.logging.log_payloads", false),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
]

@Test(arguments: transformerNames, transformerDefaults)
func transformerMinimalConfigGetsDefaults(_ name: String, _ expected: DefaultValue) {
    guard let entity = expectValid(transformer(name, [:])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

@Test func responseTransformerDefaultsJSONInstructionsOff() {
    guard let entity = expectValid(transformer("ai-response-transformer", [:])) else { return }
    #expect(lookup(entity, "config.parse_llm_response_json_instructions") == JSONValue.bool(false))
}

let validTransformerConfigs: [ConfigCase] = [
    ConfigCase("forward proxies", [
        "http_proxy_host": "proxy.internal", "http_proxy_port": 3128,
        "https_proxy_host": "10.0.0.5", "https_proxy_port": 3129,
    ], [:]),
    ConfigCase("extract pattern and timeouts", [
        "transformation_extract_pattern": "\\{((.|\\n)*)\\}", "http_timeout": 1000, "https_verify": false,
        "max_request_body_size": 1_048_576,
    ], [:]),
    ConfigCase("vault reference in llm auth", [
        "llm": ["auth": ["header_name": "Authorization", "header_value": "{vault://env/openai-key}"]],
    ], [:]),
    ConfigCase("azure llm", [
        "llm": ["model": ["provider": "azure", "options": ["azure_instance": "i", "azure_deployment_id": "d"]]],
    ], [:]),
]

@Test(arguments: transformerNames, validTransformerConfigs)
func transformerAcceptsValidConfigs(_ name: String, _ config: ConfigCase) {
    _ = expectValid(transformer(name, config.patch))
}

let invalidTransformerConfigs: [ConfigCase] = [
    ConfigCase("prompt required", ["prompt": nil], ["config.prompt": "required field missing"]),
    ConfigCase("prompt type", ["prompt": ["x"]], ["config.prompt": "expected a string"]),
    ConfigCase("prompt empty", ["prompt": ""], ["config.prompt": "length must be at least 1"]),
    ConfigCase("transformation_extract_pattern empty", ["transformation_extract_pattern": ""],
               ["config.transformation_extract_pattern": "length must be at least 1"]),
    ConfigCase("http_timeout required", ["http_timeout": nil], ["config.http_timeout": "required field missing"]),
    ConfigCase("http_timeout integer", ["http_timeout": "60s"], ["config.http_timeout": "expected an integer"]),
    ConfigCase("https_verify required", ["https_verify": nil], ["config.https_verify": "required field missing"]),
    ConfigCase("https_verify type", ["https_verify": "no"], ["config.https_verify": "expected a boolean"]),
    ConfigCase("max_request_body_size gt 0", ["max_request_body_size": 0],
               ["config.max_request_body_size": "value must be greater than 0"]),
    ConfigCase("max_request_body_size integer", ["max_request_body_size": 1.5],
               ["config.max_request_body_size": "expected an integer"]),
    ConfigCase("http_proxy_host with a port", ["http_proxy_host": "proxy.internal:3128", "http_proxy_port": 3128],
               ["config.http_proxy_host": "must not have a port"]),
    ConfigCase("https_proxy_host invalid", ["https_proxy_host": "bad host!", "https_proxy_port": 3128],
               ["config.https_proxy_host": "invalid value: bad host!"]),
    ConfigCase("http_proxy_port range", ["http_proxy_host": "proxy.internal", "http_proxy_port": 70000],
               ["config.http_proxy_port": "value should be between 0 and 65535"]),
    ConfigCase("https_proxy_port range", ["https_proxy_host": "proxy.internal", "https_proxy_port": -1],
               ["config.https_proxy_port": "value should be between 0 and 65535"]),
    ConfigCase("llm required", ["llm": nil], ["config.llm": "required field missing"]),
    ConfigCase("llm type", ["llm": "openai"], ["config.llm": "expected a record"]),
    ConfigCase("unknown config field", ["model": ["provider": "openai"]], ["config.model": "unknown field"]),

    // The nested llm record: its fields and checks, one level deeper.
    ConfigCase("llm.model.provider one_of", ["llm": ["model": ["provider": "openrouter"]]],
               ["config.llm.model.provider":
                 "expected one of: openai, azure, anthropic, cohere, mistral, llama2, gemini, bedrock, huggingface"]),
    ConfigCase("llm temperature", ["llm": ["model": ["options": ["temperature": 5.5]]]],
               ["config.llm.model.options.temperature": "value should be between 0 and 5"]),
    ConfigCase("llm unknown field", ["llm": ["response_streaming": "allow"]],
               ["config.llm.response_streaming": "unknown field"]),
    ConfigCase("llm anthropic needs version", ["llm": ["model": ["provider": "anthropic"]]],
               ["config.llm.@entity": "must set 'model.options.anthropic_version' for anthropic provider"]),
    ConfigCase("llm header auth all or none", ["llm": ["auth": ["header_value": "Bearer x"]]],
               ["config.llm.@entity": "all or none of these fields must be set: 'auth.header_name', 'auth.header_value'"]),
    ConfigCase("llm gemini allow_override", ["llm": ["auth": ["allow_override": true], "model": ["provider": "gemini"]]], [
        "config.llm.@entity": "bedrock and gemini only support auth.allow_override = false",
        "config.llm.auth.allow_override": "value must be false",
    ]),

    // Plugin-level checks (top-level "@entity").
    ConfigCase("llm route_type must be chat", ["llm": ["route_type": "llm/v1/completions"]], [
        "@entity": "'config.llm.route_type' must be 'llm/v1/chat' for AI transformer plugins",
        "config.llm.route_type": "value must be llm/v1/chat",
    ]),
    ConfigCase("llm route_type preserve", ["llm": ["route_type": "preserve"]], [
        "@entity": "'config.llm.route_type' must be 'llm/v1/chat' for AI transformer plugins",
        "config.llm.route_type": "value must be llm/v1/chat",
    ]),
    ConfigCase("http proxy host without port", ["http_proxy_host": "proxy.internal"],
               ["@entity": "all or none of these fields must be set: 'config.http_proxy_host', 'config.http_proxy_port'"]),
    ConfigCase("http proxy port without host", ["http_proxy_port": 3128],
               ["@entity": "all or none of these fields must be set: 'config.http_proxy_host', 'config.http_proxy_port'"]),
    ConfigCase("https proxy host without port", ["https_proxy_host": "proxy.internal"],
               ["@entity": "all or none of these fields must be set: 'config.https_proxy_host', 'config.https_proxy_port'"]),
    ConfigCase("https proxy port without host", ["https_proxy_port": 3128],
               ["@entity": "all or none of these fields must be set: 'config.https_proxy_host', 'config.https_proxy_port'"]),
]

@Test(arguments: transformerNames, invalidTransformerConfigs)
func transformerRejectsInvalidConfigs(_ name: String, _ config: ConfigCase) {
    expectErrors(transformer(name, config.patch), config.expected)
}

@Test func responseTransformerJSONInstructionsConstraints() {
    expectErrors(transformer("ai-response-transformer", ["parse_llm_response_json_instructions": nil]),
                 ["config.parse_llm_response_json_instructions": "required field missing"])
    expectErrors(transformer("ai-response-transformer", ["parse_llm_response_json_instructions": "yes"]),
                 ["config.parse_llm_response_json_instructions": "expected a boolean"])
    _ = expectValid(transformer("ai-response-transformer", ["parse_llm_response_json_instructions": true]))
}

@Test func requestTransformerHasNoJSONInstructions() {
    expectErrors(transformer("ai-request-transformer", ["parse_llm_response_json_instructions": true]),
                 ["config.parse_llm_response_json_instructions": "unknown field"])
}

@Test func requestTransformerCannotBeScopedToAConsumer() {
    expectErrors(transformer("ai-request-transformer", [:], extra: ["consumer": someConsumer]),
                 ["consumer": "value must be null"])
}

@Test func responseTransformerMayBeScopedToAConsumer() {
    _ = expectValid(transformer("ai-response-transformer", [:], extra: ["consumer": someConsumer]))
}

@Test func transformerSchemaViolationMessage() {
    guard case .failure(let errors) = transformer("ai-request-transformer", ["http_proxy_port": 3128]) else {
        Issue.record("expected a schema violation")
        return
    }
    #expect(KongError.schemaViolation(errors).message
        == "schema violation (all or none of these fields must be set: 'config.http_proxy_host', 'config.http_proxy_port')")
}
