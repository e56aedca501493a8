import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// DB mode on SQLite through the real binary: Kong's documented Admin API sequence, live
/// application to the proxy, durability across SIGKILL, and `config db_import` / `db_export`.
@Suite(.serialized)
struct DatabaseModeTests {
    let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-db-\(UUID().uuidString)")
    var environment: [String: String] { ["KONG_DATABASE": "sqlite", "KONG_PREFIX": prefix.path] }

    func startNode() throws -> SilverbackNode { try SilverbackNode(environment: environment) }

    /// Polls the proxy until `path` answers something other than `unwanted` (the snapshot is
    /// rebuilt after the write is acknowledged, not before).
    func waitForProxy(_ node: SilverbackNode, _ path: String, headers: [String: String] = [:],
                      toLeave unwanted: Int) async throws -> SilverbackNode.Reply {
        var reply = try await node.proxy(path, headers: headers)
        for _ in 0..<100 where reply.status == unwanted {
            try await Task.sleep(nanoseconds: 50_000_000)
            reply = try await node.proxy(path, headers: headers)
        }
        return reply
    }

    /// The calls of Kong's "getting started" guide, unchanged, then the proxy behaves accordingly.
    @Test func kongDocumentationSequenceWorksUnchanged() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let upstream = try await MockUpstream.start()
        let node = try startNode()

        let service = try await node.admin("POST", "/services", form: [("name", "example_service"),
                                                                       ("url", "http://127.0.0.1:\(upstream.port)")])
        #expect(service.status == 201, "\(service.text)")
        let route = try await node.admin("POST", "/services/example_service/routes",
                                         form: [("paths[]", "/mock"), ("name", "example_route")])
        #expect(route.status == 201, "\(route.text)")
        #expect((route.json?["service"] as? [String: Any])?["id"] as? String == service.json?["id"] as? String)

        let open = try await waitForProxy(node, "/mock/anything", toLeave: 404)
        #expect(open.status == 200, "the route is live without a restart: \(open.text)")

        let consumer = try await node.admin("POST", "/consumers", form: [("username", "luka")])
        #expect(consumer.status == 201)
        let credential = try await node.admin("POST", "/consumers/luka/key-auth", form: [("key", "top-secret")])
        #expect(credential.status == 201, "\(credential.text)")
        let plugin = try await node.admin("POST", "/routes/example_route/plugins", form: [("name", "key-auth")])
        #expect(plugin.status == 201, "\(plugin.text)")
        let consumerPlugin = try await node.admin("POST", "/consumers/luka/plugins",
                                                  json: #"{"name":"ai-rate-limiting-advanced","config":{"llm_providers":[{"name":"openai","limit":[100],"window_size":[60]}]}}"#)
        #expect(consumerPlugin.status == 201, "\(consumerPlugin.text)")
        #expect((consumerPlugin.json?["consumer"] as? [String: Any])?["id"] as? String == consumer.json?["id"] as? String)

        let denied = try await waitForProxy(node, "/mock/anything", toLeave: 200)
        #expect(denied.status == 401)
        let allowed = try await node.proxy("/mock/anything", headers: ["apikey": "top-secret"])
        #expect(allowed.status == 200)
        #expect(allowed.text.contains("\"x-consumer-username\":[\"luka\"]"), "\(allowed.text)")

        // Removing the credential is live too.
        #expect(try await node.admin("DELETE", "/consumers/luka/key-auth/top-secret").status == 204)
        let revoked = try await waitForProxy(node, "/mock/anything", headers: ["apikey": "top-secret"], toLeave: 200)
        #expect(revoked.status == 401)
        #expect(node.stop() == 0)
        await upstream.stop()
    }

    /// Every write acknowledged before a SIGKILL is there after the restart.
    @Test func acknowledgedWritesSurviveSIGKILL() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let node = try startNode()
        let names = (0..<120).map { "consumer-\($0)" }
        let acknowledged = try await withThrowingTaskGroup(of: String?.self) { group in
            for (i, name) in names.enumerated() {
                group.addTask {
                    let reply = i % 2 == 0
                        ? try await node.admin("POST", "/consumers", form: [("username", name)])
                        : try await node.admin("PUT", "/consumers/\(name)", form: [("custom_id", "c\(i)")])
                    return reply.status == 201 || reply.status == 200 ? name : nil
                }
            }
            var done: [String] = []
            for try await name in group { if let name { done.append(name) } }
            return done
        }
        #expect(acknowledged.count == names.count)
        node.crash()

        let restarted = try startNode()
        let list = try await restarted.admin("GET", "/consumers?size=1000")
        let stored = Set((list.json?["data"] as? [[String: Any]] ?? []).compactMap { $0["username"] as? String })
        #expect(Set(acknowledged).isSubset(of: stored), "lost: \(Set(acknowledged).subtracting(stored).sorted())")
        #expect(restarted.stop() == 0)
    }

    /// A refused write changes nothing, also after a restart.
    @Test func refusedWritesChangeNothing() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        let node = try startNode()
        #expect(try await node.admin("POST", "/services", form: [("name", "s1"), ("url", "http://127.0.0.1:1")]).status == 201)
        let before = try await node.admin("GET", "/services/s1")
        let clash = try await node.admin("PATCH", "/services/s1", form: [("port", "99999")])
        #expect(clash.status == 400)
        #expect(clash.json?["message"] as? String == "schema violation (port: value should be between 0 and 65535)")
        #expect(node.stop() == 0)
        let restarted = try startNode()
        let after = try await restarted.admin("GET", "/services/s1")
        #expect(after.json?["port"] as? Int == 1)
        #expect(after.text == before.text)
        #expect(restarted.stop() == 0)
    }

    func cli(_ arguments: [String]) throws -> CLITests.Run { try CLITests().run(arguments, environment: environment) }

    /// `db_import` then `db_export` gives the same content back, and a second round trip gives
    /// the same text; an invalid file imports nothing.
    @Test func dbImportAndExportRoundTrip() throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        try FileManager.default.createDirectory(at: prefix, withIntermediateDirectories: true)
        let imported = try cli(["config", "db_import", "kong-compat/declarative/valid/full.yml"])
        #expect(imported.status == 0, "\(imported.stderr)")
        let first = prefix.appendingPathComponent("first.yml").path
        let exported = try cli(["config", "db_export", first])
        #expect(exported.status == 0, "\(exported.stderr)")
        let firstText = try String(contentsOfFile: first, encoding: .utf8)
        #expect(firstText.contains("_format_version: '3.0'"))

        // The export loads into an empty database and exports to the same text.
        let other = prefix.appendingPathComponent("other")
        let otherEnv = ["KONG_DATABASE": "sqlite", "KONG_PREFIX": other.path]
        #expect(try CLITests().run(["config", "db_import", first], environment: otherEnv).status == 0)
        let second = prefix.appendingPathComponent("second.yml").path
        #expect(try CLITests().run(["config", "db_export", second], environment: otherEnv).status == 0)
        #expect(try String(contentsOfFile: second, encoding: .utf8) == firstText)

        // The export holds what the source file declared.
        let parsed = try CLITests().run(["config", "parse", first])
        #expect(parsed.status == 0, "\(parsed.stderr)")

        let refused = try cli(["config", "db_import", "kong-compat/declarative/invalid/bad-service.yml"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("in 'port': value should be between 0 and 65535"))
        let unchanged = prefix.appendingPathComponent("unchanged.yml").path
        #expect(try cli(["config", "db_export", unchanged]).status == 0)
        #expect(try String(contentsOfFile: unchanged, encoding: .utf8) == firstText)

        let offline = try CLITests().run(["config", "db_import", first], environment: ["KONG_DATABASE": "off"])
        #expect(offline.status == 1)
        #expect(offline.stderr.contains("db_import needs a database"))
    }

    /// The node serves what the database holds when it starts.
    @Test func startServesImportedConfiguration() async throws {
        defer { try? FileManager.default.removeItem(at: prefix) }
        try FileManager.default.createDirectory(at: prefix, withIntermediateDirectories: true)
        #expect(try cli(["config", "db_import", "kong-compat/declarative/valid/full.yml"]).status == 0)
        let node = try startNode()
        let busy = try cli(["config", "db_import", "kong-compat/declarative/valid/full.yml"])
        #expect(busy.status == 1, "a running node owns the database")
        #expect(busy.stderr.contains("is in use by a running node"))
        let services = try await node.admin("GET", "/services")
        let names = (services.json?["data"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(Set(names) == ["openai-chat", "azure-embeddings"])
        let status = try await node.admin("GET", "/status")
        #expect((status.json?["database"] as? [String: Any])?["reachable"] as? Bool == true)
        #expect(node.stop() == 0)
    }
}
