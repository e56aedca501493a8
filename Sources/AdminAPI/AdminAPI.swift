import Core
import Foundation
import NIOConcurrencyHelpers

/// Kong's Admin API over a running gateway (spec §3, §4). In DB-less mode entity reads come from
/// the loaded configuration, writes are refused with Kong's 405 objects after validation, and
/// `POST /config` replaces the whole configuration atomically. In DB mode entities are read from
/// and written to the `EntityDatabase`, whose commits rebuild the proxy's snapshot.
public final class AdminAPI: Sendable {
    let gateway: Gateway
    let registry: EntityRegistry
    let exposedEntities: [(adminName: String, entity: String)]
    let loader: DeclarativeLoader
    let settings: Settings
    /// Where the last accepted `POST /config` is kept, so it survives a restart.
    let persistencePath: String?
    let stateBox: NIOLockedValueBox<State>
    /// DB mode's entities; nil in DB-less mode.
    public let database: EntityDatabase?

    struct State {
        var hash: String
        var loading = false
    }

    public init(gateway: Gateway, loader: DeclarativeLoader, settings: Settings, persistencePath: String?,
                initialHash: String? = nil, database: EntityDatabase? = nil) {
        self.database = database
        self.gateway = gateway
        self.registry = loader.registry
        exposedEntities = Self.exposedEntities(of: loader.registry)
        self.loader = loader
        self.settings = settings
        self.persistencePath = persistencePath
        stateBox = NIOLockedValueBox(State(hash: initialHash ?? DeclarativeConfig.emptyHash))
    }

    /// Kong's file name for the configuration kept by `POST /config`, under `prefix`.
    public static func persistedConfigPath(prefix: String) -> String { prefix + "/silverback-config.json" }

    var configurationHash: String { stateBox.withLockedValue { $0.hash } }

    // MARK: Entry point

    /// `checkingToken` false: the status listener's `/status` and `/status/ready`, which Kong
    /// serves without authentication (probes carry no token).
    public func respond(to request: AdminRequest, checkingToken: Bool = true) async -> AdminResponse {
        let started = ContinuousClock.now
        var response: AdminResponse
        if checkingToken, let token = settings.adminToken,
           !Self.constantTimeEquals(request.header("kong-admin-token") ?? "", token) {
            response = .message(401, "Invalid credentials. Token or User credentials required")
        } else if request.method == "OPTIONS" {
            response = options(request)
        } else {
            response = await route(request)
            if request.method == "HEAD" { response.body = [] }
        }
        let origin = request.header("origin") ?? "*"
        response.headers.append(("Access-Control-Allow-Origin", origin))
        response.headers.append(("Access-Control-Allow-Credentials", "true"))
        if settings.proxy.responseHeaders.server { response.headers.append(("Server", KongVersion.serverToken)) }
        if settings.proxy.responseHeaders.adminLatency {
            let elapsed = ContinuousClock.now - started
            response.headers.append(("X-Kong-Admin-Latency", String(elapsed.components.seconds * 1000
                + elapsed.components.attoseconds / 1_000_000_000_000_000)))
        }
        return response
    }

    /// Compares without an early exit, so response time does not reveal how much of a guess matched.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }

    /// Segments of the path, percent-decoded; a trailing `/` is tolerated.
    static func segments(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map { $0.removingPercentEncoding ?? String($0) }
    }

    private func options(_ request: AdminRequest) -> AdminResponse {
        let methods = allowedMethods(Self.segments(request.path))
        guard !methods.isEmpty else { return .notFound }
        let allow = Self.allowHeader(methods)
        return AdminResponse(status: 204, headers: [
            ("Allow", allow), ("Access-Control-Allow-Methods", allow),
            ("Access-Control-Allow-Headers", request.header("access-control-request-headers") ?? "Content-Type"),
        ])
    }

    /// `Allow` value: the path's methods plus OPTIONS, and HEAD wherever GET is.
    static func allowHeader(_ methods: [String]) -> String {
        (methods + ["OPTIONS"] + (methods.contains("GET") ? ["HEAD"] : [])).sorted().joined(separator: ", ")
    }

    /// The methods a path answers (empty: unknown path).
    func allowedMethods(_ segments: [String]) -> [String] {
        switch segments.count {
        case 0: return ["GET"]
        case 1:
            if ["status", "endpoints", "tags"].contains(segments[0]) { return ["GET"] }
            if segments[0] == "config" { return ["GET", "POST"] }
            if entity(forAdminName: segments[0]) != nil { return ["GET", "POST"] }
        case 2:
            if segments == ["plugins", "enabled"] || segments == ["status", "ready"] || segments[0] == "schemas"
                || segments[0] == "tags" { return ["GET"] }
            if entity(forAdminName: segments[0]) != nil { return ["GET", "PUT", "PATCH", "DELETE"] }
        case 3:
            if Self.isMembership(segments) { return ["GET", "POST", "DELETE"] }
            if segments[0] == "plugins" && segments[1] == "schema" { return ["GET"] }
            if segments[0] == "schemas" {
                if segments[1] == "plugins" { return segments[2] == "validate" ? ["POST"] : ["GET"] }
                return segments[2] == "validate" ? ["POST"] : []
            }
            if let parent = entity(forAdminName: segments[0]) {
                if registry[parent]?.foreignKeys.contains(where: { $0.field == segments[2] }) == true {
                    return ["GET", "PUT", "PATCH", "DELETE"]
                }
                if nestedChild(parent: parent, nestedName: segments[2]) != nil { return ["GET", "POST"] }
            }
        case 4:
            if Self.isMembership(Array(segments.prefix(3))) { return ["DELETE"] }
            if let parent = entity(forAdminName: segments[0]), nestedChild(parent: parent, nestedName: segments[2]) != nil {
                return ["GET", "PUT", "PATCH", "DELETE"]
            }
        default: break
        }
        return []
    }

    private func route(_ request: AdminRequest) async -> AdminResponse {
        let segments = Self.segments(request.path)
        let allowed = allowedMethods(segments)
        guard !allowed.isEmpty else { return .notFound }
        let method = request.method == "HEAD" ? "GET" : request.method
        guard allowed.contains(method) else {
            // Kong's body; the Allow header as RFC 9110 asks for it.
            var response = AdminResponse.methodNotAllowed
            response.headers.append(("Allow", Self.allowHeader(allowed)))
            return response
        }

        switch segments.count {
        case 0: return root()
        case 1 where segments[0] == "status": return await status(request)
        case 2 where segments == ["status", "ready"]: return await readiness()
        case 1 where segments[0] == "endpoints": return endpoints()
        case 1 where segments[0] == "tags": return tags(request, only: nil)
        case 2 where segments[0] == "tags": return tags(request, only: segments[1])
        case 3 where Self.isMembership(segments), 4 where Self.isMembership(Array(segments.prefix(3))):
            return await membership(segments, method: method, request: request)
        case 1 where segments[0] == "config": return method == "GET" ? exportConfig() : await postConfig(request)
        case 2 where segments == ["plugins", "enabled"]:
            return .json(200, ["enabled_plugins": .array(registry.plugins.keys.sorted().map(JSONValue.string))])
        case 2 where segments[0] == "schemas": return entitySchema(segments[1])
        case 3 where segments[0] == "schemas" && segments[1] == "plugins":
            return segments[2] == "validate" ? validatePlugin(request) : pluginSchema(segments[2])
        case 3 where segments[0] == "schemas": return validateEntity(segments[1], request)
        case 3 where segments[0] == "plugins" && segments[1] == "schema": return pluginConfigSchema(segments[2])
        default: return await entityEndpoint(segments, method: method, request: request)
        }
    }

    // MARK: Information endpoints

    private func root() -> AdminResponse {
        var available: [String: JSONValue] = [:]
        for plugin in registry.plugins.values {
            available[plugin.name] = ["version": .string(plugin.version), "priority": .number(Double(plugin.priority))]
        }
        let configured = Set(gateway.holder.current.snapshot.plugins.map(\.name)).sorted()
        return .json(200, [
            "tagline": "Welcome to kong",
            "version": .string(KongVersion.number),
            "edition": "community",
            "hostname": .string(ProcessInfo.processInfo.hostName),
            "plugins": ["available_on_server": .object(available),
                        "enabled_in_cluster": .array(configured.map(JSONValue.string))],
            "configuration": configurationJSON(),
        ])
    }

    /// The node's settings; secrets show as `******`.
    private func configurationJSON() -> JSONValue {
        func listen(_ list: [ListenAddress]) -> JSONValue {
            .array(list.map { .string(([ "\($0.host):\($0.port)"] + $0.flags).joined(separator: " ")) })
        }
        return [
            "database": .string(settings.database.rawValue),
            "declarative_config": settings.declarativeConfig.map(JSONValue.string) ?? .null,
            "proxy_listen": listen(settings.proxyListen),
            "admin_listen": listen(settings.adminListen),
            "prefix": .string(settings.prefix),
            "log_level": .string(settings.logLevel),
            "plugins": .array(settings.plugins.map(JSONValue.string)),
            "admin_token": settings.adminToken == nil ? .null : "******",
        ]
    }

    private func status(_ request: AdminRequest) async -> AdminResponse {
        let memory: JSONValue
        switch MemoryReport.units(unit: request.queryValue("unit"), scale: request.queryValue("scale")) {
        case .failure(let error): return .message(400, error.message)
        case .success(let units): memory = MemoryReport.current(in: units)
        }
        let stats = gateway.statistics
        var body: [String: JSONValue] = [
            "memory": memory,
            "server": [
                "total_requests": .number(Double(stats.requests)),
                "connections_active": .number(Double(stats.active)),
                "connections_accepted": .number(Double(stats.accepted)),
                "connections_handled": .number(Double(stats.accepted)),
                "connections_reading": 0,
                "connections_writing": .number(Double(stats.busy)),
                "connections_waiting": .number(Double(stats.active - stats.busy)),
            ],
        ]
        // Kong always reports `database`; DB-less, it is the configuration in memory (reachable).
        if settings.database == .off {
            body["configuration_hash"] = .string(configurationHash)
            body["database"] = ["reachable": true]
        } else {
            body["database"] = ["reachable": .bool(await databaseIsReachable())]
        }
        return .json(200, .object(body))
    }

    /// Kong's `/status/ready` (3.3+, the Helm chart's readiness probe): 200 `ready` once the node
    /// can serve its configuration; 503 while a DB-less node has none or the database does not
    /// answer.
    private func readiness() async -> AdminResponse {
        if settings.database == .off {
            if configurationHash == DeclarativeConfig.emptyHash {
                return .message(503, "no configuration available (empty configuration present)")
            }
        } else if !(await databaseIsReachable()) {
            return .message(503, "failed to connect to database")
        }
        return .message(200, "ready")
    }

    /// Kong's `/status` asks the database (`kong.db:connect()`) and, when that fails, still
    /// answers 200 with `reachable: false` and logs why.
    private func databaseIsReachable() async -> Bool {
        let problem: String
        if let database {
            do throws(StoreError) {
                try await database.store.ping()
                return true
            } catch {
                problem = error.message
            }
        } else {
            problem = "no database opened"
        }
        ErrorLog.report("failed to connect to \(settings.database.rawValue) during /status endpoint check: \(problem)")
        return false
    }

    private func endpoints() -> AdminResponse {
        var paths: Set<String> = ["/", "/status", "/endpoints", "/config", "/plugins/enabled", "/schemas/{db_entity_name}",
                                  "/schemas/{db_entity_name}/validate", "/schemas/plugins/{name}", "/schemas/plugins/validate",
                                  "/tags", "/tags/{tags}",
                                  "/consumer_groups/{consumer_groups}/consumers",
                                  "/consumer_groups/{consumer_groups}/consumers/{consumers}",
                                  "/consumers/{consumers}/consumer_groups",
                                  "/consumers/{consumers}/consumer_groups/{consumer_groups}"]
        for (adminName, entity) in exposedEntities {
            let key = "{\(registry[entity]!.singularName)s}"
            paths.insert("/\(adminName)")
            paths.insert("/\(adminName)/\(key)")
            for (field, reference) in registry[entity]!.foreignKeys where exposedName(reference) != nil {
                paths.insert("/\(adminName)/\(key)/\(field)")
                let parentAdmin = exposedName(reference)!
                let nested = registry[entity]!.nestedAdminName ?? adminName
                let parentKey = "{\(registry[reference]!.singularName)s}"
                paths.insert("/\(parentAdmin)/\(parentKey)/\(nested)")
                paths.insert("/\(parentAdmin)/\(parentKey)/\(nested)/\(key)")
            }
        }
        return .json(200, ["data": .array(paths.sorted().map(JSONValue.string))])
    }

    // MARK: Schemas

    private func entitySchema(_ name: String) -> AdminResponse {
        guard let schema = registry[name] else { return .message(404, "No entity named '\(name)'") }
        return .json(200, schema.exportJSON)
    }

    private func pluginSchema(_ name: String) -> AdminResponse {
        guard let export = registry["plugins"]?.exportSubschema(name) else { return .message(404, "No plugin named '\(name)'") }
        return .json(200, export)
    }

    /// `GET /plugins/schema/{name}` (deprecated in Kong for `/schemas/plugins/{name}`): the plugin's
    /// `config` record only.
    private func pluginConfigSchema(_ name: String) -> AdminResponse {
        guard let plugin = registry.plugins[name] else { return .message(404, "No plugin named '\(name)'") }
        return .json(200, Field.record(plugin.config).required().exportJSON)
    }

    private func validateEntity(_ name: String, _ request: AdminRequest) -> AdminResponse {
        guard let schema = registry[name] else { return .message(404, "No entity named '\(name)'") }
        return validate(schema, request)
    }

    private func validatePlugin(_ request: AdminRequest) -> AdminResponse {
        validate(registry["plugins"]!, request)
    }

    private func validate(_ schema: EntitySchema, _ request: AdminRequest) -> AdminResponse {
        let body: [String: JSONValue]
        do {
            body = try RequestBodyDecoder.decode(request) { schema.formCoercions(schema.record, for: $0, stored: nil) }
        } catch {
            return bodyFailure(error)
        }
        switch schema.process(body, context: .insert) {
        case .success: return .message(200, "schema validation successful")
        case .failure(let errors): return .error(.schemaViolation(errors))
        }
    }

    func bodyFailure(_ failure: RequestBodyDecoder.Failure) -> AdminResponse {
        switch failure {
        case .invalidJSON: return .message(400, "Cannot parse JSON body")
        case .unsupportedMediaType: return AdminResponse(status: 415)
        case .multipleContentTypes:
            return AdminResponse(status: 400, headers: [("Content-Type", "text/plain; charset=utf-8")],
                                 body: Array("Multiple Content-Type headers not allowed".utf8))
        }
    }

    // MARK: Entity names

    /// Admin name → entity name, for the entities served here (the registry never changes:
    /// computed once).
    static func exposedEntities(of registry: EntityRegistry) -> [(adminName: String, entity: String)] {
        registry.orderedEntityNames.compactMap { name in
            guard name != "consumer_group_consumers", let schema = registry[name] else { return nil }
            return (schema.adminName ?? name, name)
        }
    }

    func entity(forAdminName name: String) -> String? {
        exposedEntities.first(where: { $0.adminName == name })?.entity
    }

    func exposedName(_ entity: String) -> String? {
        exposedEntities.first(where: { $0.entity == entity })?.adminName
    }

    /// The child entity nested under `parent` as `nestedName` (e.g. consumers → key-auth), with its link field.
    func nestedChild(parent: String, nestedName: String) -> (entity: String, field: String)? {
        for (adminName, entity) in exposedEntities {
            guard let schema = registry[entity], (schema.nestedAdminName ?? adminName) == nestedName else { continue }
            if let link = schema.foreignKeys.first(where: { $0.reference == parent }) { return (entity, link.field) }
        }
        return nil
    }
}
