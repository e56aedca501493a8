import Core
import Foundation
import NIOConcurrencyHelpers
@testable import Plugins
import Testing

/// The `redis` / `cluster` counting over a store the test can take down and bring back.
struct SharedTokenCountersTests {
    /// An in-memory shared store that fails every call while `failing` is set.
    final class FlakyStore: SharedCounterStore {
        struct Down: Error {}
        let counters = NIOLockedValueBox<[CounterWindowKey: Double]>([:])
        let failing = NIOLockedValueBox(false)
        /// Only reads fail: increments are applied.
        let readsFail = NIOLockedValueBox(false)

        func counts(_ keys: [CounterWindowKey], now: Int64) async throws -> [Double] {
            if failing.withLockedValue({ $0 }) || readsFail.withLockedValue({ $0 }) { throw Down() }
            return counters.withLockedValue { counters in keys.map { counters[$0] ?? 0 } }
        }

        func increment(_ amounts: [CounterWindowKey: Double], now: Int64,
                       done: @escaping @Sendable (CounterIncrementFailure?) -> Void) {
            if failing.withLockedValue({ $0 }) { return done(CounterIncrementFailure(unsent: amounts, reason: "down")) }
            counters.withLockedValue { counters in
                for (key, amount) in amounts { counters[key, default: 0] += amount }
            }
            done(nil)
        }

        var total: Double { counters.withLockedValue { $0.values.reduce(0, +) } }

        /// Until counts arrive (flushes run every 50 ms; a loaded machine may delay them), then a
        /// few flush periods more, so a count sent twice would show.
        func waitForAFlush() async throws {
            for _ in 0..<100 where total == 0 { try await Task.sleep(for: .milliseconds(50)) }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// A namespace of its own: the local fallback counters are process-wide.
    let key = TokenCounterKey(namespace: "shared-test-\(UUID().uuidString)|openai", identifier: "10.0.0.1", windowSize: 3600)

    @Test func whileTheStoreIsDownCountingGoesOnLocallyThenResumesInTheStore() async {
        let store = FlakyStore()
        let counters = SharedTokenCounters(store: store, storeName: "the test store", syncRate: 0)
        let now = Date().timeIntervalSince1970
        store.failing.withLockedValue { $0 = true }
        #expect(await counters.reading(key, now: now, sliding: false).rate == 0)
        counters.add(10, to: key, now: now)
        #expect(await counters.reading(key, now: now, sliding: false).rate == 10, "counted in the process")
        #expect(store.total == 0)

        store.failing.withLockedValue { $0 = false }
        #expect(await counters.reading(key, now: now, sliding: false).rate == 0, "the store's count again")
        counters.add(5, to: key, now: now)
        #expect(await counters.reading(key, now: now, sliding: false).rate == 5)
        #expect(store.total == 5)
    }

    @Test func aBatchTheStoreRefusedIsSentWithTheNextFlushOnce() async throws {
        let store = FlakyStore()
        let counters = SharedTokenCounters(store: store, storeName: "the test store", syncRate: 0.05)
        let now = Date().timeIntervalSince1970
        store.failing.withLockedValue { $0 = true }
        counters.add(30, to: key, now: now)
        #expect(await counters.reading(key, now: now, sliding: false).rate == 30, "unsent counts still count here")
        try await Task.sleep(for: .milliseconds(250))
        #expect(store.total == 0)
        store.failing.withLockedValue { $0 = false }
        try await store.waitForAFlush()
        #expect(store.total == 30, "neither lost nor sent twice")
        #expect(await counters.reading(key, now: Date().timeIntervalSince1970, sliding: false).rate == 30)
    }

    @Test func countsSentButNotReadBackAreNeitherSentTwiceNorForgotten() async throws {
        let store = FlakyStore()
        let counters = SharedTokenCounters(store: store, storeName: "the test store", syncRate: 0.05)
        let now = Date().timeIntervalSince1970
        store.readsFail.withLockedValue { $0 = true }
        counters.add(30, to: key, now: now)
        #expect(await counters.reading(key, now: now, sliding: false).rate == 30)
        try await store.waitForAFlush()
        #expect(store.total == 30, "sent once, though every read back failed")
        #expect(await counters.reading(key, now: Date().timeIntervalSince1970, sliding: false).rate == 30, "still counted here")
        store.readsFail.withLockedValue { $0 = false }
        try await Task.sleep(for: .milliseconds(250))
        #expect(store.total == 30)
        #expect(await counters.reading(key, now: Date().timeIntervalSince1970, sliding: false).rate == 30, "now from the store")
    }
}
