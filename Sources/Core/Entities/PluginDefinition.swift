/// What a plugin declares to the core: identity, execution order, where it may run and its
/// configuration schema. Phase handlers join this in the data-plane work.
public struct PluginDefinition: Sendable {
    public var name: String
    /// Higher runs first in every phase (Kong's PRIORITY).
    public var priority: Int
    public var version: String
    /// The plugin's `config` record.
    public var config: RecordSchema
    /// The plugin's `protocols` field (default and allowed values).
    public var protocols: Field
    /// Scopes the plugin refuses (`consumer = typedefs.no_consumer` and friends).
    public var forbiddenScopes: Set<Scope>
    /// Plugin-level entity checks (fields addressed as `config.x`).
    public var checks: [EntityCheck]
    /// Entities the plugin brings (key-auth: `keyauth_credentials`).
    public var entities: [EntitySchema]
    /// Checks that apply only on DB-less nodes (Kong's schemas consult `kong.configuration.database`
    /// for them, e.g. ai-rate-limiting-advanced refusing the `cluster` strategy).
    public var dblessChecks: [EntityCheck] = []

    public enum Scope: String, Sendable, Hashable { case consumer, route, service, consumerGroup = "consumer_group" }

    public init(name: String, priority: Int, version: String, config: RecordSchema,
                protocols: Field = Typedefs.protocolsHTTP, forbiddenScopes: Set<Scope> = [],
                checks: [EntityCheck] = [], entities: [EntitySchema] = []) {
        self.name = name
        self.priority = priority
        self.version = version
        self.config = config
        self.protocols = protocols
        self.forbiddenScopes = forbiddenScopes
        self.checks = checks
        self.entities = entities
    }

    /// The plugins-entity subschema this plugin contributes.
    func subschema(dbless: Bool) -> Subschema {
        var fields: [(name: String, field: Field)] = [("config", Field.record(config).required()), ("protocols", protocols)]
        for scope in forbiddenScopes.sorted(by: { $0.rawValue < $1.rawValue }) {
            switch scope {
            case .consumer: fields.append(("consumer", Typedefs.noConsumer))
            case .route: fields.append(("route", Typedefs.noRoute))
            case .service: fields.append(("service", Typedefs.noService))
            case .consumerGroup: fields.append(("consumer_group", Typedefs.noConsumerGroup))
            }
        }
        return Subschema(fields: fields, checks: dbless ? dblessChecks + checks : checks)
    }
}

/// `plugins` (`kong/db/schema/entities/plugins.lua`); the `config` is specialised per plugin.
public enum PluginSchema {
    public static let subschemaError = "plugin '%s' not enabled; add it to the 'plugins' configuration property"

    public static func schema(plugins: [PluginDefinition], dbless: Bool) -> EntitySchema {
        let accessList = Field.record(["access": Field.array(of: Field.string)]).required(false)
        var schema = EntitySchema(name: "plugins", singularName: "plugin", record: RecordSchema([
            "id": Typedefs.uuid,
            "name": Field.string.required(),
            "instance_name": Typedefs.utf8Name,
            "created_at": Typedefs.autoTimestamp,
            "updated_at": Typedefs.autoTimestamp,
            "route": Field.foreign("routes").default(.null).onDelete("cascade"),
            "service": Field.foreign("services").default(.null).onDelete("cascade"),
            "consumer": Field.foreign("consumers").default(.null).onDelete("cascade"),
            "consumer_group": Field.foreign("consumer_groups").default(.null).onDelete("cascade"),
            "config": Field(.abstractRecord),
            "protocols": Typedefs.protocols,
            "enabled": Field.boolean.required().default(true),
            "tags": Typedefs.tags,
            "ordering": Field.record(["before": accessList, "after": accessList]).required(false),
        ], checks: [.mutuallyExclusive(["consumer", "consumer_group"])]))
        schema.endpointKey = "instance_name"
        schema.cacheKey = ["name", "route", "service", "consumer"]
        schema.subschemaKey = "name"
        schema.subschemaError = subschemaError
        for plugin in plugins { schema.subschemas[plugin.name] = plugin.subschema(dbless: dbless) }
        return schema
    }
}
