import Core
import Foundation
import NIOConcurrencyHelpers

/// Where the limiter's counters live: in the process (`local`), or in a store nodes share
/// (`redis`, `cluster`).
protocol TokenCounterStore: Sendable {
    func reading(_ key: TokenCounterKey, now: Double, sliding: Bool) async -> TokenWindowCounters.Reading
    /// Adds `amount` now; a shared store may send it after returning.
    func add(_ amount: Double, to key: TokenCounterKey, now: Double)
}

extension TokenWindowCounters: TokenCounterStore {
    func reading(_ key: TokenCounterKey, now: Double, sliding: Bool) async -> Reading {
        readingNow(key, now: now, sliding: sliding)
    }
}

extension CounterWindowKey {
    init(_ key: TokenCounterKey, windowStart: Int64) {
        self.init(namespace: key.namespace, identifier: key.identifier, windowSize: key.windowSize, windowStart: windowStart)
    }
}

/// The `redis` and `cluster` strategies' counting (spec §5.2/§5.3), the same over any shared
/// store: one counter per (namespace, identifier, window size, window start), each expiring
/// once the next window no longer reads it.
///
/// `sync_rate` 0: each decision reads the store and each count is queued to it at once (before
/// the response goes out, so the client's next request sees it). `sync_rate` > 0: counts
/// accumulate in the process and are flushed, and the counters in use re-read, every
/// `sync_rate` seconds; decisions use the values last read plus what this node has not sent
/// yet. When the store cannot be reached, counting goes on in the process's local counters and
/// the failure is logged at most once per interval; counting in the store resumes when it
/// answers again (a batch that failed is kept and sent with the next flush).
final class SharedTokenCounters: TokenCounterStore {
    /// One instance per store and sync rate, shared by configuration snapshots (connections and
    /// unflushed counts survive a reload).
    private static let instances = NIOLockedValueBox<[Identity: SharedTokenCounters]>([:])

    enum Identity: Hashable, Sendable {
        case redis(RedisCounterStore.Settings)
        /// A `SharedCounterStore` object (the database) and the sync rate.
        case database(ObjectIdentifier, syncRate: Double)
    }

    static func shared(_ identity: Identity, make: () -> SharedTokenCounters) -> SharedTokenCounters {
        instances.withLockedValue { instances in
            if let existing = instances[identity] { return existing }
            let created = make()
            instances[identity] = created
            return created
        }
    }

    let store: any SharedCounterStore
    /// How failures name the store (`redis`, `the database`).
    let storeName: String
    let syncRate: Double
    let fallback = TokenWindowCounters.shared
    private let failures = FailureLog(interval: 10)

    /// `sync_rate` > 0: counts not yet sent, counts sent but not yet read back, and the values
    /// last read. A decision adds all three, so no count of this node is missed or doubled
    /// while a flush is under way.
    private struct Batch {
        var pending: [CounterWindowKey: Double] = [:]
        var unread: [CounterWindowKey: Double] = [:]
        var known: [CounterWindowKey: Double] = [:]
        /// Counters decisions read, re-read at each flush until they expire (the value).
        var watched: [CounterWindowKey: Double] = [:]
        var flushing = false
    }
    private let batch = NIOLockedValueBox(Batch())

    init(store: any SharedCounterStore, storeName: String, syncRate: Double) {
        self.store = store
        self.storeName = storeName
        self.syncRate = syncRate
    }

    private static func windowStart(_ now: Double, _ size: Int64) -> Int64 {
        Int64((now / Double(size)).rounded(.down)) * size
    }

    func reading(_ key: TokenCounterKey, now: Double, sliding: Bool) async -> TokenWindowCounters.Reading {
        let size = Int64(max(1, key.windowSize))
        let start = Self.windowStart(now, size)
        let current = CounterWindowKey(key, windowStart: start), previous = CounterWindowKey(key, windowStart: start - size)
        let counts: (current: Double, previous: Double)
        if syncRate > 0 {
            counts = batch.withLockedValue { batch in
                let expiry = Double(start + 2 * size)
                batch.watched[current] = expiry
                if sliding { batch.watched[previous] = expiry - Double(size) }
                func value(_ key: CounterWindowKey) -> Double {
                    (batch.known[key] ?? 0) + (batch.unread[key] ?? 0) + (batch.pending[key] ?? 0)
                }
                return (value(current), sliding ? value(previous) : 0)
            }
            startFlushing()
        } else {
            do {
                let values = try await store.counts(sliding ? [current, previous] : [current], now: Int64(now))
                failures.recovered()
                counts = (values.first ?? 0, sliding && values.count > 1 ? values[1] : 0)
            } catch {
                failures.report("ai-rate-limiting-advanced: \(storeName) unreachable, counting locally: \(error)")
                return fallback.readingNow(key, now: now, sliding: sliding)
            }
        }
        var rate = counts.current
        if sliding { rate += counts.previous * max(0, Double(size) - (now - Double(start))) / Double(size) }
        return TokenWindowCounters.Reading(rate: rate, windowStart: Double(start))
    }

    func add(_ amount: Double, to key: TokenCounterKey, now: Double) {
        guard amount != 0 else { return }
        let counter = CounterWindowKey(key, windowStart: Self.windowStart(now, Int64(max(1, key.windowSize))))
        if syncRate > 0 {
            batch.withLockedValue { $0.pending[counter, default: 0] += amount }
            startFlushing()
            return
        }
        // The store is known to be down: count here, at once, until a reading reaches it again.
        if failures.isFailing {
            fallback.add(amount, to: key, now: now)
            return
        }
        store.increment([counter: amount], now: Int64(now)) { [self] failure in
            guard let failure else { return failures.recovered() }
            failures.report("ai-rate-limiting-advanced: \(storeName) unreachable, counting locally: \(failure)")
            fallback.add(amount, to: key, now: now)
        }
    }

    // MARK: sync_rate > 0

    /// One flush loop per instance, started by the first use and running while there is work.
    private func startFlushing() {
        let start = batch.withLockedValue { batch -> Bool in
            defer { batch.flushing = true }
            return !batch.flushing
        }
        guard start else { return }
        Task.detached { [self] in
            while true {
                try? await Task.sleep(for: .milliseconds(Int(min(syncRate, AIRateLimitConfig.maxWindow) * 1000)))
                if await !flush() { break }
            }
        }
    }

    /// Sends the pending counts and re-reads the watched counters (and those just sent); false
    /// once there is nothing left to do (the loop stops until the next use).
    private func flush() async -> Bool {
        let now = Date().timeIntervalSince1970
        let (sending, reading) = batch.withLockedValue { batch -> ([CounterWindowKey: Double], [CounterWindowKey]) in
            let sending = batch.pending
            batch.pending = [:]
            for (key, amount) in sending { batch.unread[key, default: 0] += amount }
            batch.watched = batch.watched.filter { $0.value > now }
            batch.known = batch.known.filter { batch.watched[$0.key] != nil }
            if batch.unread.isEmpty && batch.watched.isEmpty { batch.flushing = false }
            return (sending, Array(Set(batch.watched.keys).union(batch.unread.keys)))
        }
        if sending.isEmpty && reading.isEmpty { return false }
        if !sending.isEmpty {
            let failure = await withCheckedContinuation { (continuation: CheckedContinuation<CounterIncrementFailure?, Never>) in
                store.increment(sending, now: Int64(now)) { continuation.resume(returning: $0) }
            }
            if let failure {
                failures.report("ai-rate-limiting-advanced: \(storeName) unreachable, keeping counts until it answers: \(failure)")
                // Only what the store did not apply is sent again, with the next flush.
                batch.withLockedValue { batch in
                    for (key, amount) in failure.unsent {
                        batch.unread[key, default: 0] -= amount
                        if batch.unread[key] == 0 { batch.unread[key] = nil }
                        batch.pending[key, default: 0] += amount
                    }
                }
                return true
            }
        }
        do {
            let values = try await store.counts(reading, now: Int64(now))
            batch.withLockedValue { batch in
                // The values read include everything sent before: nothing is unread any more.
                for (key, value) in zip(reading, values) {
                    batch.unread[key] = nil
                    if batch.watched[key] != nil { batch.known[key] = value }
                }
            }
            failures.recovered()
        } catch {
            // Sent, but not read back: the decisions keep adding it until a read succeeds.
            failures.report("ai-rate-limiting-advanced: \(storeName) unreachable, keeping counts until it answers: \(error)")
        }
        return true
    }
}

/// An error reported at most once per interval, not once per request.
final class FailureLog: Sendable {
    let interval: Double
    private let last = NIOLockedValueBox<Double?>(nil)

    init(interval: Double) { self.interval = interval }

    func report(_ message: String) {
        let now = Date().timeIntervalSince1970
        let due = last.withLockedValue { last -> Bool in
            guard last.map({ now - $0 >= interval }) ?? true else { return false }
            last = now
            return true
        }
        if due { ErrorLog.report(message, level: .warn) }
    }

    /// The store answers again: the next failure is reported at once.
    func recovered() { last.withLockedValue { $0 = nil } }

    /// A failure was reported and the store has not answered since.
    var isFailing: Bool { last.withLockedValue { $0 != nil } }
}
