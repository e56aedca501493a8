import Core
import Plugins
import Testing

struct PluginIdentity: Sendable, CustomTestStringConvertible {
    let name: String
    let priority: Int
    let version: String
    var testDescription: String { name }
}

let bundledIdentities: [PluginIdentity] = [
    PluginIdentity(name: "key-auth", priority: 1250, version: "3.10.0"),
    PluginIdentity(name: "ai-rate-limiting-advanced", priority: 905, version: "3.10.0"),
    PluginIdentity(name: "ai-request-transformer", priority: 777, version: "3.10.0"),
    PluginIdentity(name: "ai-azure-content-safety", priority: 774, version: "3.10.0"),
    PluginIdentity(name: "ai-prompt-template", priority: 773, version: "3.10.0"),
    PluginIdentity(name: "ai-prompt-decorator", priority: 772, version: "3.10.0"),
    PluginIdentity(name: "ai-prompt-guard", priority: 771, version: "3.10.0"),
    PluginIdentity(name: "ai-proxy", priority: 770, version: "3.10.0"),
    PluginIdentity(name: "ai-response-transformer", priority: 768, version: "3.10.0"),
    PluginIdentity(name: "file-log", priority: 9, version: "3.10.0"),
]

@Test(arguments: bundledIdentities)
func bundledPluginIdentity(_ identity: PluginIdentity) throws {
    let plugin = try #require(registry.plugins[identity.name])
    #expect(plugin.priority == identity.priority)
    #expect(plugin.version == identity.version)
}

@Test func bundledPluginsRunInPriorityOrder() {
    let expected: [String] = bundledIdentities.map(\.name)
    #expect(registry.pluginsByPriority.map(\.name) == expected)
    #expect(BundledPlugins.all.map(\.name) == expected)
}

@Test func unknownPluginNameIsRejected() {
    let result = processPlugin("foo", config: [:])
    expectErrors(result, ["name": "plugin 'foo' not enabled; add it to the 'plugins' configuration property"])
    guard case .failure(let errors) = result else { return }
    #expect(KongError.schemaViolation(errors).message
        == "schema violation (name: plugin 'foo' not enabled; add it to the 'plugins' configuration property)")
}

@Test func pluginNotInTheSettingIsNotEnabled() throws {
    let only = EntityRegistry(plugins: try BundledPlugins.definitions(for: ["key-auth"]))
    let result = only["plugins"]!.process(["name": "ai-proxy", "config": minimalProxy], context: .insert)
    expectErrors(result, ["name": "plugin 'ai-proxy' not enabled; add it to the 'plugins' configuration property"])
}

struct PluginsSettingCase: Sendable, CustomTestStringConvertible {
    let setting: [String]
    let names: [String]
    var testDescription: String { setting.joined(separator: ",") }
}

let pluginsSettingCases: [PluginsSettingCase] = [
    PluginsSettingCase(setting: ["bundled"], names: bundledIdentities.map(\.name)),
    PluginsSettingCase(setting: ["off"], names: []),
    PluginsSettingCase(setting: ["off", "key-auth"], names: []),
    PluginsSettingCase(setting: [], names: []),
    PluginsSettingCase(setting: ["ai-proxy", "key-auth"], names: ["ai-proxy", "key-auth"]),
    PluginsSettingCase(setting: [" ai-proxy ", "", "ai-proxy"], names: ["ai-proxy"]),
    PluginsSettingCase(setting: ["key-auth", "off"], names: ["key-auth"]),
    PluginsSettingCase(setting: ["ai-proxy", "bundled"], names: ["ai-proxy", "key-auth", "ai-rate-limiting-advanced",
                                                                 "ai-request-transformer", "ai-azure-content-safety",
                                                                 "ai-prompt-template", "ai-prompt-decorator", "ai-prompt-guard",
                                                                 "ai-response-transformer", "file-log"]),
]

@Test(arguments: pluginsSettingCases)
func pluginsSettingResolution(_ testCase: PluginsSettingCase) throws {
    #expect(try BundledPlugins.definitions(for: testCase.setting).map(\.name) == testCase.names)
}

@Test func unknownPluginInSettingThrows() {
    #expect(throws: PluginsSettingError(name: "rate-limiting")) {
        try BundledPlugins.definitions(for: ["bundled", "rate-limiting"])
    }
    do {
        _ = try BundledPlugins.definitions(for: ["foo"])
        Issue.record("expected an error")
    } catch {
        #expect(String(describing: error) == "unknown plugin in 'plugins' setting: 'foo'")
    }
    // A Kong plugin this build does not have is named as such, not as a typo.
    #expect(PluginsSettingError(name: "prometheus").description
            == "plugin 'prometheus' in the 'plugins' setting is bundled with Kong but not provided by Silverback; remove it from the setting")
}
