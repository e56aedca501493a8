import Core
import Foundation

/// The plugins this build ships, and the resolution of Kong's `plugins` setting against them.
public enum BundledPlugins {
    /// In PRIORITY order (higher runs first).
    public static let all: [PluginDefinition] = [
        KeyAuthPlugin.definition,
        AIRateLimitingAdvancedPlugin.definition,
        AIRequestTransformerPlugin.definition,
        AIAzureContentSafetyPlugin.definition,
        AIPromptTemplatePlugin.definition,
        AIPromptDecoratorPlugin.definition,
        AIPromptGuardPlugin.definition,
        AIProxyPlugin.definition,
        AIResponseTransformerPlugin.definition,
        FileLogPlugin.definition,
    ]

    /// Runtime handlers of the plugins that have one so far. A configured plugin without a handler
    /// is validated but does not run (the CLI says so at start).
    public static let factories = factories(environment: { ProcessInfo.processInfo.environment })

    /// `factories`, with the environment handlers read (vault references, cloud credentials, the
    /// token endpoints' overrides) taken from `environment`, called each time one is built, and
    /// DB mode's shared counters (ai-rate-limiting-advanced's `cluster` strategy).
    public static func factories(environment read: @escaping @Sendable () -> [String: String],
                                 counterDatabase: (any SharedCounterStore)? = nil) -> [PluginFactory] { [
        PluginFactory(name: KeyAuthPlugin.definition.name, priority: KeyAuthPlugin.definition.priority) { instance, directory in
            KeyAuthHandler(config: instance.config, directory: directory)
        },
        PluginFactory(name: AIRateLimitingAdvancedPlugin.definition.name,
                      priority: AIRateLimitingAdvancedPlugin.definition.priority) { instance, _ in
            try AIRateLimitingAdvancedPlugin.makeHandler(instance, environment: read(), counterDatabase: counterDatabase)
        },
        PluginFactory(name: AIProxyPlugin.definition.name, priority: AIProxyPlugin.definition.priority) { instance, _ in
            let environment = read()
            guard let config = AIProxyConfig(instance: instance, environment: environment) else {
                throw PluginConfigurationError(plugin: "ai-proxy")
            }
            return AIProxyHandler(config: config, environment: environment)
        },
        transformerFactory(AIRequestTransformerPlugin.definition, read) { AIRequestTransformerHandler(introspection: $0) },
        transformerFactory(AIResponseTransformerPlugin.definition, read) { AIResponseTransformerHandler(introspection: $0) },
        PluginFactory(name: AIAzureContentSafetyPlugin.definition.name,
                      priority: AIAzureContentSafetyPlugin.definition.priority) { instance, _ in
            try AIAzureContentSafetyPlugin.makeHandler(instance, environment: read())
        },
        PluginFactory(name: AIPromptTemplatePlugin.definition.name, priority: AIPromptTemplatePlugin.definition.priority) { instance, _ in
            try AIPromptTemplatePlugin.makeHandler(instance)
        },
        PluginFactory(name: AIPromptDecoratorPlugin.definition.name, priority: AIPromptDecoratorPlugin.definition.priority) { instance, _ in
            try AIPromptDecoratorPlugin.makeHandler(instance)
        },
        PluginFactory(name: AIPromptGuardPlugin.definition.name, priority: AIPromptGuardPlugin.definition.priority) { instance, _ in
            try AIPromptGuardPlugin.makeHandler(instance)
        },
        PluginFactory(name: FileLogPlugin.definition.name, priority: FileLogPlugin.definition.priority) { instance, _ in
            FileLogHandler(config: instance.config)
        },
    ] }

    /// ai-request-transformer and ai-response-transformer: one typed configuration and LLM call,
    /// two handlers.
    private static func transformerFactory(_ definition: PluginDefinition,
                                           _ read: @escaping @Sendable () -> [String: String],
                                           handler: @escaping @Sendable (LLMIntrospection) -> any PluginHandler) -> PluginFactory {
        PluginFactory(name: definition.name, priority: definition.priority) { instance, _ in
            let environment = read()
            guard let config = TransformerConfig(plugin: definition.name, instance: instance, environment: environment) else {
                throw PluginConfigurationError(plugin: definition.name)
            }
            return handler(LLMIntrospection(config: config, environment: environment))
        }
    }

    /// Resolves the `plugins` setting (comma-separated list, already split): `bundled` stands for
    /// every bundled plugin, `off` as the first entry disables all plugins (elsewhere it is ignored,
    /// as Kong does), other entries are plugin names. Duplicates collapse, first occurrence wins.
    public static func definitions(for setting: [String]) throws -> [PluginDefinition] {
        let entries = setting.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        if entries.first == "off" { return [] }
        var result: [PluginDefinition] = []
        var seen: Set<String> = []
        func add(_ plugin: PluginDefinition) {
            if seen.insert(plugin.name).inserted { result.append(plugin) }
        }
        for entry in entries where entry != "off" {
            if entry == "bundled" {
                all.forEach(add)
            } else if let plugin = all.first(where: { $0.name == entry }) {
                add(plugin)
            } else {
                throw PluginsSettingError(name: entry)
            }
        }
        return result
    }
}

/// A validated configuration a handler could not be built from (a schema and handler mismatch).
public struct PluginConfigurationError: Error, Sendable, CustomStringConvertible {
    public let plugin: String
    public var description: String { "\(plugin): configuration could not be compiled" }
}

/// A name in the `plugins` setting that is no bundled plugin.
public struct PluginsSettingError: Error, Equatable, Sendable, CustomStringConvertible {
    public let name: String
    public init(name: String) { self.name = name }
    public var description: String {
        Self.kongBundled.contains(name)
            ? "plugin '\(name)' in the 'plugins' setting is bundled with Kong but not provided by Silverback; remove it from the setting"
            : "unknown plugin in 'plugins' setting: '\(name)'"
    }

    /// The plugins Kong 3.10 bundles (`kong/constants.lua`), so a list copied from a Kong OSS node
    /// is told apart from a typo (Enterprise-only names still read as unknown).
    static let kongBundled: Set<String> = [
        "jwt", "acl", "correlation-id", "cors", "oauth2", "tcp-log", "udp-log", "http-log", "file-log",
        "syslog", "loggly", "datadog", "ldap-auth", "statsd", "bot-detection", "aws-lambda",
        "request-termination", "prometheus", "proxy-cache", "session", "acme", "grpc-gateway", "grpc-web",
        "pre-function", "post-function", "azure-functions", "zipkin", "opentelemetry", "ai-proxy",
        "ai-prompt-decorator", "ai-prompt-template", "ai-prompt-guard", "ai-request-transformer",
        "ai-response-transformer", "standard-webhooks", "redirect", "basic-auth", "hmac-auth",
        "ip-restriction", "request-size-limiting", "rate-limiting", "response-ratelimiting",
        "request-transformer", "response-transformer", "key-auth",
    ]
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
