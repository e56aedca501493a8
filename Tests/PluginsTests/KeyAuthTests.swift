import Core
import Plugins
import Testing

func keyAuth(_ config: JSONValue?, extra: [String: JSONValue] = [:]) -> Result<[String: JSONValue], ErrorRecord> {
    processPlugin("key-auth", config: config, extra: extra)
}

let keyAuthDefaults: [DefaultValue] = [
    DefaultValue("config.key_names", ["apikey"]),
    DefaultValue("config.hide_credentials", false),
    DefaultValue("config.anonymous", nil),
    DefaultValue("config.key_in_header", true),
    DefaultValue("config.key_in_query", true),
    DefaultValue("config.key_in_body", false),
    DefaultValue("config.run_on_preflight", true),
    DefaultValue("config.realm", nil),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
    DefaultValue("enabled", true),
]

/// No config at all: the required record is expanded with its defaults.
@Test(arguments: keyAuthDefaults)
func keyAuthWithoutConfigGetsDefaults(_ expected: DefaultValue) {
    guard let entity = expectValid(keyAuth(nil)) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

@Test func keyAuthAcceptsAFullConfig() {
    let result = keyAuth([
        "key_names": ["apikey", "X-API-Key", "x_token"], "hide_credentials": true, "anonymous": "guest",
        "key_in_header": true, "key_in_query": false, "key_in_body": true, "run_on_preflight": false,
        "realm": "silverback",
    ])
    guard let entity = expectValid(result) else { return }
    let keyNames: JSONValue = ["apikey", "X-API-Key", "x_token"]
    #expect(lookup(entity, "config.key_names") == keyNames)
    #expect(lookup(entity, "config.realm") == JSONValue.string("silverback"))
}

let invalidKeyAuthConfigs: [ConfigCase] = [
    ConfigCase("key_names required", ["key_names": nil], ["config.key_names": "required field missing"]),
    ConfigCase("key_names type", ["key_names": "apikey"], ["config.key_names": "expected an array"]),
    ConfigCase("key_names header syntax", ["key_names": ["apikey", "api key"]],
               ["config.key_names.1": "bad header name 'api key', allowed characters are A-Z, a-z, 0-9, '_', and '-'"]),
    ConfigCase("hide_credentials required", ["hide_credentials": nil], ["config.hide_credentials": "required field missing"]),
    ConfigCase("hide_credentials type", ["hide_credentials": "yes"], ["config.hide_credentials": "expected a boolean"]),
    ConfigCase("anonymous type", ["anonymous": 42], ["config.anonymous": "expected a string"]),
    ConfigCase("anonymous empty", ["anonymous": ""], ["config.anonymous": "length must be at least 1"]),
    ConfigCase("key_in_header required", ["key_in_header": nil], ["config.key_in_header": "required field missing"]),
    ConfigCase("key_in_query type", ["key_in_query": 1], ["config.key_in_query": "expected a boolean"]),
    ConfigCase("key_in_body required", ["key_in_body": nil], ["config.key_in_body": "required field missing"]),
    ConfigCase("run_on_preflight type", ["run_on_preflight": "true"], ["config.run_on_preflight": "expected a boolean"]),
    ConfigCase("realm type", ["realm": ["x"]], ["config.realm": "expected a string"]),
    ConfigCase("unknown config field", ["key_in_cookie": true], ["config.key_in_cookie": "unknown field"]),
]

@Test(arguments: invalidKeyAuthConfigs)
func keyAuthRejectsInvalidConfigs(_ config: ConfigCase) {
    expectErrors(keyAuth(config.patch), config.expected)
}

@Test func keyAuthCannotBeScopedToAConsumer() {
    expectErrors(keyAuth(nil, extra: ["consumer": someConsumer]), ["consumer": "value must be null"])
}

@Test func keyAuthRestrictsProtocolsToHTTP() {
    expectErrors(keyAuth(nil, extra: ["protocols": ["tcp"]]), ["protocols.0": "expected one of: grpc, grpcs, http, https"])
}

@Test func keyAuthBringsItsCredentialEntity() {
    #expect(registry["keyauth_credentials"] != nil)
    #expect(registry.orderedEntityNames.contains("keyauth_credentials"))
    #expect(EntityRegistry(plugins: [AIProxyPlugin.definition])["keyauth_credentials"] == nil)
}
