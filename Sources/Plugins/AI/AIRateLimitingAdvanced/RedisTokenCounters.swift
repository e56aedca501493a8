import Core
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Where the limiter's counters live: in the process (`local`) or in Redis (`redis`).
protocol TokenCounterStore: Sendable {
    func reading(_ key: TokenCounterKey, now: Double, sliding: Bool) async -> TokenWindowCounters.Reading
    /// Adds `amount` now; a remote store may send it after returning.
    func add(_ amount: Double, to key: TokenCounterKey, now: Double)
}

extension TokenWindowCounters: TokenCounterStore {
    func reading(_ key: TokenCounterKey, now: Double, sliding: Bool) async -> Reading {
        readingNow(key, now: now, sliding: sliding)
    }
}

/// The `redis` strategy's counters (spec §5.2/§5.3): one Redis key per (namespace, identifier,
/// window size, window start), incremented atomically with INCRBYFLOAT in a script that sets the
/// key's TTL once (two windows and a second, so the previous window stays readable for sliding
/// rates and every key expires).
///
/// `sync_rate` 0: each decision reads Redis and each count is sent at once. `sync_rate` > 0:
/// counts accumulate locally and are flushed, and the keys in use re-read, every `sync_rate`
/// seconds; decisions use the last values read plus what this node has not flushed yet. When
/// Redis cannot be reached, counting goes on in the process's local counters and the failure is
/// logged at most once per interval; counting in Redis resumes when it answers again.
final class RedisTokenCounters: TokenCounterStore {
    struct Settings: Hashable, Sendable {
        let redis: RedisConnectionPool.Configuration
        let syncRate: Double
    }

    /// One store per Redis server and sync rate, shared by configuration snapshots (connections
    /// and unflushed counts survive a reload).
    private static let stores = NIOLockedValueBox<[Settings: RedisTokenCounters]>([:])

    static func shared(_ settings: Settings) -> RedisTokenCounters {
        stores.withLockedValue { stores in
            if let store = stores[settings] { return store }
            let store = RedisTokenCounters(settings)
            stores[settings] = store
            return store
        }
    }

    static let keyPrefix = "silverback:ai-rate-limiting"
    static let incrementScript = """
        local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
        if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
        return v
        """
    static let incrementScriptSHA = Insecure.SHA1.hash(data: Array(incrementScript.utf8))
        .map { String(format: "%02x", $0) }.joined()

    let settings: Settings
    let pool: RedisConnectionPool
    let fallback = TokenWindowCounters.shared
    private let failures = FailureLog(interval: 10)

    /// `sync_rate` > 0: counts not yet sent, and the values last read, per Redis key.
    private struct Batch {
        var pending: [String: (amount: Double, ttl: Int)] = [:]
        var known: [String: Double] = [:]
        /// Keys decisions read, re-read at each flush until they expire.
        var watched: [String: Double] = [:]
        var flushing = false
    }
    private let batch = NIOLockedValueBox(Batch())

    private init(_ settings: Settings) {
        self.settings = settings
        var redis = settings.redis
        redis.scripts = [Self.incrementScript]
        pool = RedisConnectionPool(redis)
    }

    /// One connection per identifier's counters: its increments and readings reach Redis in order.
    private static func affinity(_ key: TokenCounterKey) -> Int {
        var hasher = Hasher()
        hasher.combine(key.namespace)
        hasher.combine(key.identifier)
        return hasher.finalize()
    }

    /// The Redis key of one window.
    static func name(_ key: TokenCounterKey, windowStart: Int64) -> String {
        "\(keyPrefix):\(key.namespace):\(key.identifier):\(key.windowSize):\(windowStart)"
    }

    private static func windowStart(_ now: Double, _ size: Int) -> Int64 {
        let size = Int64(max(1, size))
        return Int64((now / Double(size)).rounded(.down)) * size
    }

    func reading(_ key: TokenCounterKey, now: Double, sliding: Bool) async -> TokenWindowCounters.Reading {
        let size = Int64(max(1, key.windowSize))
        let start = Self.windowStart(now, key.windowSize)
        let current = Self.name(key, windowStart: start), previous = Self.name(key, windowStart: start - size)
        let counts: (Double, Double)
        if settings.syncRate > 0 {
            counts = batch.withLockedValue { batch in
                let expiry = Double(start + 2 * size)
                batch.watched[current] = expiry
                if sliding { batch.watched[previous] = expiry - Double(size) }
                func value(_ name: String) -> Double { (batch.known[name] ?? 0) + (batch.pending[name]?.amount ?? 0) }
                return (value(current), value(previous))
            }
            startFlushing()
        } else {
            do throws(RedisFailure) {
                let reply = try await pool.send(["MGET", current, previous], affinity: Self.affinity(key))
                guard case .array(let values?) = reply, values.count == 2 else {
                    throw RedisFailure(description: "unexpected MGET reply")
                }
                failures.recovered()
                counts = (values[0].number ?? 0, values[1].number ?? 0)
            } catch {
                failures.report("ai-rate-limiting-advanced: redis unreachable, counting locally: \(error)")
                return fallback.readingNow(key, now: now, sliding: sliding)
            }
        }
        var rate = counts.0
        if sliding { rate += counts.1 * max(0, Double(size) - (now - Double(start))) / Double(size) }
        return TokenWindowCounters.Reading(rate: rate, windowStart: Double(start))
    }

    func add(_ amount: Double, to key: TokenCounterKey, now: Double) {
        guard amount != 0 else { return }
        let size = max(1, key.windowSize)
        let name = Self.name(key, windowStart: Self.windowStart(now, size))
        let ttl = 2 * size + 1
        if settings.syncRate > 0 {
            batch.withLockedValue { batch in
                let pending = batch.pending[name]?.amount ?? 0
                batch.pending[name] = (pending + amount, ttl)
            }
            startFlushing()
            return
        }
        // Redis is known to be down: count here, at once, until a reading reaches it again.
        if failures.isFailing {
            fallback.add(amount, to: key, now: now)
            return
        }
        let affinity = Self.affinity(key)
        let arguments = ["EVALSHA", Self.incrementScriptSHA, "1", name, String(amount), String(ttl)]
        // Written before the response goes out, so the client's next request reads it.
        if let written = pool.writeNow(arguments, affinity: affinity) {
            written.whenComplete { [self] result in
                switch result {
                case .success(.error(let message)):
                    failures.report("ai-rate-limiting-advanced: redis refused an increment: \(message)")
                    fallback.add(amount, to: key, now: now)
                case .success:
                    failures.recovered()
                case .failure(let error):
                    failures.report("ai-rate-limiting-advanced: redis unreachable, counting locally: \(error)")
                    fallback.add(amount, to: key, now: now)
                }
            }
            return
        }
        Task {
            do throws(RedisFailure) {
                try await increment(name, by: amount, ttl: ttl, affinity: affinity)
                failures.recovered()
            } catch {
                failures.report("ai-rate-limiting-advanced: redis unreachable, counting locally: \(error)")
                fallback.add(amount, to: key, now: now)
            }
        }
    }

    /// INCRBYFLOAT with the TTL set once, through the cached script (loaded on first use).
    @discardableResult
    private func increment(_ name: String, by amount: Double, ttl: Int, affinity: Int? = nil) async throws(RedisFailure) -> Double {
        let arguments = [name, String(amount), String(ttl)]
        var reply = try await pool.send(["EVALSHA", Self.incrementScriptSHA, "1"] + arguments, affinity: affinity)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            reply = try await pool.send(["EVAL", Self.incrementScript, "1"] + arguments, affinity: affinity)
        }
        if case .error(let message) = reply { throw RedisFailure(description: message) }
        return reply.number ?? 0
    }

    // MARK: sync_rate > 0

    /// One flush loop per store, started by the first use and running while there is work.
    private func startFlushing() {
        let start = batch.withLockedValue { batch -> Bool in
            defer { batch.flushing = true }
            return !batch.flushing
        }
        guard start else { return }
        Task.detached { [self] in
            while true {
                try? await Task.sleep(for: .milliseconds(Int(settings.syncRate * 1000)))
                if await !flush() { break }
            }
        }
    }

    /// Sends the pending counts and re-reads the watched keys; false once there is nothing left
    /// to do (the loop stops until the next use).
    private func flush() async -> Bool {
        let now = Date().timeIntervalSince1970
        let (pending, watched) = batch.withLockedValue { batch -> ([String: (amount: Double, ttl: Int)], [String]) in
            let pending = batch.pending
            batch.pending = [:]
            batch.watched = batch.watched.filter { $0.value > now }
            batch.known = batch.known.filter { batch.watched[$0.key] != nil }
            if pending.isEmpty && batch.watched.isEmpty { batch.flushing = false }
            return (pending, Array(batch.watched.keys))
        }
        if pending.isEmpty && watched.isEmpty { return false }
        do throws(RedisFailure) {
            for (name, entry) in pending { try await increment(name, by: entry.amount, ttl: entry.ttl) }
            if !watched.isEmpty, case .array(let values?) = try await pool.send(["MGET"] + watched), values.count == watched.count {
                batch.withLockedValue { batch in
                    for (name, value) in zip(watched, values) { batch.known[name] = value.number ?? 0 }
                }
            }
            failures.recovered()
        } catch {
            failures.report("ai-rate-limiting-advanced: redis unreachable, keeping counts until it answers: \(error)")
            // Not lost: sent with the next flush.
            batch.withLockedValue { batch in
                for (name, entry) in pending {
                    let kept = batch.pending[name]?.amount ?? 0
                    batch.pending[name] = (kept + entry.amount, entry.ttl)
                }
            }
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
        if due { ErrorLog.report(message) }
    }

    /// The store answers again: the next failure is reported at once.
    func recovered() { last.withLockedValue { $0 = nil } }

    /// A failure was reported and the store has not answered since.
    var isFailing: Bool { last.withLockedValue { $0 != nil } }
}
