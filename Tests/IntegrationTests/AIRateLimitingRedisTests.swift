import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import Testing

/// ai-rate-limiting-advanced with `strategy: redis` against a real redis-server: the worked
/// example, keys that expire, several gateway processes sharing one budget (sync_rate 0 and 1),
/// and local counting while Redis is down.
@Suite(.serialized)
struct AIRateLimitingRedisTests {
    static let chat = AIRateLimitingTests.chat

    /// A Redis that is down: port 1, where nothing listens (a port freed by a stopped server
    /// could be handed to another test's server meanwhile).
    static let nothingListens = 1

    static func limiter(port: Int, limit: Int, window: Int = 3600, syncRate: String = "0") -> String {
        "name: ai-rate-limiting-advanced, id: \(UUID().uuidString.lowercased()), config: {strategy: redis, sync_rate: \(syncRate), "
            + "identifier: ip, redis: {host: 127.0.0.1, port: \(port), read_timeout: 500, connect_timeout: 500}, "
            + "llm_providers: [{name: openai, limit: [\(limit)], window_size: [\(window)]}]}"
    }

    static func answer(_ h: AIHarness) { AIRateLimitingTests.answer(h) }

    @Test func theWorkedExampleHoldsWithCountersInRedisThatExpire() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "limited", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())",
            more: [Self.limiter(port: redis.port, limit: 310)])))
        defer { Task { await h.stop() } }
        let (remaining, eighth) = try await AIRateLimitingTests.workedExample(h)
        #expect(remaining == ["310", "260", "210", "160", "110", "60", "10"])
        #expect(eighth.status == 429)

        let keys = try redis.cli(["KEYS", "silverback:ai-rate-limiting:*"]).split(separator: "\n").map(String.init)
        try #require(keys.count == 1, "one key for the one window in use: \(keys)")
        #expect(try redis.cli(["GET", keys[0]]) == "350")
        let ttl = Int(try redis.cli(["TTL", keys[0]])) ?? -1
        #expect((1...7201).contains(ttl), "set once, two windows and a second: \(ttl)")
    }

    /// Kong's worked example (limit 310) through `limiter`; the counter keys `redis` then holds.
    static func workedExampleKeys(_ limiter: String, in redis: RedisServer) async throws -> String {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "limited", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())", more: [limiter])))
        defer { Task { await h.stop() } }
        let (remaining, eighth) = try await AIRateLimitingTests.workedExample(h)
        #expect(remaining == ["310", "260", "210", "160", "110", "60", "10"])
        #expect(eighth.status == 429)
        return try redis.cli(["KEYS", "silverback:ai-rate-limiting:*"])
    }

    /// `redis.ssl`: the counters reach a TLS-only Redis. `ssl_verify` refuses its self-signed
    /// certificate, and the limiter then counts locally (nothing reaches Redis).
    @Test(arguments: [false, true])
    func countersReachARedisThatSpeaksTLS(_ verify: Bool) async throws {
        let files = try TestCertificate.makePEMFiles()
        let redis = try await RedisServer(tls: files)
        defer { redis.stop() }
        let limiter = Self.limiter(port: redis.port, limit: 310).replacingOccurrences(
            of: "redis: {", with: "redis: {ssl: true, ssl_verify: \(verify), server_name: localhost, ")
        let keys = try await Self.workedExampleKeys(limiter, in: redis)
        if verify {
            #expect(keys == "", "an unverifiable certificate is refused: \(keys)")
        } else {
            try #require(!keys.isEmpty)
            #expect(try redis.cli(["GET", keys]) == "350")
        }
    }

    /// Redis forgets its scripts (SCRIPT FLUSH, a restart behind a proxy): increments go on with EVAL.
    @Test(arguments: ["0", "1"])
    func countingSurvivesRedisForgettingTheScript(_ syncRate: String) async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "limited", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())",
            more: [Self.limiter(port: redis.port, limit: 1000, syncRate: syncRate)])))
        defer { Task { await h.stop() } }
        Self.answer(h)
        #expect(try await h.post("/chat", Self.chat).status == 200)
        try await Task.sleep(for: .milliseconds(syncRate == "1" ? 1500 : 100))
        #expect(try redis.cli(["SCRIPT", "FLUSH"]) == "OK")
        #expect(try await h.post("/chat", Self.chat).status == 200)
        #expect(try await h.post("/chat", Self.chat).status == 200)
        try await Task.sleep(for: .milliseconds(syncRate == "1" ? 1500 : 100))
        let keys = try redis.cli(["KEYS", "silverback:ai-rate-limiting:*"])
        try #require(!keys.isEmpty)
        #expect(try redis.cli(["GET", keys]) == "150", "every call reached Redis")
    }

    /// Redis Sentinel: the master's address comes from the first sentinel that answers (the
    /// first one listed is down); `host` is never used.
    @Test func countersReachTheMasterASentinelNames() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let sentinel = try await RedisServer(sentinelOf: redis.port)
        defer { sentinel.stop() }
        for _ in 0..<100 where (try? sentinel.cli(["SENTINEL", "get-master-addr-by-name", "mymaster"]))?.contains(String(redis.port)) != true {
            try await Task.sleep(for: .milliseconds(50))
        }
        let downPort = Self.nothingListens
        let limiter = "name: ai-rate-limiting-advanced, id: \(UUID().uuidString.lowercased()), config: {strategy: redis, sync_rate: 0, "
            + "identifier: ip, redis: {host: 127.0.0.1, port: \(downPort), sentinel_master: mymaster, sentinel_role: master, "
            + "sentinel_nodes: [{host: 127.0.0.1, port: \(downPort)}, {host: 127.0.0.1, port: \(sentinel.port)}], "
            + "read_timeout: 500, connect_timeout: 500}, llm_providers: [{name: openai, limit: [310], window_size: [3600]}]}"
        let keys = try await Self.workedExampleKeys(limiter, in: redis)
        try #require(!keys.isEmpty, "the counters are in the master")
        #expect(try redis.cli(["GET", keys]) == "350")
    }

    @Test func aShortWindowsKeysExpireAndRequestsAreAdmittedAgain() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "limited", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())",
            more: [Self.limiter(port: redis.port, limit: 40, window: 1) + ""])))
        defer { Task { await h.stop() } }
        Self.answer(h)
        _ = try await h.post("/chat", Self.chat)
        _ = try await h.post("/chat", Self.chat)
        try await Task.sleep(for: .milliseconds(2200))
        #expect(try await h.post("/chat", Self.chat).status == 200, "two windows later nothing counts")
        try await Task.sleep(for: .milliseconds(3500))
        #expect(try redis.cli(["KEYS", "silverback:ai-rate-limiting:*"]) == "", "every key expired")
    }

    @Test func whileRedisIsDownRequestsFlowOnLocalCounters() async throws {
        let port = Self.nothingListens
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route(
            "limited", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())",
            more: [Self.limiter(port: port, limit: 60)])))
        defer { Task { await h.stop() } }
        Self.answer(h)
        #expect(try await h.post("/chat", Self.chat).status == 200, "no Redis: not refused")
        #expect(try await h.post("/chat", Self.chat).status == 200)
        #expect(try await h.post("/chat", Self.chat).status == 429, "the local counters still limit")
    }

    /// Two gateway processes, one Redis: the combined admitted tokens stay within the limit plus
    /// what the requests in flight at once can add (sync_rate 0), or plus one sync period's worth
    /// of traffic per node (sync_rate 1).
    @Test(arguments: ["0", "1"])
    func twoNodesShareOneBudget(_ syncRate: String) async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let provider = try await MockLLMProvider.start()
        defer { Task { await provider.stop() } }
        AIRateLimitingTests.answer(provider)
        let directory = try TemporaryDirectory.make("two-nodes")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("kong.yml")
        // The same plugin id on both nodes: one budget.
        let limiter = Self.limiter(port: redis.port, limit: 1000, syncRate: syncRate)
        let yaml = "_format_version: \"3.0\"\n" + AIConfig.document(AIConfig.route(
            "limited", path: "/chat", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())", more: [limiter]))
            .replacingOccurrences(of: "UPSTREAM", with: provider.baseURL)
            .replacingOccurrences(of: "PROVIDER", with: provider.baseURL)
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let environment = ["KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": file.path]
        let nodes = [try SilverbackNode(environment: environment), try SilverbackNode(environment: environment)]
        defer { for node in nodes { _ = node.stop() } }

        let client = HTTPClient.shared
        let concurrency = 4
        let admitted = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<(2 * concurrency) {
                let port = nodes[worker % 2].proxyPort
                group.addTask {
                    var admitted = 0
                    for _ in 0..<15 {
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/chat")
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(ByteBuffer(string: Self.chat))
                        let response = try await client.execute(request, timeout: .seconds(10))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        if response.status.code == 200 { admitted += 1 }
                        if syncRate == "1" { try await Task.sleep(for: .milliseconds(100)) }
                    }
                    return admitted
                }
            }
            return try await group.reduce(0, +)
        }
        let tokens = admitted * 50
        // sync 0: each of the 8 clients may have one request in flight past the limit.
        // sync 1: each node may also admit up to one second of traffic on stale counts.
        let slack = syncRate == "0" ? 50 * (2 * concurrency + 1) : 50 * (2 * concurrency + 1) + 50 * 2 * concurrency * 10
        #expect(tokens >= 1000, "the budget was used: \(tokens)")
        #expect(tokens <= 1000 + slack, "admitted \(tokens) tokens for a budget of 1000")
        #expect(admitted < 2 * concurrency * 15, "some requests were refused")
    }
}
