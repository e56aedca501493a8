import Core
import Foundation
import NIOCore
import Testing

/// ai-rate-limiting-advanced, `local` strategy (spec §5.3/§5.4), through a real gateway in front
/// of ai-proxy and the mock provider (each OpenAI answer reports 25 + 25 = 50 total tokens).
@Suite(.serialized)
struct AIRateLimitingTests {
    static func document(limiter: String, aiProxy: String = "\(AIConfig.chat), \(AIConfig.openAI(options: "input_cost: 1, output_cost: 3"))") -> String {
        AIConfig.document(AIConfig.route("limited", path: "/chat", aiProxy: aiProxy,
                                         more: ["name: ai-rate-limiting-advanced, id: \(UUID().uuidString.lowercased()), config: {\(limiter)}"]))
    }

    // Counters are process-wide and keyed by plugin id (they survive reloads): each test's limiter
    // gets a fresh id so tests do not share counts.

    static let chat = #"{"messages":[{"role":"user","content":"hi"}]}"#

    /// Every chat answer reports 25 + 25 = 50 tokens.
    static func answer(_ provider: MockLLMProvider) {
        provider.answer(path: "/v1/chat/completions",
                        with: .json(ProviderFixtures.openAIChat(content: "ok", prompt: 25, completion: 25)))
    }

    static func answer(_ h: AIHarness) { answer(h.provider) }

    /// Kong's worked example (§5.4) on a route limited to 310 tokens an hour: the Remaining header
    /// of calls 1 to 7 (each must pass), then the eighth call's response.
    static func workedExample(_ h: AIHarness) async throws -> (remaining: [String], eighth: ProxyHarness.Response) {
        answer(h)
        var remaining: [String] = []
        for _ in 1...7 {
            let response = try await h.post("/chat", chat)
            #expect(response.status == 200)
            #expect(response.headers.first(name: "X-AI-RateLimit-Limit-hour-openai") == "310")
            remaining.append(response.headers.first(name: "X-AI-RateLimit-Remaining-hour-openai") ?? "-")
        }
        return (remaining, try await h.post("/chat", chat))
    }

    @Test func kongsWorkedExampleRemainingFallsBy50UntilTheEighthCallIsRefused() async throws {
        let h = try await AIHarness.start(Self.document(limiter: "llm_providers: [{name: openai, limit: [310], window_size: [3600]}]"))
        defer { Task { await h.stop() } }
        let (remaining, refused) = try await Self.workedExample(h)
        #expect(remaining == ["310", "260", "210", "160", "110", "60", "10"], "usage before each call")
        #expect(refused.status == 429)
        #expect(refused.json == ["message": "AI token rate limit exceeded for provider(s): openai"])
        #expect(refused.headers.first(name: "X-AI-RateLimit-Remaining-hour-openai") == "0")
        let reset = Int(refused.headers.first(name: "X-AI-RateLimit-Reset") ?? "") ?? 0
        #expect(reset > 0)
        #expect(refused.headers.first(name: "X-AI-RateLimit-Retry-After") == String(reset))
        #expect(refused.headers.first(name: "X-AI-RateLimit-Reset-hour-openai") != nil)
        #expect(h.provider.requests.count == 7, "the refused call never reached the provider")
    }

    /// A limited chat route with statistics and file-log writing to `logPath`.
    static func loggedRoute(limit: Int, logPath: String) async throws -> AIHarness {
        try await AIHarness.start(AIConfig.document(AIConfig.route(
            "limited", path: "/chat", aiProxy: "route_type: llm/v1/chat, logging: {log_statistics: true}, \(AIConfig.openAI())",
            more: ["name: ai-rate-limiting-advanced, id: \(UUID().uuidString.lowercased()), "
                       + "config: {llm_providers: [{name: openai, limit: [\(limit)], window_size: [3600]}]}",
                   "name: file-log, config: {path: \"\(logPath)\"}"])))
    }

    @Test func aDeniedRequestIsLoggedWithZeroTokens() async throws {
        let directory = try TemporaryDirectory.make("denied-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("ai.log").path
        let h = try await Self.loggedRoute(limit: 40, logPath: logPath)
        defer { Task { await h.stop() } }
        Self.answer(h)
        #expect(try await h.post("/chat", Self.chat).status == 200)
        #expect(try await h.post("/chat", Self.chat).status == 429)
        let lines = try await AIProxyTests.logLines(logPath, atLeast: 2)
        try #require(lines.count == 2, "\(lines)")
        let admitted = try JSONValue.parse(lines[0]), denied = try JSONValue.parse(lines[1])
        #expect(admitted["ai"]?["proxy"]?["usage"]?["total_tokens"] == 50)
        #expect(denied["response"]?["status"] == 429)
        #expect(denied["ai"]?["proxy"]?["usage"] == ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                                                    "time_per_token": 0, "cost": 0], "\(lines[1])")
    }

    @Test func onlyTheNamedProviderIsChargedAndEveryWindowIsChecked() async throws {
        let h = try await AIHarness.start(Self.document(limiter: """
            llm_providers: [{name: openai, limit: [100, 1000], window_size: [60, 86400]}, \
            {name: anthropic, limit: [10], window_size: [30]}], error_hide_providers: true, \
            error_message: "slow down"
            """))
        defer { Task { await h.stop() } }
        Self.answer(h)
        for _ in 1...3 { _ = try await h.post("/chat", Self.chat) }
        let refused = try await h.post("/chat", Self.chat)
        #expect(refused.status == 429, "150 > 100 in the minute window")
        #expect(refused.json == ["message": "slow down"])
        #expect(refused.headers.first(name: "X-AI-RateLimit-Remaining-day-openai") == "850")
        #expect(refused.headers.first(name: "X-AI-RateLimit-Remaining-30-anthropic") == "10", "openai usage is not anthropic's")
        #expect(refused.headers.first(name: "X-AI-RateLimit-Reset-day-openai") == nil, "only denying windows get a reset")
    }

    @Test func theCostStrategyCountsMoneyWithFractionalRemaining() async throws {
        // Each call: (25 × 1 + 25 × 3) / 1e6 = 0.0001.
        let h = try await AIHarness.start(Self.document(limiter: """
            llm_providers: [{name: openai, limit: [0.00025], window_size: [3600]}], tokens_count_strategy: cost
            """))
        defer { Task { await h.stop() } }
        Self.answer(h)
        _ = try await h.post("/chat", Self.chat)
        let second = try await h.post("/chat", Self.chat)
        #expect(second.headers.first(name: "X-AI-RateLimit-Remaining-hour-openai") == "0.00015")
        _ = try await h.post("/chat", Self.chat)
        let fourth = try await h.post("/chat", Self.chat)
        #expect(fourth.status == 429)
    }

    @Test func hiddenHeadersStillTellTheRefusedClientWhenToRetry() async throws {
        let h = try await AIHarness.start(Self.document(limiter: """
            llm_providers: [{name: openai, limit: [40], window_size: [60]}], hide_client_headers: true, \
            retry_after_jitter_max: 5, error_code: 403
            """))
        defer { Task { await h.stop() } }
        Self.answer(h)
        let first = try await h.post("/chat", Self.chat)
        #expect(first.status == 200)
        #expect(first.headers.first(name: "X-AI-RateLimit-Limit-minute-openai") == nil)
        let refused = try await h.post("/chat", Self.chat)
        #expect(refused.status == 403)
        let reset = try #require(Int(refused.headers.first(name: "X-AI-RateLimit-Reset") ?? ""))
        let retry = try #require(Int(refused.headers.first(name: "X-AI-RateLimit-Retry-After") ?? ""))
        #expect((reset + 1...reset + 5).contains(retry), "jitter of 1…5 s")
        #expect(refused.headers.first(name: "X-AI-RateLimit-Remaining-minute-openai") == nil)
    }

    @Test func eachIdentifierValueHasItsOwnCounter() async throws {
        let h = try await AIHarness.start(Self.document(limiter: """
            llm_providers: [{name: openai, limit: [40], window_size: [60]}], identifier: header, header_name: x-team
            """))
        defer { Task { await h.stop() } }
        Self.answer(h)
        #expect(try await h.post("/chat", Self.chat, headers: [("x-team", "a")]).status == 200)
        #expect(try await h.post("/chat", Self.chat, headers: [("x-team", "a")]).status == 429)
        #expect(try await h.post("/chat", Self.chat, headers: [("x-team", "b")]).status == 200, "team b is counted apart")
    }

    /// Behind a trusted load balancer, `ip` is the client the balancer names in `X-Real-IP`
    /// (Kong's forwarded IP), not the balancer: clients are counted apart.
    @Test func theIPIdentifierIsTheClientATrustedProxyNames() async throws {
        var options = ProxyOptions()
        options.trustedIPs = try TrustedIPs.parse("127.0.0.0/8").get()
        let h = try await AIHarness.start(Self.document(limiter: """
            llm_providers: [{name: openai, limit: [40], window_size: [60]}], identifier: ip
            """), options: options)
        defer { Task { await h.stop() } }
        Self.answer(h)
        #expect(try await h.post("/chat", Self.chat, headers: [("X-Real-IP", "1.1.1.1")]).status == 200)
        #expect(try await h.post("/chat", Self.chat, headers: [("X-Real-IP", "1.1.1.1")]).status == 429)
        #expect(try await h.post("/chat", Self.chat, headers: [("X-Real-IP", "2.2.2.2")]).status == 200, "another client")
        #expect(try await h.post("/chat", Self.chat, headers: [("X-Real-IP", "not an address")]).status == 200,
                "no address named: the peer's own counter")
        #expect(try await h.post("/chat", Self.chat, headers: [("X-Real-IP", "another non-address")]).status == 429,
                "the same peer's counter again, not one per header text")
    }

    @Test func aFixedWindowAdmitsAgainOnceItPasses() async throws {
        let h = try await AIHarness.start(Self.document(limiter: """
            llm_providers: [{name: openai, limit: [40], window_size: [1]}], window_type: fixed
            """))
        defer { Task { await h.stop() } }
        Self.answer(h)
        // Start right after a window boundary, so both calls fall in the same window.
        let now = Date().timeIntervalSince1970
        try await Task.sleep(for: .milliseconds(Int((now.rounded(.down) + 1 - now) * 1000) + 20))
        #expect(try await h.post("/chat", Self.chat).status == 200)
        #expect(try await h.post("/chat", Self.chat).status == 429)
        try await Task.sleep(for: .milliseconds(1100))
        let again = try await h.post("/chat", Self.chat)
        #expect(again.status == 200, "a new window")
        #expect(again.headers.first(name: "X-AI-RateLimit-Remaining-second-openai") == "40")
    }

    @Test func streamedUsageIsCountedOnceTheStreamEnds() async throws {
        let h = try await AIHarness.start(Self.document(limiter: "llm_providers: [{name: openai, limit: [1000], window_size: [3600]}]"))
        defer { Task { await h.stop() } }
        let frames = ProviderFixtures.openAIStream(deltas: ["a", "b"])
        let usageFrame = #"data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":70,"total_tokens":100}}"# + "\n\n"
        h.provider.answer(path: "/v1/chat/completions",
                          with: .events(Array(frames.dropLast()) + [usageFrame, frames.last!]))
        let streamed = try await h.post("/chat", #"{"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(streamed.status == 200)
        #expect(streamed.body.contains("data: [DONE]"))
        // Counted in the log phase, which runs after the response.
        var remaining = ""
        for _ in 0..<20 {
            try await Task.sleep(for: .milliseconds(50))
            Self.answer(h)
            let probe = try await h.post("/chat", Self.chat)
            remaining = probe.headers.first(name: "X-AI-RateLimit-Remaining-hour-openai") ?? ""
            if remaining != "1000" { break }
        }
        #expect(remaining == "900", "the stream's 100 tokens were counted")
    }

    /// A client that leaves mid-stream still pays for what it was sent: the stream is ended for
    /// the body filters and the log phase runs, as Kong runs it for aborted requests.
    @Test func aStreamTheClientLeavesIsChargedForWhatWentThrough() async throws {
        let directory = try TemporaryDirectory.make("left-stream")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("ai.log").path
        let h = try await Self.loggedRoute(limit: 1000, logPath: logPath)
        defer { Task { await h.stop() } }
        // The last frame waits for a gate that never opens: the client leaves before it.
        h.provider.answer(path: "/v1/chat/completions",
                          with: .events(ProviderFixtures.openAIStream(deltas: ["one", "two", "three"]), holdingLast: true))
        let body = #"{"stream":true,"messages":[{"role":"user","content":"tell me a long story please"}]}"#
        let channel = try await h.gateway.rawConnection()
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "POST /chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                                                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"))
            var text = ""
            var iterator = inbound.makeAsyncIterator()
            while !text.contains("three"), let chunk = try await iterator.next() { text += String(buffer: chunk) }
        }
        let lines = try await AIProxyTests.logLines(logPath, atLeast: 1)
        try #require(lines.count == 1, "the abandoned request is logged: \(lines)")
        let entry = try JSONValue.parse(lines[0])
        #expect(entry["response"]?["status"] == 200)
        let charged = try #require(entry["ai"]?["proxy"]?["usage"]?["total_tokens"]?.numberValue)
        #expect(charged > 0, "\(lines[0])")
        Self.answer(h)
        let probe = try await h.post("/chat", Self.chat)
        #expect(probe.headers.first(name: "X-AI-RateLimit-Remaining-hour-openai") == String(1000 - Int(charged)))
    }

    @Test func concurrentClientsCannotOvershootByMoreThanOneRequestEach() async throws {
        let h = try await AIHarness.start(Self.document(limiter: "llm_providers: [{name: openai, limit: [200], window_size: [3600]}]"))
        defer { Task { await h.stop() } }
        Self.answer(h)
        let concurrency = 8
        let admitted = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var admitted = 0
                    for _ in 0..<5 where try await h.post("/chat", Self.chat).status == 200 { admitted += 1 }
                    return admitted
                }
            }
            return try await group.reduce(0, +)
        }
        // Sequentially 5 calls pass (200, 150, 100, 50, 0 → the 5th still passes at rate 200).
        #expect(admitted >= 5)
        #expect(admitted * 50 <= 200 + 50 * concurrency, "admitted \(admitted)")
    }

    @Test func aConsumerGroupInstanceOverridesTheRouteInstanceForItsMembers() async throws {
        let routeLimiter = UUID().uuidString.lowercased(), groupLimiter = UUID().uuidString.lowercased()
        let yaml = """
            consumers:
            - username: alice
              keyauth_credentials: [{key: alice-key}]
            - username: bob
              keyauth_credentials: [{key: bob-key}]
            consumer_groups:
            - name: gold
              plugins:
              - name: ai-rate-limiting-advanced
                id: \(groupLimiter)
                config: {llm_providers: [{name: openai, limit: [1000], window_size: [3600]}]}
            consumer_group_consumers:
            - {consumer: alice, consumer_group: gold}

            """ + AIConfig.document(AIConfig.route("limited", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())", more: [
                "name: key-auth, config: {key_names: [apikey]}",
                "name: ai-rate-limiting-advanced, id: \(routeLimiter), config: {llm_providers: [{name: openai, limit: [40], window_size: [3600]}]}",
            ]))
        let h = try await AIHarness.start(yaml)
        defer { Task { await h.stop() } }
        Self.answer(h)
        #expect(try await h.post("/chat", Self.chat, headers: [("apikey", "bob-key")]).status == 200)
        let bob = try await h.post("/chat", Self.chat, headers: [("apikey", "bob-key")])
        #expect(bob.status == 429, "bob has the route's 40 tokens")
        for _ in 1...3 {
            let alice = try await h.post("/chat", Self.chat, headers: [("apikey", "alice-key")])
            #expect(alice.status == 200, "alice's group allows 1000")
            #expect(alice.headers.first(name: "X-AI-RateLimit-Limit-hour-openai") == "1000")
        }
    }

    @Test func strategiesThisBuildCannotRunRefuseTheConfiguration() async throws {
        await #expect {
            _ = try await AIHarness.start(Self.document(limiter: """
                llm_providers: [{name: openai, limit: [10], window_size: [60]}], strategy: redis, sync_rate: 0, \
                redis: {cluster_nodes: [{ip: 127.0.0.1, port: 7000}]}
                """))
        } throws: { error in
            String(describing: error).contains("Redis Cluster (redis.cluster_nodes) is not supported by this build yet")
        }
        await #expect {
            _ = try await AIHarness.start(Self.document(limiter: """
                llm_providers: [{name: openai, limit: [10], window_size: [60]}], strategy: redis, sync_rate: 0, \
                redis: {sentinel_master: mymaster, sentinel_role: slave, sentinel_nodes: [{host: 127.0.0.1, port: 26379}]}
                """))
        } throws: { error in
            String(describing: error).contains("redis.sentinel_role 'slave' cannot hold rate-limiting counters")
        }
        await #expect {
            _ = try await AIHarness.start(Self.document(limiter: "llm_providers: [{name: openai, limit: [10], window_size: [60]}], error_code: 1000"))
        } throws: { error in
            String(describing: error).contains("error_code must be an HTTP status code (100-599), got 1000")
        }
    }
}
