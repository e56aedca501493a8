import Foundation
import GRDB

/// DB mode's embedded store: one SQLite file in WAL mode, foreign keys on, every commit one
/// transaction made durable (`synchronous = FULL`) before it is acknowledged.
///
/// Each entity has its own table: the row as JSON in `body`, plus the columns Kong's
/// constraints need — unique fields, references (`<field>_id`, with Kong's delete rules) and
/// the plugins' cache key — so the database itself refuses what `EntityDAO` already refuses
/// (a second line of defence, and the only one for `config db_import` against stored rows).
public final class SQLiteEntityStore: EntityStore {
    let pool: DatabasePool
    let registry: EntityRegistry
    /// The tables of the entities this node knows.
    let tables: [String: StoredTable]

    /// Opens (creating when absent) the database at `path` and applies pending migrations.
    public init(path: String, registry: EntityRegistry) throws(StoreError) {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        // A reader such as `config db_export` may hold the file briefly: wait rather than fail.
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // WAL's default (NORMAL) may lose the last commits on power loss; FULL does not.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            pool = try DatabasePool(path: path, configuration: configuration)
            try SQLiteMigrations.migrator.migrate(pool)
        } catch {
            throw StoreError("cannot open the database \(path): \(error)")
        }
        var tables: [String: StoredTable] = [:]
        for table in StoredTable.all where registry[table.entity] != nil { tables[table.entity] = table }
        self.tables = tables
        self.registry = registry
    }

    /// The applied migrations, oldest first (for `/status` and tests).
    public func appliedMigrations() throws(StoreError) -> [String] {
        do { return try pool.read { db in try SQLiteMigrations.migrator.appliedMigrations(db) } } catch {
            throw StoreError("\(error)")
        }
    }

    public func loadAll() async throws(StoreError) -> [String: [JSONValue]] {
        let tables = self.tables
        do {
            return try await pool.read { db in
                var all: [String: [JSONValue]] = [:]
                for (entity, table) in tables {
                    let bodies = try String.fetchAll(db, sql: "SELECT body FROM \(table.name) ORDER BY rowid")
                    all[entity] = try bodies.map { text in
                        do { return try JSONValue.parse(text) } catch {
                            throw StoreError("a stored '\(entity)' row is not JSON: \(error)")
                        }
                    }
                }
                return all
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("cannot read the database: \(error)")
        }
    }

    /// As Kong's `kong.db:connect()`: a new connection, read-only (a missing file is not
    /// created), reading the schema. It finds a file gone or unreadable, not every corruption;
    /// the pool's own connections would answer from their page cache, and from the old copy of a
    /// file removed under the node. Runs off the event loops and the task pool (the open and the
    /// read block), waiting at most 1 s for a lock.
    public func ping() async throws(StoreError) {
        let path = pool.path
        let outcome: Result<Void, any Error> = await withCheckedContinuation { done in
            DispatchQueue.global().async {
                done.resume(returning: Result {
                    var configuration = Configuration()
                    configuration.readonly = true
                    configuration.busyMode = .timeout(1)
                    let connection = try DatabaseQueue(path: path, configuration: configuration)
                    _ = try connection.inDatabase { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
                    try connection.close()
                })
            }
        }
        if case .failure(let error) = outcome { throw StoreError("\(error)") }
    }

    public func commit(_ changes: [EntityChange]) async throws(StoreError) {
        guard !changes.isEmpty else { return }
        var statements: [(sql: String, arguments: StatementArguments)] = []
        for change in changes {
            guard let table = tables[change.entity], let schema = registry[change.entity] else {
                throw StoreError("no table stores '\(change.entity)' entities")
            }
            switch change {
            case .put(_, let row):
                guard let key = RowKey.of(row, schema: schema) else { throw StoreError("a '\(change.entity)' row without a key") }
                statements.append(table.upsert(key: key, row: row))
            case .delete(_, let key):
                statements.append(("DELETE FROM \(table.name) WHERE id = ?", [key]))
            }
        }
        let batch = statements
        do {
            try await pool.write { db in
                for statement in batch { try db.execute(sql: statement.sql, arguments: statement.arguments) }
            }
        } catch let error as DatabaseError {
            throw StoreError("the database refused the change: \(error.message ?? "\(error)")",
                             isConstraint: error.resultCode == .SQLITE_CONSTRAINT)
        } catch {
            throw StoreError("the database refused the change: \(error)")
        }
    }
}

/// How one entity is laid out in its table (must agree with `SQLiteMigrations`).
struct StoredTable: Sendable {
    enum Column: Sendable {
        /// A unique string field of the entity.
        case field(String)
        /// A reference: `<field>_id` holds the referenced id.
        case reference(String)
        /// Plugins: name + scope, unique.
        case pluginCacheKey
    }

    let entity: String
    let name: String
    let columns: [Column]

    static let all: [StoredTable] = [
        StoredTable(entity: "services", name: "services", columns: [.field("name")]),
        StoredTable(entity: "routes", name: "routes", columns: [.field("name"), .reference("service")]),
        StoredTable(entity: "consumers", name: "consumers", columns: [.field("username"), .field("custom_id")]),
        StoredTable(entity: "consumer_groups", name: "consumer_groups", columns: [.field("name")]),
        StoredTable(entity: "consumer_group_consumers", name: "consumer_group_consumers",
                    columns: [.reference("consumer_group"), .reference("consumer")]),
        StoredTable(entity: "plugins", name: "plugins",
                    columns: [.field("instance_name"), .pluginCacheKey, .reference("route"), .reference("service"),
                              .reference("consumer"), .reference("consumer_group")]),
        StoredTable(entity: "keyauth_credentials", name: "keyauth_credentials",
                    columns: [.field("key"), .reference("consumer")]),
    ]

    func upsert(key: String, row: JSONValue) -> (sql: String, arguments: StatementArguments) {
        var names = ["id"], values: [(any DatabaseValueConvertible)?] = [key]
        for column in columns {
            switch column {
            case .field(let field):
                names.append(field)
                values.append(row[field]?.stringValue)
            case .reference(let field):
                names.append(field + "_id")
                values.append(row[field]?["id"]?.stringValue)
            case .pluginCacheKey:
                names.append("cache_key")
                values.append(Self.pluginCacheKey(row))
            }
        }
        names.append("body")
        values.append(row.serialized())
        let quoted = names.map { "\"\($0)\"" }
        let updates = quoted.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        let sql = "INSERT INTO \(name) (\(quoted.joined(separator: ", "))) VALUES (\(names.map { _ in "?" }.joined(separator: ", ")))"
            + " ON CONFLICT(id) DO UPDATE SET \(updates)"
        return (sql, StatementArguments(values))
    }

    /// The plugin's name and scope, as Kong's cache key identifies one plugin per scope.
    static func pluginCacheKey(_ row: JSONValue) -> String {
        let parts = ["route", "service", "consumer", "consumer_group"].map { row[$0]?["id"]?.stringValue ?? "" }
        return "plugins:\(row["name"]?.stringValue ?? ""):" + parts.joined(separator: ":")
    }
}

/// The database schema, versioned: a migration, once released, never changes; a change is a
/// new migration appended to the list.
enum SQLiteMigrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("001_core_entities") { db in
            try db.execute(sql: """
                CREATE TABLE services (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT UNIQUE,
                    body TEXT NOT NULL);
                CREATE TABLE routes (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT UNIQUE,
                    service_id TEXT REFERENCES services(id) ON DELETE RESTRICT,
                    body TEXT NOT NULL);
                CREATE INDEX routes_service ON routes(service_id);
                CREATE TABLE consumers (
                    id TEXT PRIMARY KEY NOT NULL,
                    username TEXT UNIQUE,
                    custom_id TEXT UNIQUE,
                    body TEXT NOT NULL);
                CREATE TABLE consumer_groups (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT UNIQUE,
                    body TEXT NOT NULL);
                CREATE TABLE consumer_group_consumers (
                    id TEXT PRIMARY KEY NOT NULL,
                    consumer_group_id TEXT NOT NULL REFERENCES consumer_groups(id) ON DELETE CASCADE,
                    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
                    body TEXT NOT NULL,
                    UNIQUE (consumer_group_id, consumer_id));
                CREATE INDEX consumer_group_consumers_consumer ON consumer_group_consumers(consumer_id);
                CREATE TABLE plugins (
                    id TEXT PRIMARY KEY NOT NULL,
                    instance_name TEXT UNIQUE,
                    cache_key TEXT NOT NULL UNIQUE,
                    route_id TEXT REFERENCES routes(id) ON DELETE CASCADE,
                    service_id TEXT REFERENCES services(id) ON DELETE CASCADE,
                    consumer_id TEXT REFERENCES consumers(id) ON DELETE CASCADE,
                    consumer_group_id TEXT REFERENCES consumer_groups(id) ON DELETE CASCADE,
                    body TEXT NOT NULL);
                CREATE INDEX plugins_route ON plugins(route_id);
                CREATE INDEX plugins_service ON plugins(service_id);
                CREATE INDEX plugins_consumer ON plugins(consumer_id);
                CREATE INDEX plugins_consumer_group ON plugins(consumer_group_id);
                CREATE TABLE keyauth_credentials (
                    id TEXT PRIMARY KEY NOT NULL,
                    key TEXT NOT NULL UNIQUE,
                    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
                    body TEXT NOT NULL);
                CREATE INDEX keyauth_credentials_consumer ON keyauth_credentials(consumer_id);
                """)
        }
        // ai-rate-limiting-advanced's `cluster` strategy (SQLiteCounterStore). The row key is the
        // counter's window; expire_at bounds how long a row can matter.
        migrator.registerMigration("002_rl_counters") { db in
            try db.execute(sql: """
                CREATE TABLE rl_counters (
                    namespace TEXT NOT NULL,
                    key TEXT NOT NULL,
                    window_size INTEGER NOT NULL,
                    window_start INTEGER NOT NULL,
                    count REAL NOT NULL,
                    expire_at INTEGER NOT NULL,
                    PRIMARY KEY (namespace, key, window_size, window_start)) WITHOUT ROWID;
                CREATE INDEX rl_counters_expiry ON rl_counters(expire_at);
                """)
        }
        return migrator
    }
}
