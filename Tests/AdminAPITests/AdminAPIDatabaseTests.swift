@testable import AdminAPI
import Core
import Foundation
import Testing

/// The Admin API in DB mode (spec §3.2, §3.3), through `AdminAPI.respond`: writes go through
/// `EntityDatabase` (over the in-memory store) and every commit is applied to the gateway.
struct AdminAPIDatabaseTests {
    /// A plugin that may be scoped to a consumer (key-auth may not).
    static let requestTermination = PluginDefinition(
        name: "request-termination", priority: 2, version: "3.10.0",
        config: RecordSchema(["status_code": Field.integer.required().default(503)]))

    static let databaseOnly = "this endpoint is only available when Kong is configured to not use a database"

    let registry: EntityRegistry
    let loader: DeclarativeLoader
    let gateway: Gateway
    let database: EntityDatabase
    let api: AdminAPI

    init() async throws {
        let registry = EntityRegistry(plugins: [AdminAPITests.keyAuth, Self.requestTermination], dbless: false)
        let loader = DeclarativeLoader(registry: registry)
        let gateway = Gateway(loader: loader, factories: [], threads: 1)
        let database = try await EntityDatabase(store: InMemoryEntityStore(registry: registry), dao: EntityDAO(registry: registry),
                                                onChange: { try? gateway.apply($0) })
        self.registry = registry
        self.loader = loader
        self.gateway = gateway
        self.database = database
        api = Self.makeAPI(gateway: gateway, loader: loader, database: database)
    }

    static func makeAPI(gateway: Gateway, loader: DeclarativeLoader, database: EntityDatabase) -> AdminAPI {
        var settings = Settings()
        settings.database = .sqlite
        return AdminAPI(gateway: gateway, loader: loader, settings: settings, persistencePath: nil, database: database)
    }

    // MARK: Helpers

    func call(_ method: String, _ path: String, query: [(String, String)] = [], body: String = "", contentType: String? = nil,
              on api: AdminAPI? = nil) async -> AdminResponse {
        var headers: [String: [String]] = [:]
        if let contentType { headers["content-type"] = [contentType] }
        return await (api ?? self.api).respond(to: AdminRequest(method: method, path: path, query: query.map { ($0.0, $0.1) },
                                                                headers: headers, body: Array(body.utf8)))
    }

    func form(_ method: String, _ path: String, _ body: String) async -> AdminResponse {
        await call(method, path, body: body, contentType: "application/x-www-form-urlencoded")
    }

    func json(_ method: String, _ path: String, _ body: JSONValue) async -> AdminResponse {
        await call(method, path, body: body.serialized(), contentType: "application/json")
    }

    /// POSTs a form and returns the new entity's id (the request must succeed).
    func createdID(_ path: String, _ body: String) async throws -> String {
        let response = await form("POST", path, body)
        try #require(response.status == 201, "POST \(path) \(body): \(response.status) \(response.text)")
        return try #require(response.json?["id"]?.stringValue)
    }

    struct Seeded {
        let serviceID, routeID, consumerID, credentialID, pluginID: String
    }

    /// Kong's getting-started steps: a service, a route under it, a consumer with a key, key-auth on the route.
    func seed() async throws -> Seeded {
        let serviceID = try await createdID("/services", "name=example_service&url=http://httpbin.konghq.com")
        let routeID = try await createdID("/services/example_service/routes", "name=example_route&paths[]=/mock")
        let consumerID = try await createdID("/consumers", "username=alice")
        let credentialID = try await createdID("/consumers/alice/key-auth", "key=alice-key")
        let pluginID = try await createdID("/routes/example_route/plugins", "name=key-auth")
        return Seeded(serviceID: serviceID, routeID: routeID, consumerID: consumerID, credentialID: credentialID,
                      pluginID: pluginID)
    }

    /// `field` of every entity of a successful list response; an error answer (or a body without a
    /// `data` array) fails the test instead of passing for an empty list.
    func ids(_ response: AdminResponse, _ field: String = "id",
             sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        try #require(response.status == 200, "list answered \(response.status): \(response.text)", sourceLocation: sourceLocation)
        let data = try #require(response.json?["data"]?.arrayValue, "no data array in \(response.text)", sourceLocation: sourceLocation)
        return data.compactMap { $0[field]?.stringValue }
    }

    // MARK: Kong's documented sequence

    @Test func gettingStartedSequence() async throws {
        let service = await form("POST", "/services", "name=example_service&url=http://httpbin.konghq.com")
        #expect(service.status == 201, "\(service.text)")
        #expect(service.json?["name"] == "example_service")
        #expect(service.json?["host"] == "httpbin.konghq.com")
        #expect(service.json?["protocol"] == "http")
        #expect(service.json?["port"] == 80)
        let serviceID = try #require(service.json?["id"]?.stringValue)

        let route = await form("POST", "/services/example_service/routes", "name=example_route&paths[]=/mock")
        #expect(route.status == 201, "\(route.text)")
        #expect(route.json?["service"] == ["id": .string(serviceID)])
        #expect(route.json?["paths"] == ["/mock"])
        #expect(route.json?["protocols"] == ["http", "https"])
        let routeID = try #require(route.json?["id"]?.stringValue)

        let consumer = await form("POST", "/consumers", "username=alice")
        #expect(consumer.status == 201, "\(consumer.text)")
        #expect(consumer.json?["username"] == "alice")
        let consumerID = try #require(consumer.json?["id"]?.stringValue)

        let credential = await form("POST", "/consumers/alice/key-auth", "key=alice-key")
        #expect(credential.status == 201, "\(credential.text)")
        #expect(credential.json?["key"] == "alice-key")
        #expect(credential.json?["consumer"] == ["id": .string(consumerID)])

        let plugin = await form("POST", "/routes/example_route/plugins", "name=key-auth")
        #expect(plugin.status == 201, "\(plugin.text)")
        #expect(plugin.json?["route"] == ["id": .string(routeID)])
        #expect(plugin.json?["service"] == .null)
        #expect(plugin.json?["consumer"] == .null)
        #expect(plugin.json?["config"]?["key_names"] == ["apikey"])
        #expect(plugin.json?["enabled"] == true)
    }

    @Test func consumerScopedPluginsFollowThePluginSchema() async throws {
        _ = try await seed()
        let forbidden = await form("POST", "/consumers/alice/plugins", "name=key-auth")
        #expect(forbidden.status == 400)
        #expect(forbidden.json == ["code": 2, "name": "schema violation",
                                   "message": "schema violation (consumer: value must be null)",
                                   "fields": ["consumer": "value must be null"]])

        let allowed = await form("POST", "/consumers/alice/plugins", "name=request-termination")
        #expect(allowed.status == 201, "\(allowed.text)")
        let consumerID = try #require(await call("GET", "/consumers/alice").json?["id"]?.stringValue)
        #expect(allowed.json?["consumer"] == ["id": .string(consumerID)])
        #expect(try ids(await call("GET", "/consumers/alice/plugins"), "name") == ["request-termination"])
    }

    /// A form's `config.*` values are coerced by the named plugin's own schema (Kong decodes the
    /// form again once it knows the plugin): `config.key_names=k1` is key-auth's one-entry array,
    /// `config.status_code=418` request-termination's integer. A PATCH naming no plugin is coerced
    /// by the stored one's schema. `/schemas/plugins/validate` reads forms the same way.
    @Test func formConfigValuesFollowTheNamedPluginsSchema() async throws {
        _ = try await seed()
        let created = await form("POST", "/services/example_service/plugins", "name=key-auth&config.key_names=k1")
        #expect(created.status == 201, "\(created.text)")
        #expect(created.json?["config"]?["key_names"] == ["k1"])
        let pluginID = try #require(created.json?["id"]?.stringValue)
        let patched = await form("PATCH", "/plugins/\(pluginID)", "config.key_names=k2&config.key_names=k3")
        #expect(patched.status == 200, "\(patched.text)")
        #expect(patched.json?["config"]?["key_names"] == ["k2", "k3"])
        let terminating = await form("POST", "/consumers/alice/plugins", "name=request-termination&config.status_code=418")
        #expect(terminating.status == 201, "\(terminating.text)")
        #expect(terminating.json?["config"]?["status_code"] == 418)
        let validated = await form("POST", "/schemas/plugins/validate", "name=key-auth&config.key_names=k1")
        #expect(validated.json == ["message": "schema validation successful"], "\(validated.text)")
    }

    /// Spec §2.3: `GET /consumers?custom_id=<v>` is a one-entry list (empty without a match); an
    /// empty or repeated `custom_id` is refused.
    @Test func consumersAreFoundByCustomID() async throws {
        _ = try await createdID("/consumers", "username=alice")
        let bobID = try await createdID("/consumers", "username=bob&custom_id=b1")
        #expect(try ids(await call("GET", "/consumers", query: [("custom_id", "b1")])) == [bobID])
        let none = await call("GET", "/consumers", query: [("custom_id", "nobody")])
        #expect(none.json == ["data": [], "next": .null])
        for query in [[("custom_id", "")], [("custom_id", "b1"), ("custom_id", "b1")]] {
            let refused = await call("GET", "/consumers", query: query)
            #expect(refused.status == 400)
            #expect(refused.json == ["message": "custom_id must be an unempty string"])
        }
    }

    /// `GET /plugins/schema/{name}` (deprecated in Kong for `/schemas/plugins/{name}`): the
    /// plugin's `config` record alone.
    @Test func theDeprecatedPluginSchemaEndpointGivesTheConfigRecord() async {
        let schema = await call("GET", "/plugins/schema/key-auth")
        #expect(schema.status == 200)
        #expect(schema.json?["type"] == "record")
        #expect(schema.json?["fields"]?.arrayValue?.first?["key_names"]?["default"] == ["apikey"], "\(schema.text)")
        #expect(await call("GET", "/plugins/schema/nope").json == ["message": "No plugin named 'nope'"])
    }

    /// Spec §2.5 (DB mode): a plugin's explicit protocols must share one with its route's, or with
    /// one of its service's routes; a plugin without explicit protocols is not checked (Kong
    /// checks before the defaults are filled), nor one on a service without routes.
    @Test func pluginProtocolsMustMatchTheirRoutes() async throws {
        _ = try await seed()
        let onRoute = await form("POST", "/routes/example_route/plugins", "name=request-termination&protocols[]=grpc")
        #expect(onRoute.status == 400)
        #expect(onRoute.json?["fields"] == ["protocols": "must match the associated route's protocols"], "\(onRoute.text)")
        #expect(onRoute.json?["message"] == "schema violation (protocols: must match the associated route's protocols)")
        let onService = await form("POST", "/services/example_service/plugins", "name=request-termination&protocols[]=grpc")
        #expect(onService.json?["fields"]
                == ["protocols": "must match the protocols of at least one route pointing to this Plugin's service"])
        let shared = await form("POST", "/routes/example_route/plugins", "name=request-termination&protocols[]=grpc&protocols[]=https")
        #expect(shared.status == 201, "\(shared.text)")
        _ = try await createdID("/services", "name=lonely&url=http://lonely.test")
        let noRoutes = await form("POST", "/services/lonely/plugins", "name=request-termination&protocols[]=grpc")
        #expect(noRoutes.status == 201, "\(noRoutes.text)")
        let pluginID = try #require(shared.json?["id"]?.stringValue)
        let narrowed = await json("PATCH", "/plugins/\(pluginID)", ["protocols": ["grpcs"]])
        #expect(narrowed.status == 400, "an update is checked too: \(narrowed.text)")
    }

    // MARK: Reads

    /// Kong's offset names the last row of the page, not a count: a script that deletes what each
    /// page showed before asking for the next one still reaches every entity.
    @Test func deletingWhilePagingSkipsNothing() async throws {
        var created: Set<String> = []
        for index in 0..<7 { created.insert(try await createdID("/consumers", "username=user\(index)")) }
        var seen: [String] = []
        var offset: String?
        repeat {
            let page = await call("GET", "/consumers", query: [("size", "2")] + (offset.map { [("offset", $0)] } ?? []))
            try #require(page.status == 200, "\(page.text)")
            let ids = (page.json?["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            #expect(ids == ids.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            seen += ids
            for id in ids { #expect(await call("DELETE", "/consumers/\(id)").status == 204) }
            offset = page.json?["offset"]?.stringValue
        } while offset != nil
        #expect(Set(seen) == created && seen.count == created.count)
        #expect(await call("GET", "/consumers").json?["data"]?.arrayValue?.isEmpty == true)
    }

    @Test func readsReflectWrites() async throws {
        let seeded = try await seed()
        #expect(try ids(await call("GET", "/services")) == [seeded.serviceID])
        #expect(await call("GET", "/services/example_service").json?["id"] == .string(seeded.serviceID))
        #expect(await call("GET", "/services/\(seeded.serviceID)").json?["name"] == "example_service")
        let route = await call("GET", "/routes/\(seeded.routeID)")
        #expect(route.json?["name"] == "example_route")
        // Written as Kong's encoder (cjson) writes it: `/` escaped.
        #expect(String(decoding: route.body, as: UTF8.self).contains(#""paths":["\/mock"]"#))
        #expect(try ids(await call("GET", "/services/example_service/routes")) == [seeded.routeID])
        #expect(await call("GET", "/routes/example_route/service").json?["id"] == .string(seeded.serviceID))
        #expect(try ids(await call("GET", "/routes/example_route/plugins")) == [seeded.pluginID])
        #expect(try ids(await call("GET", "/plugins")) == [seeded.pluginID])
        #expect(await call("GET", "/key-auths/alice-key").json?["id"] == .string(seeded.credentialID))
        #expect(try ids(await call("GET", "/consumers"), "username") == ["alice"])
    }

    @Test func commitsAreAppliedToTheGateway() async throws {
        let seeded = try await seed()
        let running = gateway.holder.current
        #expect(running.config.rows("routes").contains { $0["id"] == .string(seeded.routeID) })
        #expect(running.snapshot.routes.map(\.id) == [seeded.routeID], "the router was rebuilt from the commit")
        #expect(running.snapshot.keyAuthCredentials.map(\.key) == ["alice-key"])

        #expect(await call("DELETE", "/routes/example_route").status == 204)
        let after = gateway.holder.current.config
        #expect(after.rows("routes").isEmpty)
        #expect(after.rows("plugins").isEmpty, "the route's plugin went with it")
    }

    // MARK: Writes

    @Test func putCreatesThenReplaces() async throws {
        let created = await json("PUT", "/services/put-svc", ["host": "a.test", "retries": 9, "tags": ["blue"]])
        #expect(created.status == 200, "\(created.text)")
        #expect(created.json?["name"] == "put-svc")
        #expect(created.json?["retries"] == 9)
        let id = try #require(created.json?["id"]?.stringValue)

        let replaced = await json("PUT", "/services/put-svc", ["host": "b.test"])
        #expect(replaced.status == 200, "\(replaced.text)")
        #expect(replaced.json?["id"] == .string(id))
        #expect(replaced.json?["host"] == "b.test")
        #expect(replaced.json?["retries"] == 5, "omitted fields are reset")
        #expect(replaced.json?["tags"] == .null)
        #expect(try ids(await call("GET", "/services")) == [id])

        let key = "4f0c6a52-3b7d-4c8e-9a1f-2d3e4b5c6a7d"
        let byID = await json("PUT", "/services/\(key)", ["name": "by-id", "host": "c.test"])
        #expect(byID.status == 200, "\(byID.text)")
        #expect(byID.json?["id"] == .string(key))
        #expect(await call("GET", "/services/by-id").json?["id"] == .string(key))
    }

    @Test func patchMergesIntoTheStoredEntity() async throws {
        let seeded = try await seed()
        let patched = await json("PATCH", "/routes/\(seeded.routeID)", ["paths": ["/v2"], "strip_path": false])
        #expect(patched.status == 200, "\(patched.text)")
        #expect(patched.json?["id"] == .string(seeded.routeID))
        #expect(patched.json?["paths"] == ["/v2"])
        #expect(patched.json?["strip_path"] == false)
        #expect(patched.json?["name"] == "example_route", "fields the body omits are kept")
        #expect(patched.json?["service"] == ["id": .string(seeded.serviceID)])
        #expect(await call("GET", "/routes/example_route").json?["paths"] == ["/v2"])

        let disabled = await json("PATCH", "/plugins/\(seeded.pluginID)", ["enabled": false])
        #expect(disabled.json?["enabled"] == false)
        #expect(disabled.json?["config"]?["key_names"] == ["apikey"], "the config is kept")
    }

    @Test func patchOfAMissingEntityIs404WithTheErrorObject() async throws {
        let missing = "9b2f1c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
        let byID = await json("PATCH", "/services/\(missing)", ["retries": 1])
        #expect(byID.status == 404)
        #expect(byID.json == ["code": 6, "name": "not found",
                              "message": .string("could not find the entity with primary key '{id=\"\(missing)\"}'"),
                              "fields": ["id": .string(missing)]])
        let byName = await json("PATCH", "/services/missing", ["retries": 1])
        #expect(byName.status == 404)
        #expect(byName.json == ["code": 6, "name": "not found", "message": "could not find the entity with '{name=\"missing\"}'",
                                "fields": ["name": "missing"]])
        #expect(try ids(await call("GET", "/services")).isEmpty, "PATCH never creates")
    }

    @Test func deleteIsIdempotent() async throws {
        _ = try await createdID("/services", "name=gone&host=gone.test")
        let first = await call("DELETE", "/services/gone")
        #expect(first.status == 204)
        #expect(first.body.isEmpty)
        #expect(await call("GET", "/services/gone").status == 404)
        #expect(await call("DELETE", "/services/gone").status == 204)
        #expect(database.current.rows("services").isEmpty)
    }

    @Test func deletingAReferencedServiceIsRefused() async throws {
        let seeded = try await seed()
        let refused = await call("DELETE", "/services/example_service")
        #expect(refused.status == 400)
        #expect(refused.json == ["code": 4, "name": "foreign key violation",
                                 "message": "an existing 'routes' entity references this 'services' entity",
                                 "fields": ["@referenced_by": "routes"]])
        #expect(await call("GET", "/services/\(seeded.serviceID)").status == 200)
    }

    @Test func duplicateNameIs409() async throws {
        _ = try await createdID("/services", "name=svc&host=a.test")
        let duplicate = await json("POST", "/services", ["name": "svc", "host": "b.test"])
        #expect(duplicate.status == 409)
        #expect(duplicate.json == ["code": 5, "name": "unique constraint violation",
                                   "message": "UNIQUE violation detected on '{name=\"svc\"}'", "fields": ["name": "svc"]])
        #expect(await call("GET", "/services/svc").json?["host"] == "a.test")
    }

    @Test func invalidJSONIsRefusedBeforeTheDatabase() async {
        let response = await call("POST", "/services", body: #"{"name": "x", "#, contentType: "application/json")
        #expect(response.status == 400)
        #expect(response.json == ["message": "Cannot parse JSON body"])
        #expect(database.current.rows("services").isEmpty)
    }

    @Test func aFailingStoreAnswers500AndChangesNothing() async throws {
        let failing = try await EntityDatabase(store: RefusingStore(), dao: EntityDAO(registry: registry))
        let api = Self.makeAPI(gateway: gateway, loader: loader, database: failing)
        let response = await call("POST", "/services", body: "name=svc&host=h", contentType: "application/x-www-form-urlencoded",
                                  on: api)
        #expect(response.status == 500)
        #expect(response.json == ["message": "An unexpected error occurred"])
        #expect(failing.current.rows("services").isEmpty)
        #expect(await call("GET", "/services", on: api).json?["data"] == [])
    }

    // MARK: Nested credentials

    @Test func nestedListsShowOnlyTheParentsCredentials() async throws {
        _ = try await seed()
        _ = try await createdID("/consumers", "username=bob")
        _ = try await createdID("/consumers/bob/key-auth", "key=bob-key")
        #expect(try ids(await call("GET", "/consumers/alice/key-auth"), "key") == ["alice-key"])
        #expect(try ids(await call("GET", "/consumers/bob/key-auth"), "key") == ["bob-key"])
        #expect(try ids(await call("GET", "/key-auths"), "key").sorted() == ["alice-key", "bob-key"])
    }

    @Test func nestedPutForcesTheConsumer() async throws {
        let seeded = try await seed()
        let bobID = try await createdID("/consumers", "username=bob")
        let id = "7d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"
        let put = await json("PUT", "/consumers/alice/key-auth/\(id)", ["key": "alice-second", "consumer": ["id": .string(bobID)]])
        #expect(put.status == 200, "\(put.text)")
        #expect(put.json?["id"] == .string(id))
        #expect(put.json?["consumer"] == ["id": .string(seeded.consumerID)], "the URL's consumer wins over the body's")
        #expect(try ids(await call("GET", "/consumers/alice/key-auth"), "key").sorted() == ["alice-key", "alice-second"])
        #expect(try ids(await call("GET", "/consumers/bob/key-auth")).isEmpty)
    }

    @Test func aCredentialUnderAnotherConsumerIsNotFound() async throws {
        let seeded = try await seed()
        _ = try await createdID("/consumers", "username=bob")
        #expect(await call("GET", "/consumers/bob/key-auth/alice-key").json == ["message": "Not found"])
        #expect(await call("GET", "/consumers/bob/key-auth/\(seeded.credentialID)").status == 404)
        #expect(await json("PATCH", "/consumers/bob/key-auth/alice-key", ["key": "stolen"]).status == 404)
        #expect(await call("DELETE", "/consumers/bob/key-auth/alice-key").status == 404)
        let kept = await call("GET", "/key-auths/\(seeded.credentialID)")
        #expect(kept.json?["key"] == "alice-key", "the credential is untouched")
        #expect(kept.json?["consumer"] == ["id": .string(seeded.consumerID)])
    }

    // MARK: The referenced entity (`/A/{x}/f`)

    @Test func theParentEndpointUpdatesCreatesAndRefusesDelete() async throws {
        let seeded = try await seed()
        let patched = await form("PATCH", "/routes/example_route/service", "retries=2")
        #expect(patched.status == 200, "\(patched.text)")
        #expect(patched.json?["id"] == .string(seeded.serviceID))
        #expect(await call("GET", "/services/example_service").json?["retries"] == 2)
        #expect(await call("DELETE", "/routes/example_route/service").status == 405, "a linked parent is not deleted here")

        // A route without a service: PUT creates one and links it, in one write.
        let lonely = try await createdID("/routes", "name=lonely&paths[]=/lonely")
        let created = await form("PUT", "/routes/lonely/service", "name=fresh&url=http://fresh.test")
        #expect(created.status == 200, "\(created.text)")
        let freshID = try #require(created.json?["id"]?.stringValue)
        #expect(await call("GET", "/routes/\(lonely)").json?["service"] == ["id": .string(freshID)])
        #expect(await call("GET", "/routes/lonely/service").json?["name"] == "fresh")
    }

    // MARK: Credential ttl

    @Test func credentialTTLShowsTheSecondsLeft() async throws {
        _ = try await createdID("/consumers", "username=carol")
        let credential = await form("POST", "/consumers/carol/key-auth", "key=temp&ttl=3600")
        #expect(credential.status == 201, "\(credential.text)")
        let left = try #require(credential.json?["ttl"]?.intValue)
        #expect((3590...3600).contains(left))
        let refused = await form("POST", "/consumers/carol/key-auth", "key=bad&ttl=-1")
        #expect(refused.status == 400)
        #expect(refused.json?["fields"] == ["ttl": "must be an integer between 0 and 100000000"])
        let renewed = await form("PATCH", "/consumers/carol/key-auth/temp", "ttl=60")
        #expect((50...60).contains(renewed.json?["ttl"]?.intValue ?? -1), "\(renewed.text)")
    }

    /// Kong's reads skip a row whose ttl ran out (its cleanup timer deletes it later): the
    /// credential is no longer listed, found or tagged; one without ttl stays.
    @Test func anExpiredCredentialIsGoneForReads() async throws {
        _ = try await createdID("/consumers", "username=dora")
        let lasting = try await createdID("/consumers/dora/key-auth", "key=lasting&tags[]=t")
        let brief = try await createdID("/consumers/dora/key-auth", "key=brief&ttl=1&tags[]=t")
        #expect(await call("GET", "/key-auths/\(brief)").status == 200, "listed while it lives")
        // created_at has whole seconds: the credential expires within one to two seconds.
        var gone = false
        for _ in 0..<40 where !gone {
            try await Task.sleep(for: .milliseconds(100))
            gone = await call("GET", "/key-auths/\(brief)").status == 404
        }
        #expect(gone, "an expired credential is not found by id")
        #expect(await call("GET", "/consumers/dora/key-auth/brief").status == 404, "nor by key")
        let listed = await call("GET", "/consumers/dora/key-auth")
        #expect(listed.json?["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [lasting])
        let all = await call("GET", "/key-auths")
        #expect(all.json?["data"]?.arrayValue?.compactMap { $0["key"]?.stringValue } == ["lasting"])
        let tagged = await call("GET", "/tags/t")
        #expect(tagged.json?["data"]?.arrayValue?.compactMap { $0["entity_id"]?.stringValue } == [lasting])

        // Kong's cleanup deletes expired rows; here the next write does, before it is decided:
        // the expired key is free again at once.
        let reused = await form("POST", "/consumers/dora/key-auth", "key=brief")
        #expect(reused.status == 201, "an expired credential's key can be used again: \(reused.text)")
        #expect(reused.json?["id"]?.stringValue != brief)
        let stored = try await database.store.loadAll()["keyauth_credentials"] ?? []
        #expect(stored.compactMap { $0["key"]?.stringValue }.sorted() == ["brief", "lasting"])
        #expect(!stored.contains { $0["id"]?.stringValue == brief }, "the expired row is deleted from the store")
    }

    // MARK: Consumer-group memberships

    @Test func membershipsAreAddedListedAndRemoved() async throws {
        _ = try await seed()
        _ = try await createdID("/consumer_groups", "name=gold")

        let added = await form("POST", "/consumer_groups/gold/consumers", "consumer=alice")
        #expect(added.status == 201, "\(added.text)")
        #expect(added.json?["consumer_group"]?["name"] == "gold")
        #expect(added.json?["consumers"]?.arrayValue?.compactMap { $0["username"]?.stringValue } == ["alice"])

        let again = await form("POST", "/consumer_groups/gold/consumers", "consumer=alice")
        #expect(again.status == 409)
        #expect(again.json?["code"] == 5)

        let members = await call("GET", "/consumer_groups/gold/consumers")
        #expect(members.json?["consumers"]?.arrayValue?.compactMap { $0["username"]?.stringValue } == ["alice"])
        let groups = await call("GET", "/consumers/alice/consumer_groups")
        #expect(groups.json?["consumer_groups"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["gold"])

        #expect(await call("DELETE", "/consumer_groups/gold/consumers/alice").status == 204)
        #expect(await call("GET", "/consumer_groups/gold/consumers").json?["consumers"] == [])
        #expect(database.current.rows("consumer_group_consumers").isEmpty)
    }

    /// The other direction: a consumer joins groups (`group` may repeat), then leaves them all.
    @Test func aConsumerJoinsAndLeavesGroups() async throws {
        _ = try await createdID("/consumers", "username=bob")
        _ = try await createdID("/consumer_groups", "name=gold")
        _ = try await createdID("/consumer_groups", "name=silver")
        let joined = await form("POST", "/consumers/bob/consumer_groups", "group=gold&group=silver")
        #expect(joined.status == 201, "\(joined.text)")
        #expect(joined.json?["consumer"]?["username"] == "bob")
        #expect(joined.json?["consumer_groups"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["gold", "silver"])
        #expect(await form("POST", "/consumers/bob/consumer_groups", "group=bronze").status == 404)
        #expect(database.current.rows("consumer_group_consumers").count == 2)
        #expect(await call("DELETE", "/consumers/bob/consumer_groups").status == 204)
        #expect(database.current.rows("consumer_group_consumers").isEmpty)
    }

    @Test func addingAMemberNeedsAConsumer() async throws {
        _ = try await createdID("/consumer_groups", "name=gold")
        let response = await call("POST", "/consumer_groups/gold/consumers")
        #expect(response.status == 400)
        #expect(response.json == ["message": "must provide consumer"])
    }

    // MARK: Node endpoints

    @Test func statusReportsTheDatabaseInsteadOfAHash() async {
        let status = await call("GET", "/status")
        #expect(status.status == 200)
        #expect(status.json?["database"] == ["reachable": true])
        #expect(status.json?["configuration_hash"] == nil)
        #expect(await call("GET", "/status/ready").json == ["message": "ready"], "a DB-mode node is ready while its database answers")
    }

    @Test func statusReportsAnUnreachableDatabaseWithoutFailing() async throws {
        let lost = try await EntityDatabase(store: UnreachableStore(), dao: EntityDAO(registry: registry))
        let api = Self.makeAPI(gateway: gateway, loader: loader, database: lost)
        let status = await call("GET", "/status", on: api)
        #expect(status.status == 200, "Kong still answers /status")
        #expect(status.json?["database"] == ["reachable": false])
        #expect(status.json?["server"]?["total_requests"] != nil)
        let ready = await call("GET", "/status/ready", on: api)
        #expect(ready.status == 503 && ready.json == ["message": "failed to connect to database"], "Kong's readiness answer")
    }

    @Test func configEndpointIsOnlyForDBLess() async {
        let post = await call("POST", "/config", body: "_format_version: \"3.0\"\nservices:\n- name: s\n  host: h\n",
                              contentType: "application/yaml")
        #expect(post.status == 400)
        #expect(post.json == ["message": .string(Self.databaseOnly)])
        #expect(await call("GET", "/config").json == ["message": .string(Self.databaseOnly)])
        #expect(database.current.rows("services").isEmpty, "nothing was loaded")
    }
}

/// A store whose every commit fails (a full disk, a lost connection).
private struct RefusingStore: EntityStore {
    func loadAll() async throws(StoreError) -> [String: [JSONValue]] { [:] }

    func commit(_ changes: [EntityChange]) async throws(StoreError) {
        throw StoreError("disk I/O error")
    }
}

/// A store that loaded once and then lost its database (a failed disk, a dropped server).
private struct UnreachableStore: EntityStore {
    func loadAll() async throws(StoreError) -> [String: [JSONValue]] { [:] }
    func commit(_ changes: [EntityChange]) async throws(StoreError) { throw StoreError("disk I/O error") }
    func ping() async throws(StoreError) { throw StoreError("disk I/O error") }
}

private extension AdminResponse {
    var text: String { String(decoding: body, as: UTF8.self) }
}
