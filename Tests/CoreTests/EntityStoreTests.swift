import Foundation
import Testing
@testable import Core

// DB mode's entity layer (spec §1.4, §1.7, §2.8, §3.3): the DAO's Kong semantics, the SQLite
// store, and `EntityDatabase`'s serial write lane.

/// A value shared with `@Sendable` closures (the DAO's clock and id counter, recorders).
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    var value: Value {
        get { update { $0 } }
        set { update { $0 = newValue } }
    }

    func update<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&stored)
    }
}

extension Locked where Value == Int {
    /// Increments and returns the new value.
    func next() -> Int {
        update { (value: inout Int) -> Int in
            value += 1
            return value
        }
    }
}

enum StoreFixtures {
    /// key-auth as the node registers it, with a second config field so record merges show.
    static let keyAuth = PluginDefinition(
        name: "key-auth", priority: 1250, version: "3.10.0",
        config: RecordSchema([
            "key_names": Field.array(of: Field.string).required().default(["apikey"]),
            "hide_credentials": Field.boolean.required().default(false),
        ]),
        forbiddenScopes: [.consumer], entities: [KeyAuthCredentialSchema.schema])

    /// A plugin that may be scoped to a consumer (key-auth may not).
    static let requestTermination = PluginDefinition(
        name: "request-termination", priority: 2, version: "3.10.0",
        config: RecordSchema(["status_code": Field.integer.required().default(503)]))

    static let registry = EntityRegistry(plugins: [keyAuth, requestTermination], dbless: false)

    /// The n-th id the test clock hands out: `00000000-0000-4000-8000-00000000000n`.
    static func uuid(_ n: Int) -> String {
        let digits = String(n)
        return "00000000-0000-4000-8000-" + String(repeating: "0", count: 12 - digits.count) + digits
    }

    static let now = 1_700_000_000

    static func refusal<T>(_ result: Result<T, KongError>) -> KongError? {
        if case .failure(let error) = result { return error }
        return nil
    }
}

// MARK: - EntityDAO

struct EntityDAOTests {
    let registry = StoreFixtures.registry
    let clock: Locked<Int>
    let dao: EntityDAO
    let empty = DeclarativeConfig(storedRows: [:])

    init() {
        let clock = Locked(StoreFixtures.now)
        let ids = Locked(0)
        let keys = Locked(0)
        self.clock = clock
        dao = EntityDAO(registry: StoreFixtures.registry, auto: AutoValueSource(
            now: { clock.value },
            uuid: { StoreFixtures.uuid(ids.next()) },
            randomString: { "random-key-\(keys.next())" }))
    }

    /// Inserts `input`, moves `state` past the write and returns the stored row.
    @discardableResult
    func insert(_ entity: String, _ input: [String: JSONValue], into state: inout DeclarativeConfig) throws -> JSONValue {
        let write = try dao.insert(entity, input, in: state).get()
        state = state.applying(write.changes, registry: registry)
        return write.row
    }

    func id(_ row: JSONValue) throws -> String { try #require(row["id"]?.stringValue) }

    // MARK: Insert

    @Test func insertFillsIDsTimestampsAndDefaults() throws {
        let write = try dao.insert("services", ["name": "svc", "url": "http://upstream.test:8080/api"], in: empty).get()
        let row = write.row
        #expect(row["id"] == .string(StoreFixtures.uuid(1)))
        #expect(row["created_at"] == .number(Double(StoreFixtures.now)))
        #expect(row["updated_at"] == .number(Double(StoreFixtures.now)))
        #expect(row["name"] == "svc")
        #expect(row["protocol"] == "http")
        #expect(row["host"] == "upstream.test")
        #expect(row["port"] == 8080)
        #expect(row["path"] == "/api")
        #expect(row["retries"] == 5)
        #expect(row["connect_timeout"] == 60000)
        #expect(row["read_timeout"] == 60000)
        #expect(row["write_timeout"] == 60000)
        #expect(row["enabled"] == true)
        #expect(row["tags"] == .null, "absent optional fields are stored as null")
        #expect(row["url"] == nil, "the shorthand is expanded, not stored")
        #expect(write.changes == [.put(entity: "services", row: row)])
    }

    @Test func insertRefusesASchemaViolation() throws {
        let error = try #require(StoreFixtures.refusal(dao.insert("services", ["port": 70000], in: empty)))
        #expect(error.code == .schemaViolation)
        #expect(error.message == "2 schema violations (host: required field missing; port: value should be between 0 and 65535)")
        #expect(error.fields == ["host": "required field missing", "port": "value should be between 0 and 65535"])
    }

    @Test func insertRefusesADuplicateName() throws {
        var state = empty
        try insert("services", ["name": "x", "host": "a.test"], into: &state)
        let error = StoreFixtures.refusal(dao.insert("services", ["name": "x", "host": "b.test"], in: state))
        #expect(error == KongError(code: .uniqueViolation, message: #"UNIQUE violation detected on '{name="x"}'"#,
                                   fields: ["name": "x"]))
    }

    @Test func unnamedEntitiesDoNotClash() throws {
        var state = empty
        try insert("services", ["host": "a.test"], into: &state)
        try insert("services", ["host": "b.test"], into: &state)
        #expect(state.rows("services").count == 2, "null is not a value a unique field can clash on")
    }

    @Test func insertWithAnExistingIDIsAPrimaryKeyViolation() throws {
        var state = empty
        let existing = try id(try insert("services", ["name": "a", "host": "h"], into: &state))
        let error = StoreFixtures.refusal(dao.insert("services", ["id": .string(existing), "name": "b", "host": "h"], in: state))
        #expect(error == KongError(code: .primaryKeyViolation, message: "primary key violation on key '{id=\"\(existing)\"}'",
                                   fields: ["id": .string(existing)]))
    }

    @Test func referenceByEndpointKeyResolvesToID() throws {
        var state = empty
        let serviceID = try id(try insert("services", ["name": "svc", "host": "h"], into: &state))
        let route = try insert("routes", ["paths": ["/a"], "service": ["name": "svc"]], into: &state)
        #expect(route["service"] == ["id": .string(serviceID)])
    }

    @Test func unresolvableReferenceIsCode13() throws {
        var state = empty
        try insert("services", ["name": "svc", "host": "h"], into: &state)
        let error = StoreFixtures.refusal(dao.insert("routes", ["paths": ["/a"], "service": ["name": "nope"]], in: state))
        let detail = "the foreign key cannot be resolved with '{name=\"nope\"}' for an existing 'services' entity"
        #expect(error == KongError(code: .foreignKeysUnresolved,
                                   message: "foreign key unresolved (service.name: the foreign key cannot be resolved with '{name=\"nope\"}' for an existing 'services' entity)",
                                   fields: ["service": ["name": .string(detail)]]))
    }

    @Test func referenceToAMissingIDIsCode4() throws {
        var state = empty
        try insert("services", ["name": "svc", "host": "h"], into: &state)
        let missing = StoreFixtures.uuid(999)
        let error = StoreFixtures.refusal(dao.insert("routes", ["paths": ["/a"], "service": ["id": .string(missing)]], in: state))
        #expect(error == KongError(code: .foreignKeyViolation,
                                   message: "the foreign key '{id=\"\(missing)\"}' does not reference an existing 'services' entity.",
                                   fields: ["service": ["id": .string(missing)]]))
    }

    @Test func samePluginTwiceInOneScopeClashesOnTheCacheKey() throws {
        var state = empty
        try insert("services", ["name": "svc", "host": "h"], into: &state)
        let first = try id(try insert("routes", ["paths": ["/a"], "service": ["name": "svc"]], into: &state))
        let second = try id(try insert("routes", ["paths": ["/b"], "service": ["name": "svc"]], into: &state))
        try insert("plugins", ["name": "key-auth", "route": ["id": .string(first)]], into: &state)

        let error = try #require(StoreFixtures.refusal(dao.insert("plugins", ["name": "key-auth", "route": ["id": .string(first)]], in: state)))
        #expect(error.code == .uniqueViolation)
        #expect(error.message == "UNIQUE violation detected on '{consumer=null,name=\"key-auth\",route={id=\"\(first)\"},service=null}'")
        #expect(error.fields == ["consumer": nil, "name": "key-auth", "route": ["id": .string(first)], "service": nil])

        try insert("plugins", ["name": "key-auth", "route": ["id": .string(second)]], into: &state)
        #expect(state.rows("plugins").count == 2, "the same plugin on another route is another scope")
    }

    // MARK: Upsert

    @Test func upsertByNameCreatesThenReplaces() throws {
        var state = empty
        let created = try dao.upsert("services", key: "svc", ["host": "a.test", "retries": 9, "tags": ["blue"]], in: state).get()
        state = state.applying(created.changes, registry: registry)
        #expect(created.row["name"] == "svc")
        #expect(created.row["retries"] == 9)
        let createdID = try id(created.row)

        clock.value = StoreFixtures.now + 500
        let replaced = try dao.upsert("services", key: "svc", ["host": "b.test", "name": "ignored"], in: state).get()
        state = state.applying(replaced.changes, registry: registry)
        #expect(replaced.row["id"] == .string(createdID), "the entity keeps its id")
        #expect(replaced.row["created_at"] == .number(Double(StoreFixtures.now)), "and when it was created")
        #expect(replaced.row["updated_at"] == .number(Double(StoreFixtures.now + 500)))
        #expect(replaced.row["name"] == "svc", "the URL's key wins over the body's")
        #expect(replaced.row["host"] == "b.test")
        #expect(replaced.row["retries"] == 5, "omitted fields go back to their defaults")
        #expect(replaced.row["tags"] == .null)
        #expect(replaced.changes == [.put(entity: "services", row: replaced.row)])
        #expect(state.rows("services") == [replaced.row])
    }

    @Test func upsertByUUIDUsesItAsTheID() throws {
        var state = empty
        let key = "6f1c2b9e-0d5a-4c3e-9f7b-2a1d4e5c6b7a"
        let created = try dao.upsert("services", key: key, ["name": "u", "host": "h"], in: state).get()
        state = state.applying(created.changes, registry: registry)
        #expect(created.row["id"] == .string(key))
        #expect(created.row["name"] == "u")

        let replaced = try dao.upsert("services", key: key, ["host": "h2"], in: state).get()
        #expect(replaced.row["id"] == .string(key))
        #expect(replaced.row["name"] == .null, "a replaced entity keeps nothing the body omits")
        #expect(state.applying(replaced.changes, registry: registry).rows("services").count == 1)
    }

    // MARK: Update

    @Test func updateMergesPluginConfigRecursively() throws {
        var state = empty
        try insert("services", ["name": "svc", "host": "h"], into: &state)
        let routeID = try id(try insert("routes", ["paths": ["/a"], "service": ["name": "svc"]], into: &state))
        let plugin = try insert("plugins", ["name": "key-auth", "route": ["id": .string(routeID)]], into: &state)
        #expect(plugin["config"] == ["key_names": ["apikey"], "hide_credentials": false])

        let patched = try dao.update("plugins", existing: plugin, ["config": ["hide_credentials": true]], in: state).get()
        #expect(patched.row["config"] == ["key_names": ["apikey"], "hide_credentials": true], "untouched config fields stay")
        #expect(patched.row["id"] == plugin["id"])
        #expect(patched.row["route"] == ["id": .string(routeID)])
        state = state.applying(patched.changes, registry: registry)

        let renamed = try dao.update("plugins", existing: patched.row, ["config": ["key_names": ["x-key"]]], in: state).get()
        #expect(renamed.row["config"] == ["key_names": ["x-key"], "hide_credentials": true], "arrays are replaced, not merged")
    }

    /// Maps (route `headers`) are replaced by PATCH, never merged: Kong merges records only, so a
    /// header key can be dropped.
    @Test func updateReplacesMaps() throws {
        var state = empty
        let route = try insert("routes", ["paths": ["/a"], "headers": ["x-a": ["1"]]], into: &state)
        let patched = try dao.update("routes", existing: route, ["headers": ["x-b": ["2"]]], in: state).get()
        #expect(patched.row["headers"] == ["x-b": ["2"]])
    }

    @Test func updateReplacesArraysAndKeepsIdentity() throws {
        var state = empty
        try insert("services", ["name": "svc", "host": "h"], into: &state)
        let route = try insert("routes", ["name": "r", "paths": ["/a", "/b"], "service": ["name": "svc"]], into: &state)
        clock.value = StoreFixtures.now + 60
        let patched = try dao.update("routes", existing: route, ["paths": ["/c"]], in: state).get()
        #expect(patched.row["paths"] == ["/c"])
        #expect(patched.row["id"] == route["id"])
        #expect(patched.row["name"] == "r")
        #expect(patched.row["service"] == route["service"])
        #expect(patched.row["created_at"] == route["created_at"])
        #expect(patched.row["updated_at"] == .number(Double(StoreFixtures.now + 60)))
        #expect(patched.changes == [.put(entity: "routes", row: patched.row)])
        #expect(state.applying(patched.changes, registry: registry).rows("routes") == [patched.row])
    }

    @Test func updateValidatesTheMergedEntity() throws {
        var state = empty
        let service = try insert("services", ["name": "svc", "host": "h"], into: &state)
        let error = StoreFixtures.refusal(dao.update("services", existing: service, ["port": 70000], in: state))
        #expect(error?.code == .schemaViolation)
        #expect(error?.fields == ["port": "value should be between 0 and 65535"])
    }

    @Test func updateDetectsAUniqueClashWithAnotherRow() throws {
        var state = empty
        let a = try insert("services", ["name": "a", "host": "h"], into: &state)
        let b = try insert("services", ["name": "b", "host": "h"], into: &state)
        let error = StoreFixtures.refusal(dao.update("services", existing: b, ["name": "a"], in: state))
        #expect(error == KongError(code: .uniqueViolation, message: #"UNIQUE violation detected on '{name="a"}'"#,
                                   fields: ["name": "a"]))
        let same = try dao.update("services", existing: a, ["name": "a", "retries": 1], in: state).get()
        #expect(same.row["retries"] == 1, "keeping its own name is no clash")
    }

    // MARK: Delete

    @Test func deletingAReferencedServiceIsRefused() throws {
        var state = empty
        let serviceID = try id(try insert("services", ["name": "svc", "host": "h"], into: &state))
        try insert("routes", ["paths": ["/a"], "service": ["name": "svc"]], into: &state)
        let error = StoreFixtures.refusal(dao.delete("services", key: serviceID, in: state))
        #expect(error == KongError(code: .foreignKeyViolation,
                                   message: "an existing 'routes' entity references this 'services' entity",
                                   fields: ["@referenced_by": "routes"]))
    }

    @Test func deletingAConsumerCascadesToWhatReferencesIt() throws {
        var state = empty
        let consumerID = try id(try insert("consumers", ["username": "alice"], into: &state))
        let groupID = try id(try insert("consumer_groups", ["name": "gold"], into: &state))
        try insert("consumer_group_consumers", ["consumer_group": ["id": .string(groupID)], "consumer": ["id": .string(consumerID)]],
                   into: &state)
        let credential = try insert("keyauth_credentials", ["key": "secret", "consumer": ["username": "alice"]], into: &state)
        #expect(credential["consumer"] == ["id": .string(consumerID)])
        let credentialID = try id(credential)
        let pluginID = try id(try insert("plugins", ["name": "request-termination", "consumer": ["id": .string(consumerID)]],
                                         into: &state))

        let changes = try dao.delete("consumers", key: consumerID, in: state).get()
        #expect(changes.count == 4)
        #expect(changes.contains(.delete(entity: "consumer_group_consumers", key: "\(groupID):\(consumerID)")))
        #expect(changes.contains(.delete(entity: "keyauth_credentials", key: credentialID)))
        #expect(changes.contains(.delete(entity: "plugins", key: pluginID)))
        #expect(changes.last == .delete(entity: "consumers", key: consumerID), "children are removed before their parent")

        let after = state.applying(changes, registry: registry)
        for entity in ["consumers", "consumer_group_consumers", "keyauth_credentials", "plugins"] {
            #expect(after.rows(entity).isEmpty, "\(entity)")
        }
        #expect(after.rows("consumer_groups").count == 1, "the group itself stays")
    }

    @Test func deletingARouteCascadesToItsPlugins() throws {
        var state = empty
        let serviceID = try id(try insert("services", ["name": "svc", "host": "h"], into: &state))
        let routeID = try id(try insert("routes", ["paths": ["/a"], "service": ["name": "svc"]], into: &state))
        let routePlugin = try id(try insert("plugins", ["name": "key-auth", "route": ["id": .string(routeID)]], into: &state))
        try insert("plugins", ["name": "key-auth", "service": ["id": .string(serviceID)]], into: &state)

        let changes = try dao.delete("routes", key: routeID, in: state).get()
        #expect(changes == [.delete(entity: "plugins", key: routePlugin), .delete(entity: "routes", key: routeID)])
        #expect(state.applying(changes, registry: registry).rows("plugins").count == 1, "the service's plugin stays")
    }

    @Test func deletingAMissingEntityChangesNothing() throws {
        var state = empty
        try insert("services", ["name": "svc", "host": "h"], into: &state)
        #expect(try dao.delete("services", key: StoreFixtures.uuid(999), in: state).get() == [])
    }

    // MARK: Applying changes

    @Test func applyingPutsInPlaceAppendsAndDeletes() {
        let a: JSONValue = ["id": .string(StoreFixtures.uuid(1)), "name": "a"]
        let b: JSONValue = ["id": .string(StoreFixtures.uuid(2)), "name": "b"]
        let c: JSONValue = ["id": .string(StoreFixtures.uuid(3)), "name": "c"]
        let renamed: JSONValue = ["id": .string(StoreFixtures.uuid(1)), "name": "a2"]
        let membership: JSONValue = ["consumer_group": ["id": .string(StoreFixtures.uuid(4))],
                                     "consumer": ["id": .string(StoreFixtures.uuid(5))]]
        let base = DeclarativeConfig(storedRows: ["services": [a, b]])

        let after = base.applying([
            .put(entity: "services", row: c),
            .put(entity: "services", row: renamed),
            .delete(entity: "services", key: StoreFixtures.uuid(2)),
            .put(entity: "consumer_group_consumers", row: membership),
        ], registry: registry)
        #expect(after.rows("services") == [renamed, c], "a put replaces in place, a new key appends")
        #expect(after.rows("consumer_group_consumers") == [membership])

        let removed = after.applying([
            .delete(entity: "consumer_group_consumers", key: "\(StoreFixtures.uuid(4)):\(StoreFixtures.uuid(5))"),
            .delete(entity: "services", key: StoreFixtures.uuid(999)),
        ], registry: registry)
        #expect(removed.rows("consumer_group_consumers").isEmpty, "memberships are keyed by both references")
        #expect(removed.rows("services") == [renamed, c])
    }
}

// MARK: - SQLiteEntityStore

/// Rows of every stored entity, written by hand: the store keeps whatever it is given.
enum StoredRows {
    static let serviceID = StoreFixtures.uuid(101)
    static let routeID = StoreFixtures.uuid(102)
    static let consumerID = StoreFixtures.uuid(103)
    static let groupID = StoreFixtures.uuid(104)
    static let pluginID = StoreFixtures.uuid(105)
    static let credentialID = StoreFixtures.uuid(106)
    static let membershipKey = "\(groupID):\(consumerID)"

    static func service(_ id: String, name: String?, host: String = "upstream.test") -> JSONValue {
        ["id": .string(id), "name": name.map(JSONValue.string) ?? .null, "host": .string(host), "port": 80,
         "protocol": "http", "path": nil, "tags": ["blue", "ü"], "enabled": true, "created_at": 1_700_000_000]
    }

    static let route: JSONValue = ["id": .string(routeID), "name": "r1", "paths": ["/a"], "strip_path": true,
                                   "service": ["id": .string(serviceID)]]
    static let consumer: JSONValue = ["id": .string(consumerID), "username": "alice", "custom_id": nil]
    static let group: JSONValue = ["id": .string(groupID), "name": "gold"]
    static let membership: JSONValue = ["consumer_group": ["id": .string(groupID)], "consumer": ["id": .string(consumerID)],
                                        "created_at": 1_700_000_000]
    static let plugin: JSONValue = ["id": .string(pluginID), "name": "key-auth", "instance_name": nil,
                                    "route": ["id": .string(routeID)], "service": nil, "consumer": nil, "consumer_group": nil,
                                    "config": ["key_names": ["apikey"], "hide_credentials": false], "enabled": true]
    static let credential: JSONValue = ["id": .string(credentialID), "key": "secret-key", "consumer": ["id": .string(consumerID)],
                                        "ttl": nil]

    static var all: [String: [JSONValue]] {
        ["services": [service(serviceID, name: "svc")], "routes": [route], "consumers": [consumer],
         "consumer_groups": [group], "consumer_group_consumers": [membership], "plugins": [plugin],
         "keyauth_credentials": [credential]]
    }

    /// Every row, parents first.
    static var puts: [EntityChange] {
        ["services", "routes", "consumers", "consumer_groups", "consumer_group_consumers", "plugins", "keyauth_credentials"]
            .flatMap { entity in all[entity]!.map { EntityChange.put(entity: entity, row: $0) } }
    }

    /// Every row, children first.
    static let deletes: [EntityChange] = [
        .delete(entity: "consumer_group_consumers", key: membershipKey),
        .delete(entity: "keyauth_credentials", key: credentialID),
        .delete(entity: "plugins", key: pluginID),
        .delete(entity: "routes", key: routeID),
        .delete(entity: "services", key: serviceID),
        .delete(entity: "consumer_groups", key: groupID),
        .delete(entity: "consumers", key: consumerID),
    ]
}

struct SQLiteEntityStoreTests {
    let registry = StoreFixtures.registry

    /// A database path in a directory of its own, removed afterwards.
    func withDatabasePath(_ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("silverback-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await body(directory.appendingPathComponent("silverback.db").path)
    }

    func open(_ path: String) throws -> SQLiteEntityStore { try SQLiteEntityStore(path: path, registry: registry) }

    func commitError(_ store: SQLiteEntityStore, _ changes: [EntityChange]) async -> StoreError? {
        do {
            try await store.commit(changes)
            return nil
        } catch {
            return error
        }
    }

    @Test func rowsOfEveryTableSurviveReopening() async throws {
        try await withDatabasePath { path in
            do {
                let store = try open(path)
                try await store.commit(StoredRows.puts)
                #expect(try await store.loadAll() == StoredRows.all)
            }
            let reopened = try open(path)
            #expect(try await reopened.loadAll() == StoredRows.all)
        }
    }

    @Test func deletesOfEveryTableSurviveReopening() async throws {
        try await withDatabasePath { path in
            do {
                let store = try open(path)
                try await store.commit(StoredRows.puts)
                try await store.commit(StoredRows.deletes)
            }
            let loaded = try await open(path).loadAll()
            #expect(Set(loaded.keys) == Set(StoredRows.all.keys), "every table is read")
            #expect(loaded.values.allSatisfy { $0.isEmpty }, "\(loaded)")
        }
    }

    @Test func rowsComeBackInInsertionOrderAndAnUpdateKeepsItsPlace() async throws {
        try await withDatabasePath { path in
            let a = StoredRows.service(StoreFixtures.uuid(201), name: "a")
            let b = StoredRows.service(StoreFixtures.uuid(202), name: "b")
            let c = StoredRows.service(StoreFixtures.uuid(203), name: "c")
            let d = StoredRows.service(StoreFixtures.uuid(204), name: "d")
            let updatedA = StoredRows.service(StoreFixtures.uuid(201), name: "a", host: "moved.test")
            do {
                let store = try open(path)
                try await store.commit([.put(entity: "services", row: a), .put(entity: "services", row: b),
                                        .put(entity: "services", row: c)])
                try await store.commit([.put(entity: "services", row: updatedA)])
                try await store.commit([.delete(entity: "services", key: StoreFixtures.uuid(202))])
                try await store.commit([.put(entity: "services", row: d)])
            }
            #expect(try await open(path).loadAll()["services"] == [updatedA, c, d])
        }
    }

    @Test func pingOpensTheFileAfresh() async throws {
        try await withDatabasePath { path in
            let store = try open(path)
            try await store.commit(StoredRows.puts)
            try await store.ping()
            // The file removed under the running node (its pool still holds it open and would
            // answer from the unlinked copy).
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            await #expect(throws: StoreError.self) { try await store.ping() }
        }
    }

    @Test func migrationsAreRecordedAndNotReapplied() async throws {
        try await withDatabasePath { path in
            do {
                let store = try open(path)
                #expect(try store.appliedMigrations() == ["001_core_entities", "002_rl_counters"])
                try await store.commit(StoredRows.puts)
            }
            let reopened = try open(path)
            #expect(try reopened.appliedMigrations() == ["001_core_entities", "002_rl_counters"])
            #expect(try await reopened.loadAll() == StoredRows.all, "reopening keeps the data")
        }
    }

    @Test func aUniqueClashRollsBackTheWholeCommit() async throws {
        try await withDatabasePath { path in
            let store = try open(path)
            try await store.commit(StoredRows.puts)
            let before = try await store.loadAll()
            let bob: JSONValue = ["id": .string(StoreFixtures.uuid(301)), "username": "bob"]
            let error = await commitError(store, [
                .put(entity: "consumers", row: bob),
                .put(entity: "services", row: StoredRows.service(StoreFixtures.uuid(302), name: "dup")),
                .put(entity: "services", row: StoredRows.service(StoreFixtures.uuid(303), name: "dup")),
            ])
            #expect(error?.isConstraint == true, "\(String(describing: error))")
            #expect(try await store.loadAll() == before, "nothing of the transaction stays, not even the puts before the clash")
        }
    }

    @Test func aReferenceToAMissingRowRollsBackTheWholeCommit() async throws {
        try await withDatabasePath { path in
            let store = try open(path)
            try await store.commit(StoredRows.puts)
            let before = try await store.loadAll()
            let orphan: JSONValue = ["id": .string(StoreFixtures.uuid(401)), "paths": ["/x"],
                                     "service": ["id": .string(StoreFixtures.uuid(999))]]
            let error = await commitError(store, [
                .put(entity: "services", row: StoredRows.service(StoreFixtures.uuid(402), name: "fresh")),
                .put(entity: "routes", row: orphan),
            ])
            #expect(error?.isConstraint == true, "\(String(describing: error))")
            #expect(try await store.loadAll() == before)
        }
    }

    @Test func deletingAReferencedServiceIsRefusedByTheDatabase() async throws {
        try await withDatabasePath { path in
            let store = try open(path)
            try await store.commit(StoredRows.puts)
            let error = await commitError(store, [.delete(entity: "services", key: StoredRows.serviceID)])
            #expect(error?.isConstraint == true, "routes.service_id is ON DELETE RESTRICT")
            #expect(try await store.loadAll() == StoredRows.all)
        }
    }

    @Test func writesThroughEntityDatabaseSurviveARestart() async throws {
        try await withDatabasePath { path in
            let dao = EntityDAO(registry: registry)
            let committed: DeclarativeConfig
            do {
                let database = try await EntityDatabase(store: try open(path), dao: dao)
                _ = try await database.write { dao, current in
                    dao.insert("services", ["name": "svc", "host": "h"], in: current).map { (output: $0.row, changes: $0.changes) }
                }.get()
                _ = try await database.write { dao, current in
                    dao.insert("routes", ["paths": ["/a"], "service": ["name": "svc"]], in: current)
                        .map { (output: $0.row, changes: $0.changes) }
                }.get()
                committed = database.current
            }
            let restarted = try await EntityDatabase(store: try open(path), dao: dao)
            #expect(restarted.current.rows("services") == committed.rows("services"))
            #expect(restarted.current.rows("routes") == committed.rows("routes"))
            #expect(restarted.current.rows("routes").count == 1)
        }
    }
}

// MARK: - EntityDatabase

/// A store whose every commit fails (a full disk, a lost connection).
struct RefusingStore: EntityStore {
    let stored: [String: [JSONValue]]

    func loadAll() async throws(StoreError) -> [String: [JSONValue]] { stored }

    func commit(_ changes: [EntityChange]) async throws(StoreError) {
        throw StoreError("disk I/O error")
    }
}

struct EntityDatabaseTests {
    let registry = StoreFixtures.registry

    func open(_ store: any EntityStore, published: Locked<[DeclarativeConfig]>) async throws -> EntityDatabase {
        try await EntityDatabase(store: store, dao: EntityDAO(registry: registry)) { state in
            published.update { $0.append(state) }
        }
    }

    static func insert(_ database: EntityDatabase, _ input: [String: JSONValue]) async -> Result<JSONValue, KongError> {
        await database.write { dao, current in
            dao.insert("services", input, in: current).map { (output: $0.row, changes: $0.changes) }
        }
    }

    static func insertService(_ database: EntityDatabase, named name: String) async -> Result<JSONValue, KongError> {
        await insert(database, ["name": .string(name), "host": "upstream.test"])
    }

    @Test func aSuccessfulWriteUpdatesMemoryStoreAndListeners() async throws {
        let store = InMemoryEntityStore(registry: registry)
        let published = Locked<[DeclarativeConfig]>([])
        let database = try await open(store, published: published)

        let row = try await Self.insertService(database, named: "svc").get()
        #expect(database.current.rows("services") == [row])
        #expect(try await store.loadAll()["services"] == [row])
        #expect(published.value == [database.current])

        let reloaded = try await open(store, published: Locked([]))
        #expect(reloaded.current.rows("services") == [row], "a new database over the same store starts from its rows")
    }

    @Test func aRefusedWriteChangesNothing() async throws {
        let store = InMemoryEntityStore(registry: registry)
        let published = Locked<[DeclarativeConfig]>([])
        let database = try await open(store, published: published)
        _ = try await Self.insertService(database, named: "kept").get()
        let before = database.current
        let storedBefore = try await store.loadAll()

        let result = await Self.insert(database, ["name": "bad", "port": 70000])
        #expect(StoreFixtures.refusal(result)?.code == .schemaViolation)
        #expect(database.current == before)
        #expect(try await store.loadAll() == storedBefore)
        #expect(published.value.count == 1, "only the first write was published")
    }

    @Test func concurrentWritesAllLand() async throws {
        let store = InMemoryEntityStore(registry: registry)
        let published = Locked<[DeclarativeConfig]>([])
        let database = try await open(store, published: published)

        let results = await withTaskGroup(of: Result<JSONValue, KongError>.self) { group in
            for i in 0..<50 {
                group.addTask { await Self.insertService(database, named: "service-\(i)") }
            }
            var results: [Result<JSONValue, KongError>] = []
            for await result in group { results.append(result) }
            return results
        }
        #expect(results.filter { StoreFixtures.refusal($0) != nil }.isEmpty)
        #expect(database.current.rows("services").count == 50)
        #expect(Set(database.current.rows("services").compactMap { $0["name"]?.stringValue }).count == 50)
        #expect(try await store.loadAll()["services"]?.count == 50)
        #expect(published.value.count == 50)
        #expect(published.value.last == database.current)
    }

    @Test func concurrentInsertsOfOneNameAdmitExactlyOne() async throws {
        let database = try await open(InMemoryEntityStore(registry: registry), published: Locked([]))

        let results = await withTaskGroup(of: Result<JSONValue, KongError>.self) { group in
            for _ in 0..<30 {
                group.addTask { await Self.insertService(database, named: "same") }
            }
            var results: [Result<JSONValue, KongError>] = []
            for await result in group { results.append(result) }
            return results
        }
        let refusals = results.compactMap { StoreFixtures.refusal($0) }
        #expect(results.count - refusals.count == 1, "each write is decided on the state the previous one committed")
        #expect(refusals.count == 29)
        #expect(refusals.allSatisfy { $0.code == .uniqueViolation })
        #expect(database.current.rows("services").count == 1)
    }

    @Test func aFailingStoreIsADatabaseErrorAndChangesNothing() async throws {
        let existing = StoredRows.service(StoreFixtures.uuid(1), name: "existing")
        let published = Locked<[DeclarativeConfig]>([])
        let database = try await open(RefusingStore(stored: ["services": [existing]]), published: published)
        let before = database.current
        #expect(before.rows("services") == [existing])

        let result = await Self.insertService(database, named: "svc")
        #expect(StoreFixtures.refusal(result) == KongError(code: .databaseError, message: "disk I/O error"))
        #expect(database.current == before)
        #expect(published.value.isEmpty)
    }

    @Test func aWriteWithoutChangesDoesNotReachTheStore() async throws {
        let published = Locked<[DeclarativeConfig]>([])
        let database = try await open(RefusingStore(stored: [:]), published: published)
        let result: Result<Void, KongError> = await database.write { dao, current in
            dao.delete("services", key: StoreFixtures.uuid(999), in: current).map { (output: (), changes: $0) }
        }
        #expect(StoreFixtures.refusal(result) == nil, "nothing to commit: the refusing store was never asked")
        #expect(published.value.isEmpty)
    }
}

/// DB mode's live application: every committed state is handed to the rebuilder; whatever the
/// burst, the gateway ends on the last one.
struct SnapshotRebuilderTests {
    @Test func aBurstEndsOnTheLastState() async throws {
        let loader = DeclarativeLoader(registry: StoreFixtures.registry)
        let gateway = Gateway(loader: loader, factories: [], threads: 1)
        let rebuilder = SnapshotRebuilder(gateway: gateway) { message in Issue.record("unexpected: \(message)") }
        for count in 1...40 {
            let services = (0..<count).map { "- {name: s\($0), host: h\($0).test}" }.joined(separator: "\n")
            rebuilder.schedule(try loader.load(text: "_format_version: \"3.0\"\nservices:\n\(services)\n", format: .yaml))
        }
        for _ in 0..<500 where rebuilder.isBusy { try await Task.sleep(nanoseconds: 10_000_000) }
        #expect(!rebuilder.isBusy)
        #expect(gateway.holder.current.config.rows("services").count == 40, "the newest state is the one running")
    }
}
