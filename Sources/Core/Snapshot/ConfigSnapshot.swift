/// The typed, immutable view of one validated configuration: what the router, the plugin runtime
/// and the credential index are compiled from. Built only from validated rows, so every required
/// field is present; a row that is not (a bug upstream) is left out rather than crashing a node.
public struct ConfigSnapshot: Sendable {
    public let services: [Service]
    public let routes: [Route]
    public let consumers: [Consumer]
    public let consumerGroups: [ConsumerGroup]
    public let memberships: [ConsumerGroupMembership]
    public let plugins: [PluginInstance]
    public let keyAuthCredentials: [KeyAuthCredential]

    public init(_ config: DeclarativeConfig) {
        services = config.rows("services").compactMap(Service.init)
        routes = config.rows("routes").compactMap(Route.init)
        consumers = config.rows("consumers").compactMap(Consumer.init)
        consumerGroups = config.rows("consumer_groups").compactMap(ConsumerGroup.init)
        memberships = config.rows("consumer_group_consumers").compactMap(ConsumerGroupMembership.init)
        plugins = config.rows("plugins").compactMap(PluginInstance.init)
        keyAuthCredentials = config.rows("keyauth_credentials").compactMap(KeyAuthCredential.init)
    }
}

/// A reference type: a request's match carries its service and route around several times, and
/// copying a struct of this many reference-counted fields costs a retain/release per field each time.
public final class Service: Sendable, Equatable {
    /// The fields all come from the stored entity.
    public static func == (lhs: Service, rhs: Service) -> Bool { lhs === rhs || lhs.entity == rhs.entity }

    public let id: String
    public let name: String?
    public let `protocol`: String
    public let host: String
    public let port: Int
    public let path: String?
    public let retries: Int
    public let connectTimeout: Int
    public let writeTimeout: Int
    public let readTimeout: Int
    public let tlsVerify: Bool?
    public let tlsVerifyDepth: Int?
    public let enabled: Bool
    public let tags: [String]
    /// The whole entity as stored.
    public let entity: JSONValue
    /// `entity` as the log serializer writes it, without its unset fields (every logged request
    /// carries it).
    public let kongSerializedEntity: [UInt8]

    /// The upstream speaks TLS (`https`, `grpcs`).
    public var usesTLS: Bool { self.protocol == "https" || self.protocol == "grpcs" }

    init?(_ row: JSONValue) {
        self.entity = row
        self.kongSerializedEntity = LoggedEntity.bytes(row)
        guard let id = row["id"]?.stringValue, let proto = row["protocol"]?.stringValue,
              let host = row["host"]?.stringValue, let port = row["port"]?.intValue else { return nil }
        self.id = id
        self.name = row["name"]?.stringValue
        self.protocol = proto
        self.host = host
        self.port = port
        self.path = row["path"]?.stringValue
        self.retries = row["retries"]?.intValue ?? 5
        self.connectTimeout = row["connect_timeout"]?.intValue ?? 60000
        self.writeTimeout = row["write_timeout"]?.intValue ?? 60000
        self.readTimeout = row["read_timeout"]?.intValue ?? 60000
        self.tlsVerify = row["tls_verify"]?.boolValue
        self.tlsVerifyDepth = row["tls_verify_depth"]?.intValue
        self.enabled = row["enabled"]?.boolValue ?? true
        self.tags = row.stringList("tags") ?? []
    }
}

/// A reference type, as `Service` is (one retain per copy of a match, not one per field).
public final class Route: Sendable, Equatable {
    public static func == (lhs: Route, rhs: Route) -> Bool { lhs === rhs || lhs.entity == rhs.entity }

    public let id: String
    public let name: String?
    public let protocols: [String]
    public let methods: [String]
    public let hosts: [String]
    /// `hosts` was given as a list, even an empty one (Kong ranks such a route as plain-host).
    public let hostsIsList: Bool
    public let paths: [String]
    /// Header name (lower-cased) → accepted values (`~*` prefix: regex).
    public let headers: [String: [String]]
    public let snis: [String]
    public let stripPath: Bool
    public let preserveHost: Bool
    public let regexPriority: Int
    public let pathHandling: String
    public let protocolCheckStatusCode: Int
    public let requestBuffering: Bool
    public let responseBuffering: Bool
    public let serviceID: String?
    public let createdAt: Int
    public let tags: [String]
    /// The whole entity as stored.
    public let entity: JSONValue
    /// `entity` as the log serializer writes it, without its unset fields (every logged request
    /// carries it).
    public let kongSerializedEntity: [UInt8]

    init?(_ row: JSONValue) {
        self.entity = row
        self.kongSerializedEntity = LoggedEntity.bytes(row)
        guard let id = row["id"]?.stringValue else { return nil }
        self.id = id
        self.name = row["name"]?.stringValue
        self.protocols = row.stringList("protocols") ?? ["http", "https"]
        self.methods = row.stringList("methods") ?? []
        self.hosts = row.stringList("hosts") ?? []
        self.hostsIsList = row["hosts"]?.arrayValue != nil
        self.paths = row.stringList("paths") ?? []
        var headers: [String: [String]] = [:]
        for (name, values) in row["headers"]?.objectValue ?? [:] {
            headers[name.lowercased(), default: []] += values.arrayValue?.compactMap(\.stringValue) ?? []
        }
        self.headers = headers
        self.snis = row.stringList("snis") ?? []
        self.stripPath = row["strip_path"]?.boolValue ?? true
        self.preserveHost = row["preserve_host"]?.boolValue ?? false
        self.regexPriority = row["regex_priority"]?.intValue ?? 0
        self.pathHandling = row["path_handling"]?.stringValue ?? "v0"
        self.protocolCheckStatusCode = row["https_redirect_status_code"]?.intValue ?? 426
        self.requestBuffering = row["request_buffering"]?.boolValue ?? true
        self.responseBuffering = row["response_buffering"]?.boolValue ?? true
        self.serviceID = row["service"]?["id"]?.stringValue
        self.createdAt = row["created_at"]?.intValue ?? 0
        self.tags = row.stringList("tags") ?? []
    }
}

/// An entity as Kong's log serializer prints it: the DAO's select without `nulls`, so fields that
/// are not set are left out rather than written `null`.
enum LoggedEntity {
    static func bytes(_ row: JSONValue) -> [UInt8] {
        guard case .object(let members) = row else { return row.serializedBytes(.kong) }
        return JSONValue.object(members.filter { !$0.value.isNull }).serializedBytes(.kong)
    }
}

public struct Consumer: Sendable, Equatable {
    public let id: String
    public let username: String?
    public let customID: String?
    public let tags: [String]
    /// The whole entity as stored.
    public let entity: JSONValue
    /// `entity` as the log serializer writes it.
    public let kongSerializedEntity: [UInt8]

    init?(_ row: JSONValue) {
        self.entity = row
        self.kongSerializedEntity = LoggedEntity.bytes(row)
        guard let id = row["id"]?.stringValue else { return nil }
        self.id = id
        self.username = row["username"]?.stringValue
        self.customID = row["custom_id"]?.stringValue
        self.tags = row.stringList("tags") ?? []
    }
}

public struct ConsumerGroup: Sendable, Equatable {
    public let id: String
    public let name: String
    public let tags: [String]

    init?(_ row: JSONValue) {
        guard let id = row["id"]?.stringValue, let name = row["name"]?.stringValue else { return nil }
        self.id = id
        self.name = name
        self.tags = row.stringList("tags") ?? []
    }
}

public struct ConsumerGroupMembership: Sendable, Equatable {
    public let consumerGroupID: String
    public let consumerID: String

    public init(consumerGroupID: String, consumerID: String) {
        self.consumerGroupID = consumerGroupID
        self.consumerID = consumerID
    }

    init?(_ row: JSONValue) {
        guard let group = row["consumer_group"]?["id"]?.stringValue,
              let consumer = row["consumer"]?["id"]?.stringValue else { return nil }
        consumerGroupID = group
        consumerID = consumer
    }
}

public struct PluginInstance: Sendable, Equatable {
    public let id: String
    public let name: String
    public let instanceName: String?
    public let config: JSONValue
    public let enabled: Bool
    public let protocols: [String]
    public let routeID: String?
    public let serviceID: String?
    public let consumerID: String?
    public let consumerGroupID: String?
    public let tags: [String]
    /// [EE] `ordering.before.access` / `ordering.after.access`: plugin names this one's access
    /// handler runs before / after on the routes it applies to.
    public let accessBefore: [String]
    public let accessAfter: [String]

    init?(_ row: JSONValue) {
        guard let id = row["id"]?.stringValue, let name = row["name"]?.stringValue else { return nil }
        self.id = id
        self.name = name
        self.instanceName = row["instance_name"]?.stringValue
        self.config = row["config"] ?? .object([:])
        self.enabled = row["enabled"]?.boolValue ?? true
        self.protocols = row.stringList("protocols") ?? []
        self.routeID = row["route"]?["id"]?.stringValue
        self.serviceID = row["service"]?["id"]?.stringValue
        self.consumerID = row["consumer"]?["id"]?.stringValue
        self.consumerGroupID = row["consumer_group"]?["id"]?.stringValue
        self.tags = row.stringList("tags") ?? []
        self.accessBefore = row["ordering"]?["before"]?.stringList("access") ?? []
        self.accessAfter = row["ordering"]?["after"]?.stringList("access") ?? []
    }
}

public struct KeyAuthCredential: Sendable, Equatable {
    public let id: String
    public let key: String
    public let consumerID: String
    /// Seconds the credential lives after `createdAt`; nil = forever.
    public let ttl: Int?
    public let createdAt: Int

    init?(_ row: JSONValue) {
        guard let id = row["id"]?.stringValue, let key = row["key"]?.stringValue,
              let consumer = row["consumer"]?["id"]?.stringValue else { return nil }
        self.id = id
        self.key = key
        self.consumerID = consumer
        self.ttl = row["ttl"]?.intValue
        self.createdAt = row["created_at"]?.intValue ?? 0
    }

    /// Whether the credential is still valid at `now` (Unix seconds).
    public func isValid(at now: Int) -> Bool {
        !EntityTTL.hasExpired(ttl: ttl, createdAt: createdAt, at: now)
    }
}

/// Kong's entity `ttl` (key-auth credentials): seconds a row lives after `created_at`, as stored.
/// An expired row is gone for every read, as Kong's database queries skip it before its cleanup
/// timer deletes it.
public enum EntityTTL {
    public static func hasExpired(_ row: JSONValue, at now: Int) -> Bool {
        hasExpired(ttl: row["ttl"]?.intValue, createdAt: row["created_at"]?.intValue ?? 0, at: now)
    }

    /// A ttl of 0 (or none) never expires.
    public static func hasExpired(ttl: Int?, createdAt: Int, at now: Int) -> Bool {
        guard let ttl, ttl > 0 else { return false }
        return now >= createdAt + ttl
    }
}

extension JSONValue {
    func stringList(_ key: String) -> [String]? {
        self[key]?.arrayValue?.compactMap(\.stringValue)
    }
}
