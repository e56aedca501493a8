import Foundation
import GRDB
import NIOConcurrencyHelpers

/// One window of one rate-limiting counter: the limiter's namespace (plugin instance and
/// provider), the identifier's value, the window's size and aligned start, in seconds.
public struct CounterWindowKey: Hashable, Sendable {
    public let namespace: String
    public let identifier: String
    public let windowSize: Int
    public let windowStart: Int64

    public init(namespace: String, identifier: String, windowSize: Int, windowStart: Int64) {
        self.namespace = namespace
        self.identifier = identifier
        self.windowSize = windowSize
        self.windowStart = windowStart
    }

    /// Seconds a counter is kept after its first increment: its own window, the next one (which
    /// reads it as the sliding window's previous count), and a second of margin.
    public var lifetime: Int { 2 * max(1, windowSize) + 1 }
}

/// Counters several gateway nodes share (ai-rate-limiting-advanced's `cluster` strategy in the
/// configuration database; its `redis` strategy implements the same shape in Plugins).
public protocol SharedCounterStore: AnyObject, Sendable {
    /// The counts of `keys` at `now` (0 for counters absent or expired), reading every increment
    /// this node queued before the call.
    func counts(_ keys: [CounterWindowKey], now: Int64) async throws -> [Double]
    /// Queues the increments before returning, so this node's next `counts` sees them; a counter
    /// that does not exist yet is created to expire `lifetime` seconds after `now`. `done`
    /// reports the outcome once the store has them.
    func increment(_ amounts: [CounterWindowKey: Double], now: Int64, done: @escaping @Sendable ((any Error)?) -> Void)
}

/// The `cluster` strategy's counters in DB mode's SQLite file (table `rl_counters`, as Kong EE
/// names it). Reads and increments both go through the database's single writer queue, in the
/// order they are asked for: a decision always sees the increments this node made before it.
/// Expired rows are ignored by reads and deleted at most once a second by an increment.
public final class SQLiteCounterStore: SharedCounterStore {
    private let pool: DatabasePool
    private let lastPurge = NIOLockedValueBox<Int64>(0)

    /// Shares the entity store's connection pool and file (the migrations created the table).
    public init(entityStore: SQLiteEntityStore) { pool = entityStore.pool }

    public func counts(_ keys: [CounterWindowKey], now: Int64) async throws -> [Double] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Double], any Error>) in
            pool.asyncWriteWithoutTransaction { db in
                continuation.resume(with: Result {
                    try keys.map { key in
                        try Double.fetchOne(db, sql: """
                            SELECT count FROM rl_counters
                            WHERE namespace = ? AND key = ? AND window_size = ? AND window_start = ? AND expire_at > ?
                            """, arguments: [key.namespace, key.identifier, key.windowSize, key.windowStart, now]) ?? 0
                    }
                })
            }
        }
    }

    public func increment(_ amounts: [CounterWindowKey: Double], now: Int64,
                          done: @escaping @Sendable ((any Error)?) -> Void) {
        let purge = lastPurge.withLockedValue { last -> Bool in
            guard now > last else { return false }
            last = now
            return true
        }
        pool.asyncWrite({ db in
            if purge { try db.execute(sql: "DELETE FROM rl_counters WHERE expire_at <= ?", arguments: [now]) }
            for (key, amount) in amounts {
                try db.execute(sql: """
                    INSERT INTO rl_counters (namespace, key, window_size, window_start, count, expire_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (namespace, key, window_size, window_start) DO UPDATE SET count = count + excluded.count
                    """, arguments: [key.namespace, key.identifier, key.windowSize, key.windowStart, amount,
                                     now + Int64(key.lifetime)])
            }
        }, completion: { _, result in
            switch result {
            case .success: done(nil)
            case .failure(let error): done(error)
            }
        })
    }

    /// The count of every row kept now, expired or not (what tests and operators inspect).
    public func storedCounts() throws -> [Double] {
        try pool.read { db in try Double.fetchAll(db, sql: "SELECT count FROM rl_counters") }
    }
}
