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
    /// reports, once the store answered, the increments it did not apply (nil: none).
    func increment(_ amounts: [CounterWindowKey: Double], now: Int64,
                   done: @escaping @Sendable (CounterIncrementFailure?) -> Void)
}

/// Increments a shared store did not apply, and why (the others were applied).
public struct CounterIncrementFailure: Error, CustomStringConvertible {
    public let unsent: [CounterWindowKey: Double]
    public let reason: String

    public init(unsent: [CounterWindowKey: Double], reason: String) {
        self.unsent = unsent
        self.reason = reason
    }

    public var description: String { reason }
}

/// The `cluster` strategy's counters in DB mode's SQLite file (table `rl_counters`, as Kong EE
/// names it), over a connection of their own: counter traffic never queues behind Admin API
/// writes nor they behind it, and its commits skip the fsync that configuration writes pay
/// (`synchronous = NORMAL`: a power cut may lose the last counts, never corrupt the file).
/// Reads and increments go through that connection's queue in the order they are asked for, so
/// a decision always sees the increments this node made before it. Expired rows are ignored by
/// reads and deleted at most once a second by an increment.
public final class SQLiteCounterStore: SharedCounterStore {
    private let queue: DatabaseQueue
    private let lastPurge = NIOLockedValueBox<Int64>(0)

    /// Opens the database file at `path` (created and migrated by `SQLiteEntityStore`).
    public init(path: String) throws(StoreError) {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        do { queue = try DatabaseQueue(path: path, configuration: configuration) } catch {
            throw StoreError("cannot open the database \(path): \(error)")
        }
    }

    public func counts(_ keys: [CounterWindowKey], now: Int64) async throws -> [Double] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Double], any Error>) in
            queue.asyncWriteWithoutTransaction { db in
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
                          done: @escaping @Sendable (CounterIncrementFailure?) -> Void) {
        let purge = lastPurge.withLockedValue { last -> Bool in
            guard now > last else { return false }
            last = now
            return true
        }
        queue.asyncWrite({ db in
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
            case .failure(let error): done(CounterIncrementFailure(unsent: amounts, reason: "\(error)"))
            }
        })
    }

    /// The count of every row kept now, expired or not (what tests and operators inspect).
    public func storedCounts() throws -> [Double] {
        try queue.read { db in try Double.fetchAll(db, sql: "SELECT count FROM rl_counters") }
    }
}
