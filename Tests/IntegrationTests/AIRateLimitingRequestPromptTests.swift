import Core
import Foundation
import Testing

/// ai-rate-limiting-advanced's `requestPrompt` provider: the cost of each request comes from a
/// Lua function run in the sandbox before the decision (spec §5.3, §5.4).
struct AIRateLimitingRequestPromptTests {
    static let chat = AIRateLimitingTests.chat

    /// A route limited on requestPrompt only; `function` is a Lua source (YAML-quoted here).
    static func start(limit: Int, function: String, more: String = "") async throws -> AIHarness {
        let quoted = function.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let h = try await AIHarness.start(AIRateLimitingTests.document(limiter:
            "llm_providers: [{name: requestPrompt, limit: [\(limit)], window_size: [3600]}], "
                + "request_prompt_count_function: \"\(quoted)\"\(more)"))
        AIRateLimitingTests.answer(h)
        return h
    }

    @Test func kongsExampleRemainingFallsBy100AndIncludesTheCurrentCall() async throws {
        let h = try await Self.start(limit: 2000, function: "return 100")
        defer { Task { await h.stop() } }
        for call in 1...3 {
            let response = try await h.post("/chat", Self.chat)
            #expect(response.status == 200)
            #expect(response.headers.first(name: "X-AI-RateLimit-Limit-hour-requestPrompt") == "2000")
            #expect(response.headers.first(name: "X-AI-RateLimit-Remaining-hour-requestPrompt") == String(2000 - 100 * call))
            #expect(response.headers.first(name: "X-AI-RateLimit-Query-Cost-hour-requestPrompt") == "100")
        }
    }

    @Test func aLimitBelowOneCallsCostRefusesTheFirstCall() async throws {
        let h = try await Self.start(limit: 90, function: "return 100")
        defer { Task { await h.stop() } }
        let refused = try await h.post("/chat", Self.chat)
        #expect(refused.status == 429)
        #expect(refused.json == ["message": "AI token rate limit exceeded for provider(s): requestPrompt"])
        #expect(h.provider.requests.isEmpty, "the LLM was not called")
    }

    /// The gateway hands the function the request's own facts: host, port, route, client.
    @Test func theFunctionSeesTheRouteTheHostAndTheClient() async throws {
        let h = try await Self.start(limit: 1000, function: """
            local route = kong.router.get_route()
            if route.name ~= 'limited' or kong.request.get_host() ~= 'api.example.test' then return 1 end
            if kong.client.get_ip() ~= '127.0.0.1' or kong.client.get_consumer() ~= nil then return 2 end
            return bit.band(kong.request.get_port(), 0) + 42
            """)
        defer { Task { await h.stop() } }
        let response = try await h.post("/chat", Self.chat, headers: [("Host", "API.example.test:1234")])
        #expect(response.headers.first(name: "X-AI-RateLimit-Query-Cost-hour-requestPrompt") == "42")
    }

    @Test func theFunctionReadsTheRequestThroughTheKongAPI() async throws {
        let h = try await Self.start(limit: 1000, function: """
            local body = kong.request.get_body()
            local cost = 0
            for _, message in ipairs(body.messages) do cost = cost + #message.content end
            return cost * tonumber(kong.request.get_header("X-Weight") or "1")
            """)
        defer { Task { await h.stop() } }
        let response = try await h.post("/chat", #"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}]}"#,
                                        headers: [("x-weight", "3")])
        #expect(response.status == 200)
        #expect(response.headers.first(name: "X-AI-RateLimit-Query-Cost-hour-requestPrompt") == "39", "(8 + 5) × 3")
        #expect(response.headers.first(name: "X-AI-RateLimit-Remaining-hour-requestPrompt") == "961")
    }

    @Test(arguments: [
        ("return 'many'", "Bad return value from the request prompt count function"),
        ("return 0/0", "Bad return value from the request prompt count function"),
        ("error('no budget table')", "Error executing request prompt count function"),
        ("while true do end", "Error executing request prompt count function"),
        ("kong.request.get_body = nil return 1", "Error executing request prompt count function"),
    ])
    func aFunctionThatFailsGivesKongs500(_ function: String, _ message: String) async throws {
        let h = try await Self.start(limit: 1000, function: function)
        defer { Task { await h.stop() } }
        let response = try await h.post("/chat", Self.chat)
        #expect(response.status == 500)
        #expect(response.json == ["message": .string(message)])
        #expect(h.provider.requests.isEmpty)
    }

    /// The cost comes from a header so one test can send a cheap call after a refused one: it
    /// passes only when the refused call was not charged. `disable_penalty` applies to sliding
    /// windows only.
    @Test(arguments: [(true, "sliding"), (false, "sliding"), (true, "fixed")])
    func disablePenaltySparesRefusedCallsInSlidingWindows(_ disablePenalty: Bool, _ windowType: String) async throws {
        let spared = disablePenalty && windowType == "sliding"
        let h = try await Self.start(limit: 250, function: #"return tonumber(kong.request.get_header("x-cost"))"#,
                                     more: ", disable_penalty: \(disablePenalty), window_type: \(windowType)")
        defer { Task { await h.stop() } }
        func call(_ cost: Int) async throws -> Int { try await h.post("/chat", Self.chat, headers: [("x-cost", String(cost))]).status }
        #expect(try await call(100) == 200)
        #expect(try await call(100) == 200)
        #expect(try await call(100) == 429, "300 > 250")
        #expect(try await call(50) == (spared ? 200 : 429), "250 is within the limit only if the refused 100 was not charged")
    }
}
