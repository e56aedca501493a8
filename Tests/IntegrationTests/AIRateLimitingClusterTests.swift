import Core
import Foundation
import Plugins
import Testing

/// ai-rate-limiting-advanced with `strategy: cluster` on a DB-mode node: counters in the
/// node's SQLite database (table `rl_counters`), configured through the Admin API.
@Suite(.serialized)
struct AIRateLimitingClusterTests {
    let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-cluster-\(UUID().uuidString)")
    var environment: [String: String] { ["KONG_DATABASE": "sqlite", "KONG_PREFIX": prefix.path] }
    static let chat = AIRateLimitingTests.chat

    /// A DB-mode node with the chat route on a mock LLM answering 50 tokens per call, and
    /// `limiter` (a plugin body) on that route.
    func startNode(limiter: String?) async throws -> (node: SilverbackNode, provider: MockLLMProvider) {
        let provider = try await MockLLMProvider.start()
        AIRateLimitingTests.answer(provider)
        let node = try SilverbackNode(environment: environment)
        try await configureChatRoute(node, provider: provider)
        if let limiter {
            let plugin = try await node.admin("POST", "/routes/chat/plugins", json: limiter)
            #expect(plugin.status == 201, "\(plugin.text)")
        }
        return (node, provider)
    }

    /// The `llm` service, the `chat` route on `/chat` and its ai-proxy, pointing at `provider`.
    func configureChatRoute(_ node: SilverbackNode, provider: MockLLMProvider) async throws {
        #expect(try await node.admin("POST", "/services", form: [("name", "llm"), ("url", provider.baseURL)]).status == 201)
        #expect(try await node.admin("POST", "/services/llm/routes", form: [("name", "chat"), ("paths[]", "/chat")]).status == 201)
        let aiProxy = try await node.admin("POST", "/routes/chat/plugins", json: """
            {"name":"ai-proxy","config":{"route_type":"llm/v1/chat","model":{"provider":"openai","name":"gpt-4o-mini",
             "options":{"upstream_url":"\(provider.baseURL)/v1/chat/completions"}}}}
            """)
        #expect(aiProxy.status == 201, "\(aiProxy.text)")
    }

    static func limiter(limit: Int, window: Int = 3600, syncRate: String = "0") -> String {
        #"{"name":"ai-rate-limiting-advanced","config":{"strategy":"cluster","sync_rate":\#(syncRate),"identifier":"ip","#
            + #""llm_providers":[{"name":"openai","limit":[\#(limit)],"window_size":[\#(window)]}]}}"#
    }

    /// Posts until the rate limiter's headers show up (the snapshot follows the write shortly after).
    func firstLimitedCall(_ node: SilverbackNode) async throws -> SilverbackNode.Reply {
        for _ in 0..<100 {
            let reply = try await node.proxyPOST("/chat", json: Self.chat)
            if reply.headers["x-ai-ratelimit-limit-hour-openai"] != nil || reply.headers["x-ai-ratelimit-limit-second-openai"] != nil {
                return reply
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw NodeError(description: "the rate limiter never applied")
    }

    /// The node's counters, read from its database file as an operator would.
    func storedCounts() throws -> [Double] {
        try SQLiteCounterStore(path: prefix.appendingPathComponent("silverback.db").path).storedCounts()
    }

    @Test func theWorkedExampleHoldsWithCountersInTheDatabaseAcrossARestart() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let (node, provider) = try await startNode(limiter: Self.limiter(limit: 310))
        defer { Task { await provider.stop() } }

        var remaining = [try await firstLimitedCall(node)]
        for _ in 2...7 { remaining.append(try await node.proxyPOST("/chat", json: Self.chat)) }
        #expect(remaining.map(\.status) == Array(repeating: 200, count: 7))
        #expect(remaining.map { $0.headers["x-ai-ratelimit-remaining-hour-openai"] ?? "-" }
                == ["310", "260", "210", "160", "110", "60", "10"])
        let eighth = try await node.proxyPOST("/chat", json: Self.chat)
        #expect(eighth.status == 429)
        #expect(eighth.json?["message"] as? String == "AI token rate limit exceeded for provider(s): openai")
        #expect(try storedCounts() == [350], "one row for the one window in use")

        // The counts are the database's, not the process's: a restarted node still refuses.
        #expect(node.stop() == 0)
        let restarted = try SilverbackNode(environment: environment)
        defer { _ = restarted.stop() }
        let afterRestart = try await restarted.proxyPOST("/chat", json: Self.chat)
        #expect(afterRestart.status == 429, "\(afterRestart.text)")
        #expect(afterRestart.headers["x-ai-ratelimit-remaining-hour-openai"] == "0")
    }

    @Test func aShortWindowsRowsExpireAndRequestsAreAdmittedAgain() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let (node, provider) = try await startNode(limiter: Self.limiter(limit: 40, window: 1))
        defer { Task { await provider.stop() } }
        defer { _ = node.stop() }
        _ = try await firstLimitedCall(node)
        _ = try await node.proxyPOST("/chat", json: Self.chat)
        try await Task.sleep(for: .milliseconds(2200))
        #expect(try await node.proxyPOST("/chat", json: Self.chat).status == 200, "two windows later nothing counts")
        try await Task.sleep(for: .milliseconds(3500))
        // Expired rows are deleted by the next increment.
        #expect(try await node.proxyPOST("/chat", json: Self.chat).status == 200)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try storedCounts() == [50], "only the current window's row is left")
    }

    /// sync_rate 1: counts are kept in the process and written once a second; the database ends
    /// up with exactly what was admitted, and the overshoot stays within a second of traffic.
    @Test func periodicSyncLosesNothingAndBoundsTheOvershoot() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let (node, provider) = try await startNode(limiter: Self.limiter(limit: 1000, syncRate: "1"))
        defer { Task { await provider.stop() } }
        defer { _ = node.stop() }
        let first = try await firstLimitedCall(node)
        let concurrency = 4
        let admitted = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var admitted = 0
                    for _ in 0..<15 {
                        if try await node.proxyPOST("/chat", json: Self.chat).status == 200 { admitted += 1 }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return admitted
                }
            }
            return try await group.reduce(first.status == 200 ? 1 : 0, +)
        }
        let tokens = admitted * 50
        #expect(tokens >= 1000, "the budget was used: \(tokens)")
        #expect(tokens <= 1000 + 50 * (concurrency + 1) + 50 * concurrency * 10, "admitted \(tokens) tokens for a budget of 1000")
        #expect(admitted < concurrency * 15 + 1, "some requests were refused")
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try storedCounts().reduce(0, +) == Double(tokens), "every admitted token reached the database")
    }

    /// DB-less `POST /config` of a configuration the schemas accept but this node cannot run: a
    /// 400 saying why, and the running configuration stays.
    @Test func postConfigRefusesWhatThisNodeCannotRunAndKeepsTheRunningOne() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let node = try SilverbackNode(environment: ["KONG_DATABASE": "off", "KONG_PREFIX": prefix.path])
        defer { _ = node.stop() }
        let running = try await node.admin("POST", "/config", json: #"{"_format_version":"3.0","services":[{"name":"kept","url":"http://127.0.0.1:9"}]}"#)
        #expect(running.status == 201, "\(running.text)")
        let refused = try await node.admin("POST", "/config", json: """
            {"_format_version":"3.0","plugins":[{"name":"ai-rate-limiting-advanced","config":{"strategy":"redis","sync_rate":0,
             "redis":{"cluster_nodes":[{"ip":"127.0.0.1","port":7000}]},
             "llm_providers":[{"name":"openai","limit":[10],"window_size":[60]}]}}]}
            """)
        #expect(refused.status == 400)
        #expect(refused.json?["name"] as? String == "invalid declarative configuration")
        #expect((refused.json?["message"] as? String)?.contains("Redis Cluster (redis.cluster_nodes) is not supported by this build yet") == true,
                "\(refused.text)")
        #expect(try await node.admin("GET", "/services/kept").status == 200, "the running configuration stays")
    }

    /// A configuration the schemas accept but this node cannot run is refused by the Admin API
    /// (not stored, so the node keeps following its database).
    @Test func aPluginThisNodeCannotRunIsRefusedAndNotStored() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let (node, provider) = try await startNode(limiter: nil)
        defer { Task { await provider.stop() } }
        defer { _ = node.stop() }
        let refused = try await node.admin("POST", "/routes/chat/plugins", json: """
            {"name":"ai-rate-limiting-advanced","config":{"strategy":"redis","sync_rate":0,
             "redis":{"cluster_nodes":[{"ip":"127.0.0.1","port":7000}]},
             "llm_providers":[{"name":"openai","limit":[10],"window_size":[60]}]}}
            """)
        #expect(refused.status == 400)
        #expect(refused.json?["name"] as? String == "schema violation")
        #expect((refused.json?["message"] as? String)?.contains("Redis Cluster (redis.cluster_nodes) is not supported by this build yet") == true,
                "\(refused.text)")
        let plugins = try await node.admin("GET", "/plugins")
        #expect(!plugins.text.contains("ai-rate-limiting-advanced"), "nothing stored: \(plugins.text)")

        // The node still follows later writes.
        #expect(try await node.admin("POST", "/routes/chat/plugins", json: Self.limiter(limit: 10)).status == 201)
        let limited = try await firstLimitedCall(node)
        #expect(limited.headers["x-ai-ratelimit-limit-hour-openai"] == "10")
    }
}
