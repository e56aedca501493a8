/// The entity schemas of one node: core entities plus the enabled plugins and their entities.
/// Built once from the `plugins` setting; everything that validates entities goes through it.
public struct EntityRegistry: Sendable {
    public let plugins: [String: PluginDefinition]
    public let schemas: [String: EntitySchema]
    /// Whether the node runs without a database (declarative configuration only).
    public let dbless: Bool

    /// Core entities in dependency order (parents before children): the order the declarative
    /// loader resolves references and generates ids.
    public static let coreEntityNames = ["services", "routes", "consumers", "consumer_groups",
                                         "consumer_group_consumers", "plugins"]

    public init(plugins: [PluginDefinition], dbless: Bool = true) {
        self.dbless = dbless
        var byName: [String: PluginDefinition] = [:]
        for plugin in plugins { byName[plugin.name] = plugin }
        self.plugins = byName
        var schemas: [String: EntitySchema] = [
            "services": ServiceSchema.schema,
            "routes": RouteSchema.schema,
            "consumers": ConsumerSchema.schema,
            "consumer_groups": ConsumerGroupSchema.schema,
            "consumer_group_consumers": ConsumerGroupMembershipSchema.schema,
            "plugins": PluginSchema.schema(plugins: plugins, dbless: dbless),
        ]
        for plugin in plugins {
            for entity in plugin.entities { schemas[entity.name] = entity }
        }
        self.schemas = schemas
    }

    /// All entity names, parents before children (plugin entities after core ones).
    public var orderedEntityNames: [String] {
        let extra = schemas.keys.filter { !Self.coreEntityNames.contains($0) }.sorted()
        return Self.coreEntityNames + extra
    }

    public subscript(entity: String) -> EntitySchema? { schemas[entity] }

    /// Plugins sorted as they run: PRIORITY descending, then name.
    public var pluginsByPriority: [PluginDefinition] {
        plugins.values.sorted { $0.priority != $1.priority ? $0.priority > $1.priority : $0.name < $1.name }
    }
}
