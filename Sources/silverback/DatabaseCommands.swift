import AdminAPI
import ArgumentParser
import Core
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// DB mode on SQLite: where the database lives and how a node opens it.
enum DatabaseMode {
    /// One file under `prefix`, next to everything else the node keeps.
    static func path(settings: Settings) -> String { settings.prefix + "/silverback.db" }

    /// One writer process per database: a running node holds this lock, so `db_import` cannot
    /// change rows under it (its in-memory copy would go stale). Held until the process exits.
    static func lockForWriting(settings: Settings) throws {
        let lockPath = path(settings: settings) + ".lock"
        try? FileManager.default.createDirectory(atPath: settings.prefix, withIntermediateDirectories: true)
        let fd = Glibc.open(lockPath, O_CREAT | O_RDWR, 0o600)
        guard fd >= 0 else { throw CLIError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw CLIError("the database \(path(settings: settings)) is in use by a running node; stop it first, or change it through the Admin API")
        }
        // The descriptor stays open on purpose: the lock lasts as long as this process.
    }

    /// What a `config db_*` command works with: the settings (DB mode required) and the entity
    /// schemas of a DB-mode node.
    static func commandContext(_ node: NodeOptions, command: String) throws -> (settings: Settings, loader: DeclarativeLoader) {
        let settings = try node.settings()
        guard settings.database == .sqlite else {
            throw CLIError("\(command) needs a database: set database = sqlite (it is '\(settings.database.rawValue)')")
        }
        return (settings, try node.loader(for: settings, dbless: false))
    }

    static func openStore(settings: Settings, registry: EntityRegistry) throws -> SQLiteEntityStore {
        do { return try SQLiteEntityStore(path: path(settings: settings), registry: registry) } catch {
            throw CLIError(error.message)
        }
    }

    /// Opens the store (migrating it), applies what it holds, and keeps the gateway following
    /// every later commit.
    /// The caller holds the write lock (`lockForWriting`) from before it opened `store`.
    static func open(settings: Settings, store: SQLiteEntityStore, registry: EntityRegistry,
                     gateway: Gateway) async throws -> EntityDatabase {
        let rebuilder = SnapshotRebuilder(gateway: gateway) { message in
            FileHandle.standardError.write(Data((message + "\n").utf8))
        }
        let database: EntityDatabase
        do {
            database = try await EntityDatabase(store: store, dao: EntityDAO(registry: registry),
                                                onChange: { rebuilder.schedule($0) }, admit: gateway.admissionProblem)
        } catch {
            throw CLIError("cannot read the database \(path(settings: settings)): \(error.message)")
        }
        do { try gateway.apply(database.current) } catch {
            throw CLIError("the stored configuration cannot be applied: \(error.message)")
        }
        return database
    }
}

extension Config {
    /// `kong config db_import`: a declarative file into the database, validated whole, written in
    /// one transaction (nothing is written when anything is refused).
    struct DBImport: AsyncParsableCommand, AsyncEntry {
        static let configuration = CommandConfiguration(commandName: "db_import",
                                                        abstract: "Import a declarative configuration file into the database.")
        @Argument(help: "The declarative configuration file (.yml, .yaml or .json).") var file: String
        @OptionGroup var node: NodeOptions

        func run() async throws { try await serve() }

        func serve() async throws {
            let (settings, loader) = try DatabaseMode.commandContext(node, command: "db_import")
            let config = try NodeOptions.loadDeclarative(path: file, loader: loader, failure: "Failed importing:")
            try DatabaseMode.lockForWriting(settings: settings)
            let store = try DatabaseMode.openStore(settings: settings, registry: loader.registry)
            var changes: [EntityChange] = []
            for entity in loader.registry.orderedEntityNames {
                for row in config.rows(entity) { changes.append(.put(entity: entity, row: row)) }
            }
            do { try await store.commit(changes) } catch {
                throw CLIError("Failed importing:\n\(error.message)")
            }
            print("parse successful")
            print("import successful: \(changes.count) entities written to \(DatabaseMode.path(settings: settings))")
        }
    }

    /// `kong config db_export`: the database as a declarative file (YAML, or JSON for `.json`).
    struct DBExport: AsyncParsableCommand, AsyncEntry {
        static let configuration = CommandConfiguration(commandName: "db_export",
                                                        abstract: "Export the database as a declarative configuration file.")
        @Argument(help: "Where to write it.") var file: String = "kong.yml"
        @OptionGroup var node: NodeOptions

        func run() async throws { try await serve() }

        func serve() async throws {
            let (settings, loader) = try DatabaseMode.commandContext(node, command: "db_export")
            let store = try DatabaseMode.openStore(settings: settings, registry: loader.registry)
            let registry = loader.registry
            let rows: [String: [JSONValue]]
            do { rows = try await store.loadAll() } catch { throw CLIError(error.message) }
            let config = DeclarativeConfig(storedRows: rows)
            let text = file.lowercased().hasSuffix(".json")
                ? config.exportDocument(entityOrder: registry.orderedEntityNames).serialized(JSONWriteOptions(pretty: true))
                : config.exportYAML(entityOrder: registry.orderedEntityNames)
            do { try text.write(toFile: file, atomically: true, encoding: .utf8) } catch {
                throw CLIError("could not write \(file): \(error.localizedDescription)")
            }
            print("exported \(rows.values.map(\.count).reduce(0, +)) entities to \(file)")
        }
    }
}
