import Core

/// The tokens and cost every AI plugin of one request spent, in the order the calls ended
/// (ai-proxy's call, each transformer's own call): what ai-rate-limiting-advanced counts after
/// the response (spec §5.3), without reparsing the log record.
final class AIUsageLedger: @unchecked Sendable {
    struct Entry: Sendable, Equatable {
        let plugin: String
        let provider: LLMProvider
        let model: String?
        let usage: LLMUsage
        let cost: Double
    }

    private static let key = "ai.usage-ledger"
    private(set) var entries: [Entry] = []

    static func of(_ context: ProxyRequestContext) -> AIUsageLedger? { context.shared[key] as? AIUsageLedger }

    /// Asks the AI plugins of this request to report usage even when they log no statistics.
    static func open(_ context: ProxyRequestContext) {
        if of(context) == nil { context.shared[key] = AIUsageLedger() }
    }

    /// Adds `entry` when a rate limiter opened the ledger; otherwise nobody reads it.
    static func record(_ context: ProxyRequestContext, _ entry: Entry) {
        of(context)?.entries.append(entry)
    }
}
