import NIOConcurrencyHelpers

/// Where DB mode keeps its entities (ARCHITECTURE: one protocol; SQLite now, PostgreSQL later).
/// Kong's rules — validation, uniqueness, references, cascades — live above it in `EntityDAO`,
/// so nothing above this protocol knows which store runs; a store only keeps rows durably and
/// enforces its own constraints as a second line of defence.
public protocol EntityStore: Sendable {
    /// Every stored row per entity name, in the order the rows were first stored.
    func loadAll() async throws(StoreError) -> [String: [JSONValue]]
    /// Applies `changes` in order, in one transaction: all of them or none. Returns once the
    /// transaction is durable, so an acknowledged write survives a crash.
    func commit(_ changes: [EntityChange]) async throws(StoreError)
    /// Checks that the store answers a read now (Admin API `/status`, as Kong's `kong.db:connect()`).
    func ping() async throws(StoreError)
}

extension EntityStore {
    /// A store without a connection to lose (rows in memory) is always reachable.
    public func ping() async throws(StoreError) {}
}

/// One row written or removed.
public enum EntityChange: Sendable, Equatable {
    case put(entity: String, row: JSONValue)
    case delete(entity: String, key: String)

    public var entity: String {
        switch self {
        case .put(let entity, _), .delete(let entity, _): return entity
        }
    }
}

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let message: String
    /// A uniqueness or reference constraint of the store refused the change.
    public let isConstraint: Bool
    public init(_ message: String, isConstraint: Bool = false) {
        self.message = message
        self.isConstraint = isConstraint
    }
    public var description: String { message }
}

/// The key a row is stored under: its `id`, or for entities keyed by their references
/// (consumer-group membership) the referenced ids joined by `:`.
public enum RowKey {
    public static func of(_ row: JSONValue, schema: EntitySchema) -> String? {
        if schema.primaryKey == ["id"] { return row["id"]?.stringValue }
        let parts = schema.primaryKey.compactMap { row[$0]?["id"]?.stringValue ?? row[$0]?.stringValue }
        return parts.count == schema.primaryKey.count ? parts.joined(separator: ":") : nil
    }
}

/// A store that keeps rows in memory only: for tests of everything above the store, and for
/// nodes that do not need to survive a restart.
public final class InMemoryEntityStore: EntityStore {
    private let rows = NIOLockedValueBox<[String: [(key: String, row: JSONValue)]]>([:])
    private let registry: EntityRegistry

    public init(registry: EntityRegistry) { self.registry = registry }

    public func loadAll() async throws(StoreError) -> [String: [JSONValue]] {
        rows.withLockedValue { $0.mapValues { $0.map(\.row) } }
    }

    public func commit(_ changes: [EntityChange]) async throws(StoreError) {
        var keyed: [(EntityChange, String)] = []
        for change in changes {
            switch change {
            case .put(let entity, let row):
                guard let key = registry[entity].flatMap({ RowKey.of(row, schema: $0) }) else {
                    throw StoreError("row of '\(entity)' without a key")
                }
                keyed.append((change, key))
            case .delete(_, let key):
                keyed.append((change, key))
            }
        }
        rows.withLockedValue { all in
            for (change, key) in keyed {
                switch change {
                case .put(let entity, let row):
                    if let at = all[entity]?.firstIndex(where: { $0.key == key }) { all[entity]![at].row = row }
                    else { all[entity, default: []].append((key, row)) }
                case .delete(let entity, _):
                    all[entity]?.removeAll { $0.key == key }
                }
            }
        }
    }
}
