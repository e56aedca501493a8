import Core
import Plugins
import Testing

let minimalContentSafety: JSONValue = [
    "content_safety_url": "https://my-instance.cognitiveservices.azure.com/contentsafety/text:analyze",
]

func contentSafety(_ patch: JSONValue, extra: [String: JSONValue] = [:]) -> Result<[String: JSONValue], ErrorRecord> {
    processPlugin("ai-azure-content-safety", config: merging(minimalContentSafety, patch), extra: extra)
}

let contentSafetyDefaults: [DefaultValue] = [
    DefaultValue("config.content_safety_key", nil),
    DefaultValue("config.azure_api_version", "2023-10-01"),
    DefaultValue("config.azure_use_managed_identity", false),
    DefaultValue("config.azure_client_id", nil),
    DefaultValue("config.azure_client_secret", nil),
    DefaultValue("config.azure_tenant_id", nil),
    DefaultValue("config.categories", nil),
    DefaultValue("config.blocklist_names", nil),
    DefaultValue("config.halt_on_blocklist_hit", true),
    DefaultValue("config.output_type", "FourSeverityLevels"),
    DefaultValue("config.reveal_failure_reason", true),
    DefaultValue("config.text_source", "concatenate_all_content"),
    DefaultValue("config.guarding_mode", "INPUT"),
    DefaultValue("config.response_buffer_size", 100),
    DefaultValue("config.stop_on_error", true),
    DefaultValue("config.ssl_verify", true),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
]

@Test(arguments: contentSafetyDefaults)
func contentSafetyMinimalConfigGetsDefaults(_ expected: DefaultValue) {
    guard let entity = expectValid(contentSafety([:])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

let validContentSafetyConfigs: [ConfigCase] = [
    ConfigCase("full config", [
        "content_safety_key": "abc123",
        "categories": [["name": "Hate", "rejection_level": 2], ["name": "Violence", "rejection_level": 4]],
        "blocklist_names": ["company_competitors"],
        "halt_on_blocklist_hit": false, "output_type": "EightSeverityLevels", "reveal_failure_reason": false,
        "text_source": "concatenate_user_content", "guarding_mode": "BOTH", "response_buffer_size": 4096,
        "stop_on_error": false, "ssl_verify": false, "azure_api_version": "2024-09-01",
    ], [:]),
    ConfigCase("managed identity", [
        "azure_use_managed_identity": true, "azure_client_id": "cid", "azure_client_secret": "secret",
        "azure_tenant_id": "tid",
    ], [:]),
    ConfigCase("vault references", [
        "content_safety_url": "{vault://env/content-safety-url}", "content_safety_key": "{vault://env/content-safety-key}",
    ], [:]),
]

@Test(arguments: validContentSafetyConfigs)
func contentSafetyAcceptsValidConfigs(_ config: ConfigCase) {
    _ = expectValid(contentSafety(config.patch))
}

let invalidContentSafetyConfigs: [ConfigCase] = [
    ConfigCase("content_safety_url required", ["content_safety_url": nil],
               ["config.content_safety_url": "required field missing"]),
    ConfigCase("content_safety_url type", ["content_safety_url": 1], ["config.content_safety_url": "expected a string"]),
    ConfigCase("content_safety_key empty", ["content_safety_key": ""], ["config.content_safety_key": "length must be at least 1"]),
    ConfigCase("azure_api_version empty", ["azure_api_version": ""], ["config.azure_api_version": "length must be at least 1"]),
    ConfigCase("azure_use_managed_identity type", ["azure_use_managed_identity": "true"],
               ["config.azure_use_managed_identity": "expected a boolean"]),
    ConfigCase("azure_client_id type", ["azure_client_id": 1], ["config.azure_client_id": "expected a string"]),
    ConfigCase("azure_client_secret type", ["azure_client_secret": true], ["config.azure_client_secret": "expected a string"]),
    ConfigCase("azure_tenant_id type", ["azure_tenant_id": [1]], ["config.azure_tenant_id": "expected a string"]),
    ConfigCase("categories type", ["categories": ["name": "Hate"]], ["config.categories": "expected an array"]),
    ConfigCase("category name required", ["categories": [["rejection_level": 2]]],
               ["config.categories.0.name": "required field missing"]),
    ConfigCase("category rejection_level required", ["categories": [["name": "Hate"]]],
               ["config.categories.0.rejection_level": "required field missing"]),
    ConfigCase("category rejection_level integer", ["categories": [["name": "Hate", "rejection_level": 1.5]]],
               ["config.categories.0.rejection_level": "expected an integer"]),
    ConfigCase("category unknown field", ["categories": [["name": "Hate", "rejection_level": 2, "severity": 1]]],
               ["config.categories.0.severity": "unknown field"]),
    ConfigCase("blocklist_names elements", ["blocklist_names": ["ok", 2]], ["config.blocklist_names.1": "expected a string"]),
    ConfigCase("halt_on_blocklist_hit type", ["halt_on_blocklist_hit": "yes"],
               ["config.halt_on_blocklist_hit": "expected a boolean"]),
    ConfigCase("output_type one_of", ["output_type": "TwoSeverityLevels"],
               ["config.output_type": "expected one of: FourSeverityLevels, EightSeverityLevels"]),
    ConfigCase("reveal_failure_reason type", ["reveal_failure_reason": 1],
               ["config.reveal_failure_reason": "expected a boolean"]),
    ConfigCase("text_source one_of", ["text_source": "last_message"],
               ["config.text_source": "expected one of: concatenate_all_content, concatenate_user_content"]),
    ConfigCase("guarding_mode one_of", ["guarding_mode": "input"], ["config.guarding_mode": "expected one of: INPUT, OUTPUT, BOTH"]),
    ConfigCase("response_buffer_size type", ["response_buffer_size": "100"],
               ["config.response_buffer_size": "expected a number"]),
    ConfigCase("stop_on_error type", ["stop_on_error": "false"], ["config.stop_on_error": "expected a boolean"]),
    ConfigCase("ssl_verify type", ["ssl_verify": 0], ["config.ssl_verify": "expected a boolean"]),
    ConfigCase("unknown config field", ["log_blocked_content": true], ["config.log_blocked_content": "unknown field"]),
]

@Test(arguments: invalidContentSafetyConfigs)
func contentSafetyRejectsInvalidConfigs(_ config: ConfigCase) {
    expectErrors(contentSafety(config.patch), config.expected)
}

@Test func contentSafetyCannotBeScopedToConsumersOrGroups() {
    expectErrors(contentSafety([:], extra: ["consumer": someConsumer]), ["consumer": "value must be null"])
    expectErrors(contentSafety([:], extra: ["consumer_group": someConsumer]), ["consumer_group": "value must be null"])
}
