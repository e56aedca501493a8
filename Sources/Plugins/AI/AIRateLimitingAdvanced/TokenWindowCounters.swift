import NIOConcurrencyHelpers

/// Identifies one counter: a provider entry of one plugin instance (Kong's RLA namespace), the
/// identifier's value, and the window size.
struct TokenCounterKey: Hashable, Sendable {
    let namespace: String
    let identifier: String
    let windowSize: Int
}

/// The `local` strategy's counters (spec §5.3): per key, the token count of the current aligned
/// window and of the one before, so both fixed and sliding rates can be computed.
///
/// Process-wide, so counts survive configuration reloads (keys carry the plugin id). Sharded by
/// key hash, each shard under its own lock: concurrent requests contend only when they land on
/// the same shard, and each critical section is a dictionary look-up and a few additions.
final class TokenWindowCounters: Sendable {
    static let shared = TokenWindowCounters()

    struct Reading: Equatable, Sendable {
        /// Tokens in the current window (fixed) or the weighted sum of current and previous (sliding).
        let rate: Double
        /// Start of the current aligned window, in seconds.
        let windowStart: Double
    }

    private struct Entry {
        var windowStart: Int64
        var current: Double
        var previous: Double

        /// Rolls the entry forward to the window starting at `start`.
        mutating func advance(to start: Int64, windowSize: Int64) {
            if start == windowStart { return }
            previous = start == windowStart + windowSize ? current : 0
            current = 0
            windowStart = start
        }
    }

    private struct Shard {
        var entries: [TokenCounterKey: Entry] = [:]
        var writesSincePrune = 0
    }

    private let shards: [NIOLockedValueBox<Shard>]
    /// Stale entries (older than two windows) are dropped every this many writes per shard.
    private static let pruneInterval = 4096

    init(shardCount: Int = 64) {
        shards = (0..<shardCount).map { _ in NIOLockedValueBox(Shard()) }
    }

    private func shard(_ key: TokenCounterKey) -> NIOLockedValueBox<Shard> {
        shards[Int(UInt(bitPattern: key.hashValue) % UInt(shards.count))]
    }

    private static func windowStart(_ now: Double, _ size: Int) -> Int64 {
        let size = Int64(max(1, size))
        return Int64((now / Double(size)).rounded(.down)) * size
    }

    /// The rate for `key` at `now` (seconds): fixed — the current window's count; sliding — the
    /// current count plus the previous window's weighted by the part of it still inside the
    /// sliding window: `current + previous × (window − (now − start)) / window`.
    func readingNow(_ key: TokenCounterKey, now: Double, sliding: Bool) -> Reading {
        let start = Self.windowStart(now, key.windowSize)
        let size = Int64(max(1, key.windowSize))
        let counts = shard(key).withLockedValue { shard -> (Double, Double) in
            guard var entry = shard.entries[key] else { return (0, 0) }
            entry.advance(to: start, windowSize: size)
            return (entry.current, entry.previous)
        }
        var rate = counts.0
        if sliding {
            let elapsed = now - Double(start)
            rate += counts.1 * max(0, Double(size) - elapsed) / Double(size)
        }
        return Reading(rate: rate, windowStart: Double(start))
    }

    /// Adds `amount` to the current window of `key` at `now`.
    func add(_ amount: Double, to key: TokenCounterKey, now: Double) {
        guard amount != 0 else { return }
        let start = Self.windowStart(now, key.windowSize)
        let size = Int64(max(1, key.windowSize))
        shard(key).withLockedValue { shard in
            var entry = shard.entries[key] ?? Entry(windowStart: start, current: 0, previous: 0)
            entry.advance(to: start, windowSize: size)
            entry.current += amount
            shard.entries[key] = entry
            shard.writesSincePrune += 1
            if shard.writesSincePrune >= Self.pruneInterval {
                shard.writesSincePrune = 0
                let seconds = Int64(now)
                shard.entries = shard.entries.filter { key, entry in
                    entry.windowStart + 2 * Int64(max(1, key.windowSize)) > seconds
                }
            }
        }
    }
}
