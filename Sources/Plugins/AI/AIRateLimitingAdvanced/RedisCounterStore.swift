import Core
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// The `redis` strategy's counters: one Redis key per counter window, incremented atomically
/// with INCRBYFLOAT in a script that sets the key's TTL once, so every key expires.
final class RedisCounterStore: SharedCounterStore {
    struct Settings: Hashable, Sendable {
        let redis: RedisConnectionPool.Configuration
        let syncRate: Double
    }

    /// The counting over one Redis server and sync rate, shared by configuration snapshots.
    static func counters(_ settings: Settings) -> SharedTokenCounters {
        SharedTokenCounters.shared(.redis(settings)) {
            SharedTokenCounters(store: RedisCounterStore(settings.redis), storeName: "redis", syncRate: settings.syncRate)
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

    let pool: RedisConnectionPool

    init(_ configuration: RedisConnectionPool.Configuration) {
        var configuration = configuration
        configuration.scripts = [Self.incrementScript]
        pool = RedisConnectionPool(configuration)
    }

    /// The Redis key of one counter window.
    static func name(_ key: CounterWindowKey) -> String {
        "\(keyPrefix):\(key.namespace):\(key.identifier):\(key.windowSize):\(key.windowStart)"
    }

    /// One connection per identifier's counters: its increments and readings reach Redis in order.
    private static func affinity(_ key: CounterWindowKey) -> Int {
        var hasher = Hasher()
        hasher.combine(key.namespace)
        hasher.combine(key.identifier)
        return hasher.finalize()
    }

    func counts(_ keys: [CounterWindowKey], now: Int64) async throws -> [Double] {
        guard let first = keys.first else { return [] }
        let reply = try await pool.send(["MGET"] + keys.map(Self.name), affinity: Self.affinity(first))
        guard case .array(let values?) = reply, values.count == keys.count else {
            throw RedisFailure(description: "unexpected MGET reply")
        }
        return values.map { $0.number ?? 0 }
    }

    func increment(_ amounts: [CounterWindowKey: Double], now: Int64,
                   done: @escaping @Sendable (CounterIncrementFailure?) -> Void) {
        guard !amounts.isEmpty else { return done(nil) }
        // `done` once every increment answered, with those that failed.
        let outstanding = NIOLockedValueBox((count: amounts.count, unsent: [CounterWindowKey: Double](), reason: ""))
        let finish: @Sendable (CounterWindowKey, Double, RedisFailure?) -> Void = { key, amount, failure in
            let last = outstanding.withLockedValue { state -> CounterIncrementFailure?? in
                if let failure {
                    state.unsent[key] = amount
                    if state.reason.isEmpty { state.reason = failure.description }
                }
                state.count -= 1
                guard state.count == 0 else { return .none }
                return .some(state.unsent.isEmpty ? nil : CounterIncrementFailure(unsent: state.unsent, reason: state.reason))
            }
            if case .some(let failure) = last { done(failure) }
        }
        for (key, amount) in amounts {
            let arguments = [Self.name(key), String(amount), String(key.lifetime)]
            let affinity = Self.affinity(key)
            let viaTask: @Sendable () -> Void = { [self] in
                Task {
                    do throws(RedisFailure) {
                        try await increment(arguments, affinity: affinity)
                        finish(key, amount, nil)
                    } catch {
                        finish(key, amount, error)
                    }
                }
            }
            // Written before returning when a connection is open, so the client's next request reads it.
            guard let written = pool.writeNow(["EVALSHA", Self.incrementScriptSHA, "1"] + arguments, affinity: affinity) else {
                viaTask()
                continue
            }
            written.whenComplete { result in
                switch result {
                case .success(.error(let message)) where message.hasPrefix("NOSCRIPT"):
                    viaTask()  // Redis lost the script (SCRIPT FLUSH, a restart behind a proxy): EVAL it
                case .success(.error(let message)): finish(key, amount, RedisFailure(description: "increment refused: \(message)"))
                case .success: finish(key, amount, nil)
                case .failure(let error): finish(key, amount, RedisFailure(description: "\(error)"))
                }
            }
        }
    }

    /// INCRBYFLOAT with the TTL set once, through the cached script (loaded again when Redis
    /// lost it).
    private func increment(_ arguments: [String], affinity: Int) async throws(RedisFailure) {
        var reply = try await pool.send(["EVALSHA", Self.incrementScriptSHA, "1"] + arguments, affinity: affinity)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            reply = try await pool.send(["EVAL", Self.incrementScript, "1"] + arguments, affinity: affinity)
        }
        if case .error(let message) = reply { throw RedisFailure(description: message) }
    }
}
