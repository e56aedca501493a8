import Foundation
import NIOConcurrencyHelpers

/// DB mode's entities: the store, and the current rows mirrored in memory for reads. Writes go
/// through one lane, so each is validated against exactly the state it commits on top of; the
/// memory mirror changes only after the store acknowledged the transaction, so a failed write
/// changes nothing anywhere.
public final class EntityDatabase: Sendable {
    public let store: any EntityStore
    public let dao: EntityDAO
    private let state: NIOLockedValueBox<DeclarativeConfig>
    private let lane = SerialLane()
    private let onChange: @Sendable (DeclarativeConfig) -> Void
    private let admit: @Sendable ([EntityChange]) -> KongError?

    /// Loads every stored row; `onChange` receives each committed state (the gateway rebuilds
    /// its snapshot from it). `admit` sees each valid write's changes before they are committed
    /// and may refuse them: what the schemas accept but this node could not run (a plugin
    /// configuration its handler cannot be built from) is refused rather than stored.
    public init(store: any EntityStore, dao: EntityDAO,
                onChange: @escaping @Sendable (DeclarativeConfig) -> Void = { _ in },
                admit: @escaping @Sendable ([EntityChange]) -> KongError? = { _ in nil }) async throws(StoreError) {
        self.store = store
        self.dao = dao
        self.admit = admit
        self.onChange = onChange
        state = NIOLockedValueBox(DeclarativeConfig(storedRows: try await store.loadAll()))
    }

    /// The committed entities.
    public var current: DeclarativeConfig { state.withLockedValue { $0 } }

    /// Runs one write: `decide` sees the committed state and returns the changes (or Kong's
    /// error); they are committed in one transaction, then published.
    public func write<Output: Sendable>(
        _ decide: @Sendable (EntityDAO, DeclarativeConfig) -> Result<(output: Output, changes: [EntityChange]), KongError>
    ) async -> Result<Output, KongError> {
        await lane.run {
            let before = current
            // Kong's ttl cleanup: rows whose ttl ran out (already invisible to reads) are deleted
            // with the next write, which is decided without them, so their unique keys are free.
            let expired = expiredRows(in: before)
            let decision: (output: Output, changes: [EntityChange])
            switch decide(dao, expired.isEmpty ? before : before.applying(expired, registry: dao.registry)) {
            case .failure(let error): return .failure(error)
            case .success(let decided): decision = decided
            }
            guard !decision.changes.isEmpty else { return .success(decision.output) }
            let changes = expired + decision.changes
            if let refusal = admit(changes) { return .failure(refusal) }
            do throws(StoreError) {
                try await store.commit(changes)
            } catch {
                // The client gets Kong's generic 500; the operator gets the reason.
                ErrorLog.report("database write failed: \(error.message)")
                return .failure(KongError(code: .databaseError, message: error.message))
            }
            let after = before.applying(changes, registry: dao.registry)
            state.withLockedValue { $0 = after }
            onChange(after)
            return .success(decision.output)
        }
    }
}

extension EntityDatabase {
    /// Deletions of the rows (of entities with a `ttl`) that expired by now.
    func expiredRows(in config: DeclarativeConfig) -> [EntityChange] {
        let now = dao.auto.now()
        var deletions: [EntityChange] = []
        for (entity, schema) in dao.registry.schemas where schema.ttl {
            for row in config.rows(entity) where EntityTTL.hasExpired(row, at: now) {
                if let key = RowKey.of(row, schema: schema) { deletions.append(.delete(entity: entity, key: key)) }
            }
        }
        return deletions
    }
}

/// Runs async bodies one at a time, in arrival order (an actor would interleave them at each
/// `await`).
final class SerialLane: Sendable {
    private let state = NIOLockedValueBox<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: () async -> T) async -> T {
        await acquire()
        defer { release() }
        return await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { state -> Bool in
                if !state.busy {
                    state.busy = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()  // stays busy: ownership passes to the next writer
        }
        next?.resume()
    }
}
