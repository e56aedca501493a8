import Core
@testable import Plugins
import Testing

/// The local strategy's window arithmetic (spec §5.3), on a clock the test controls.
struct TokenWindowCountersTests {
    let key = TokenCounterKey(namespace: "plugin|openai", identifier: "10.0.0.1", windowSize: 10)

    @Test func aFixedWindowCountsOnlyItsOwnTokens() {
        let counters = TokenWindowCounters(shardCount: 4)
        counters.add(10, to: key, now: 100.5)
        counters.add(5, to: key, now: 109.9)
        #expect(counters.readingNow(key, now: 105, sliding: false) == .init(rate: 15, windowStart: 100))
        #expect(counters.readingNow(key, now: 110, sliding: false) == .init(rate: 0, windowStart: 110), "a new aligned window")
    }

    @Test func aSlidingWindowWeighsThePreviousWindowByWhatIsLeftOfIt() {
        let counters = TokenWindowCounters(shardCount: 4)
        counters.add(10, to: key, now: 101)
        counters.add(4, to: key, now: 111)
        // 4 + 10 × (10 − 2.5) / 10
        #expect(counters.readingNow(key, now: 112.5, sliding: true).rate == 11.5)
        #expect(counters.readingNow(key, now: 119.99, sliding: true).rate > 4)
        // Two windows later nothing is left of the first.
        #expect(counters.readingNow(key, now: 121, sliding: true).rate == 4.0 * 9 / 10)
        #expect(counters.readingNow(key, now: 131, sliding: true).rate == 0)
    }

    @Test func keysDoNotShareCounts() {
        let counters = TokenWindowCounters(shardCount: 1)
        let other = TokenCounterKey(namespace: "plugin|openai", identifier: "10.0.0.2", windowSize: 10)
        let longer = TokenCounterKey(namespace: "plugin|openai", identifier: "10.0.0.1", windowSize: 60)
        counters.add(7, to: key, now: 100)
        #expect(counters.readingNow(other, now: 100, sliding: false).rate == 0)
        #expect(counters.readingNow(longer, now: 100, sliding: false).rate == 0)
        #expect(counters.readingNow(key, now: 100, sliding: false).rate == 7)
    }

    @Test func windowLabelsFollowKong() {
        #expect([1, 60, 3600, 86400, 2_592_000, 31_536_000, 30].map(AIRateLimitConfig.label)
                == ["second", "minute", "hour", "day", "month", "year", "30"])
    }
}
