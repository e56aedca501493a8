@testable import AdminAPI
import Core
import Foundation
import Testing

/// The Admin API in DB-less mode (spec §3, §4), through `AdminAPI.respond` — the same entry the
/// HTTP server calls (the CLI test drives it over a real socket).
struct AdminAPITests {
    static let keyAuth = PluginDefinition(
        name: "key-auth", priority: 1250, version: "3.10.0",
        config: RecordSchema(["key_names": Field.array(of: Field.string).required().default(["apikey"])]),
        forbiddenScopes: [.consumer], entities: [KeyAuthCredentialSchema.schema])

    let loader = DeclarativeLoader(registry: EntityRegistry(plugins: [Self.keyAuth]))
    let gateway: Gateway
    let api: AdminAPI
    let persisted: String

    init() throws {
        gateway = Gateway(loader: loader, factories: [], threads: 1)
        var settings = Settings()
        settings.database = .off
        persisted = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-admin-\(UUID().uuidString)/config.json").path
        api = AdminAPI(gateway: gateway, loader: loader, settings: settings, persistencePath: persisted)
        try gateway.apply(try loader.load(text: """
        _format_version: "3.0"
        services:
        - name: svc
          url: http://upstream.test:8080/api
          tags: [blue]
          routes:
          - name: r1
            paths: ["/one"]
          - name: r2
            paths: ["/two"]
            tags: [blue, green]
        consumers:
        - username: alice
          keyauth_credentials:
          - key: alice-key
          groups: [{name: gold}]
        consumer_groups:
        - name: gold
        plugins:
        - name: key-auth
        """, format: .yaml))
    }

    func call(_ method: String, _ path: String, query: [(String, String)] = [], body: String = "",
              contentType: String? = nil) async -> AdminResponse {
        var headers: [String: [String]] = [:]
        if let contentType { headers["content-type"] = [contentType] }
        return await api.respond(to: AdminRequest(method: method, path: path, query: query.map { ($0.0, $0.1) },
                                                  headers: headers, body: Array(body.utf8)))
    }

    @Test func rootStatusAndPlugins() async {
        let root = await call("GET", "/")
        #expect(root.status == 200)
        #expect(root.json?["tagline"] == "Welcome to kong")
        #expect(root.json?["plugins"]?["enabled_in_cluster"] == ["key-auth"])
        #expect(root.headers.contains { $0 == ("Server", "kong/3.10.0") })
        #expect(root.headers.contains { $0.0 == "X-Kong-Admin-Latency" && Int($0.1) != nil })
        let status = await call("GET", "/status")
        #expect(status.json?["configuration_hash"]?.stringValue?.count == 32)
        #expect(await call("GET", "/plugins/enabled").json == ["enabled_plugins": ["key-auth"]])
    }

    /// Kong's `/status`: `memory` in `unit` (default MiB) with `scale` digits, Kong's 400s for a
    /// bad unit or scale, and `database.reachable` in DB-less mode too.
    @Test func statusReportsMemoryInTheAskedUnit() async throws {
        let status = try #require(await call("GET", "/status").json)
        let worker = try #require(status["memory"]?["workers_lua_vms"]?.arrayValue?.first)
        let megabytes = try #require(worker["http_allocated_gc"]?.stringValue)
        #expect(megabytes.range(of: #"^[0-9]+\.[0-9]{2} MiB$"#, options: .regularExpression) != nil, "\(megabytes)")
        #expect(Double(megabytes.dropLast(4))! > 1, "the process holds more than a MiB")
        #expect(worker["pid"] == .number(Double(getpid())))
        #expect(status["memory"]?["lua_shared_dicts"] == .object([:]))
        #expect(status["database"] == ["reachable": true])
        let kilobytes = await call("GET", "/status", query: [("unit", "k"), ("scale", "3")])
        #expect(kilobytes.json?["memory"]?["workers_lua_vms"]?.arrayValue?.first?["http_allocated_gc"]?.stringValue?
            .range(of: #"^[0-9]+\.[0-9]{3} KiB$"#, options: .regularExpression) != nil)
        let bytes = await call("GET", "/status", query: [("unit", "b")])
        #expect(bytes.json?["memory"]?["workers_lua_vms"]?.arrayValue?.first?["http_allocated_gc"]?.numberValue ?? 0 > 1_048_576)
        #expect(await call("GET", "/status", query: [("unit", "V")]).json ==
                ["message": "invalid unit 'V' (expected 'k/K', 'm/M', or 'g/G')"])
        #expect(await call("GET", "/status", query: [("scale", "-1")]).json == ["message": "scale must be equal or greater than 0"])
    }

    @Test func listsGetsAndNestedReads() async throws {
        let services = await call("GET", "/services")
        #expect(services.status == 200)
        let service = try #require(services.json?["data"]?.arrayValue?.first)
        #expect(service["host"] == "upstream.test")
        #expect(service["tls_verify"] == .null, "every field is present, null when unset")
        let id = try #require(service["id"]?.stringValue)
        #expect(await call("GET", "/services/svc").json?["id"]?.stringValue == id, "by endpoint key")
        #expect(await call("GET", "/services/\(id)").json?["name"] == "svc", "by id")
        #expect(await call("GET", "/services/nope").status == 404)
        #expect(await call("GET", "/services/nope").json == ["message": "Not found"])
        let routes = await call("GET", "/services/svc/routes")
        #expect(routes.json?["data"]?.arrayValue?.count == 2)
        #expect(await call("GET", "/routes/r1/service").json?["id"]?.stringValue == id)
        #expect(await call("GET", "/consumers/alice/key-auth").json?["data"]?.arrayValue?.first?["key"] == "alice-key")
        #expect(await call("GET", "/key-auths/alice-key").status == 200)
        #expect(await call("GET", "/plugins").json?["data"]?.arrayValue?.first?["name"] == "key-auth")
    }

    /// An offset's JSON (Kong's tokens are unpadded base64).
    static func decodedOffset(_ token: String) -> JSONValue? {
        let padded = token + String(repeating: "=", count: (4 - token.utf8.count % 4) % 4)
        return Data(base64Encoded: padded).flatMap { try? JSONValue.parse(String(decoding: $0, as: UTF8.self)) }
    }

    @Test func pagesAreInIDOrderAndOffsetsNameTheLastID() async throws {
        let all = try #require(await call("GET", "/routes").json?["data"]?.arrayValue).compactMap { $0["id"]?.stringValue }
        #expect(all.count == 2)
        #expect(all == all.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }, "Kong lists by primary key")
        let first = await call("GET", "/routes", query: [("size", "1")])
        let offset = try #require(first.json?["offset"]?.stringValue)
        #expect(!offset.contains("="), "unpadded, as Kong's encode_base64(offset, true)")
        #expect(Self.decodedOffset(offset) == .array([.string(all[0])]))
        // A hand-made offset past the first id starts after it, padded or not.
        let token = Data(#"["\#(all[0])"]"#.utf8).base64EncodedString()
        #expect(await call("GET", "/routes", query: [("offset", token)]).json?["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [all[1]])
        #expect(await call("GET", "/routes", query: [("offset", "bm90IGpzb24")]).json ==
                ["code": 7, "name": "invalid offset", "message": "'bm90IGpzb24' is not a valid offset: bad json encoding"])
        #expect(await call("GET", "/routes", query: [("offset", "!!")]).json?["message"] ==
                "'!!' is not a valid offset: bad base64 encoding")
    }

    @Test func paginationAndTags() async throws {
        let first = await call("GET", "/routes", query: [("size", "1")])
        #expect(first.json?["data"]?.arrayValue?.count == 1)
        let offset = try #require(first.json?["offset"]?.stringValue)
        #expect(first.json?["next"]?.stringValue?.hasPrefix("/routes?offset=") == true)
        let second = await call("GET", "/routes", query: [("size", "1"), ("offset", offset)])
        #expect(second.json?["data"]?.arrayValue?.count == 1)
        #expect(second.json?["next"] == .null)
        #expect(await call("GET", "/routes", query: [("size", "x")]).json ==
                ["code": 9, "name": "invalid size", "message": "size must be a number"])
        #expect(await call("GET", "/routes", query: [("size", "1001")]).json?["message"] ==
                "size must be an integer between 1 and 1000")
        #expect(await call("GET", "/routes", query: [("offset", "!!")]).json?["code"] == 7)
        #expect(await call("GET", "/routes", query: [("tags", "blue,green")]).json?["data"]?.arrayValue?.count == 1)
        #expect(await call("GET", "/services", query: [("tags", "blue/red")]).json?["data"]?.arrayValue?.count == 1)
        #expect(await call("GET", "/routes", query: [("tags", "a,b/c")]).json ==
                ["code": 11, "name": "invalid options", "message": "invalid option (tags: invalid filter syntax)",
                 "options": ["tags": "invalid filter syntax"]])
    }

    @Test func writesAreValidatedThenRefused() async {
        let invalid = await call("POST", "/services", body: #"{"port":70000}"#, contentType: "application/json")
        #expect(invalid.status == 400)
        #expect(invalid.json?["code"] == 2)
        let valid = await call("POST", "/services", body: "name=new&host=example.com&port=8080",
                               contentType: "application/x-www-form-urlencoded")
        #expect(valid.status == 405)
        #expect(valid.json == ["code": 12, "name": "operation unsupported",
                               "message": "cannot create 'services' entities when not using a database"])
        #expect(await call("PUT", "/services/svc", body: #"{"host":"h"}"#, contentType: "application/json").json?["message"]
                == "cannot create or update 'services' entities by 'name' when not using a database")
        #expect(await call("PATCH", "/services/svc", body: #"{"retries":1}"#, contentType: "application/json").json?["message"]
                == "cannot update 'services' entities by 'name' when not using a database")
        #expect(await call("PATCH", "/services/missing", body: "{}", contentType: "application/json").json ==
                ["code": 6, "name": "not found", "message": "could not find the entity with '{name=\"missing\"}'",
                 "fields": ["name": "missing"]])
        #expect(await call("DELETE", "/services/missing").status == 204)
        #expect(await call("DELETE", "/services/svc").json?["message"]
                == "cannot remove 'services' entities by 'name' when not using a database")
        #expect(await call("POST", "/consumers/alice/key-auth", body: #"{"key":"k2"}"#, contentType: "application/json")
                .json?["message"] == "cannot create 'keyauth_credentials' entities when not using a database")
        #expect(await call("POST", "/services", body: "{", contentType: "application/json").json == ["message": "Cannot parse JSON body"])
        #expect(await call("POST", "/services", body: "x", contentType: "text/csv").status == 415)
        #expect(await call("DELETE", "/routes").json == ["message": "Method not allowed"])
        #expect(await call("GET", "/nowhere").status == 404)
    }

    @Test func schemasAndValidation() async {
        #expect(await call("GET", "/schemas/services").json?["fields"]?.arrayValue?.first == ["id": ["type": "string", "uuid": true, "auto": true]])
        #expect(await call("GET", "/schemas/nope").json == ["message": "No entity named 'nope'"])
        #expect(await call("GET", "/schemas/plugins/key-auth").status == 200)
        #expect(await call("GET", "/schemas/plugins/nope").json == ["message": "No plugin named 'nope'"])
        #expect(await call("POST", "/schemas/services/validate", body: #"{"host":"h"}"#, contentType: "application/json").json
                == ["message": "schema validation successful"])
        #expect(await call("POST", "/schemas/plugins/validate", body: #"{"name":"nope"}"#, contentType: "application/json").json?["fields"]
                == ["name": "plugin 'nope' not enabled; add it to the 'plugins' configuration property"])
    }

    @Test func optionsAndCORS() async {
        let options = await call("OPTIONS", "/services")
        #expect(options.status == 204)
        #expect(options.headers.contains { $0 == ("Allow", "GET, HEAD, OPTIONS, POST") })
        let head = await call("HEAD", "/services")
        #expect(head.status == 200 && head.body.isEmpty)
        #expect(head.headers.contains { $0 == ("Access-Control-Allow-Origin", "*") })
    }

    @Test func postConfigReplacesAtomicallyAndPersists() async throws {
        let before = await call("GET", "/status").json?["configuration_hash"]
        let bad = await call("POST", "/config", body: "_format_version: \"3.0\"\nservices:\n- port: 70000\n",
                             contentType: "application/yaml")
        #expect(bad.status == 400)
        #expect(bad.json?["fields"] == ["services": [["host": "required field missing", "port": "value should be between 0 and 65535"]]])
        #expect(await call("GET", "/services").json?["data"]?.arrayValue?.count == 1, "a rejected config keeps the running one")
        #expect(await call("GET", "/status").json?["configuration_hash"] == before)

        let yaml = "_format_version: \"3.0\"\nservices:\n- name: fresh\n  host: h\n"
        let good = await call("POST", "/config", body: yaml, contentType: "application/yaml")
        #expect(good.status == 201)
        let created = try #require(good.json?["services"]?.objectValue)
        #expect(created.values.first?["name"] == "fresh")
        #expect(await call("GET", "/services/fresh").status == 200)
        #expect(await call("GET", "/services/svc").status == 404)
        #expect(await call("GET", "/status").json?["configuration_hash"] == .string(DeclarativeConfig.hash(of: yaml)))
        #expect(try String(contentsOfFile: persisted, encoding: .utf8) == yaml, "kept under prefix for restarts")
        #expect(await call("POST", "/config", query: [("check_hash", "1")], body: yaml, contentType: "application/yaml").status == 304)

        let object = await call("POST", "/config", body: #"{"_format_version":"3.0","consumers":[{"username":"bob"}]}"#,
                                contentType: "application/json")
        #expect(object.status == 201)
        #expect(await call("GET", "/consumers/bob").status == 200)
        let flattened = await call("POST", "/config", query: [("flatten_errors", "true")],
                                   body: #"{"_format_version":"3.0","consumers":[{}]}"#, contentType: "application/json")
        #expect(flattened.json?["flattened_errors"]?.arrayValue?.first?["entity_type"] == "consumer")
        #expect(await call("POST", "/config").json == ["message": "expected a declarative configuration"])
        #expect(await call("POST", "/config", body: "x", contentType: "text/csv").status == 415)
        // A JSON body that does not parse: the Admin API's own 400, before /config reads it.
        #expect(await call("POST", "/config", body: #"{"_format_version":"3.0","#, contentType: "application/json").json ==
                ["message": "Cannot parse JSON body"])
        // Text is read as JSON first, then YAML: a YAML flow mapping starts with `{` too.
        let flow = await call("POST", "/config", body: #"{_format_version: "3.0", consumers: [{username: flow}]}"#,
                              contentType: "application/yaml")
        #expect(flow.status == 201, "\(String(decoding: flow.body, as: UTF8.self))")
        #expect(await call("GET", "/consumers/flow").status == 200)
        let object2 = await call("POST", "/config", body: #"{"_format_version":"3.0","consumers":[{"username":"bob"}]}"#,
                                 contentType: "application/json")
        #expect(object2.status == 201)
        let export = await call("GET", "/config")
        let text = try #require(export.json?["config"]?.stringValue)
        #expect(text.contains("_transform: false") && text.contains("username: bob"))
        let reloaded = try loader.load(text: text, format: .yaml)
        #expect(reloaded.rows("consumers").first?["username"] == "bob", "the export loads back")
    }

    @Test func tagsAndMemberships() async throws {
        let tags = await call("GET", "/tags")
        #expect(tags.json?["data"]?.arrayValue?.count == 3, "svc:blue, r2:blue, r2:green")
        #expect(await call("GET", "/tags/green").json?["data"]?.arrayValue?.first?["entity_name"] == "routes")
        // Paged as the entity lists are (spec §3.4).
        let first = await call("GET", "/tags", query: [("size", "2")])
        #expect(first.json?["data"]?.arrayValue?.count == 2)
        let offset = first.json?["offset"]?.stringValue ?? ""
        let escaped = offset.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? offset
        #expect(first.json?["next"]?.stringValue == "/tags?offset=\(escaped)&size=2", "the offset percent-encoded, as for entity lists")
        // Kong's tags offset: [entity_id, the tag's position in the entity's tags], unpadded base64.
        let shown = first.json?["data"]?.arrayValue ?? []
        let lastShown = try #require(shown.last)
        let position = (lastShown["entity_id"] == shown.first?["entity_id"] ? 2 : 1)
        #expect(Self.decodedOffset(offset) == .array([lastShown["entity_id"] ?? .null, .number(Double(position))]))
        #expect(shown.allSatisfy { $0["ordinality"] == nil }, "the position is not shown")
        let ids = (shown + (await call("GET", "/tags").json?["data"]?.arrayValue?.dropFirst(2) ?? [])).compactMap { $0["entity_id"]?.stringValue }
        #expect(ids == ids.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }, "ordered by entity id")
        let rest = await call("GET", "/tags", query: [("size", "2"), ("offset", offset)])
        #expect(rest.json?["data"]?.arrayValue?.count == 1)
        #expect(rest.json?["next"] == .null)
        let blue = await call("GET", "/tags/blue", query: [("size", "1")])
        #expect(blue.json?["next"]?.stringValue?.hasPrefix("/tags/blue?offset=") == true)
        let members = await call("GET", "/consumer_groups/gold/consumers")
        #expect(members.json?["consumer_group"]?["name"] == "gold")
        #expect(members.json?["consumers"]?.arrayValue?.first?["username"] == "alice")
        #expect(await call("GET", "/consumers/alice/consumer_groups").json?["consumer_groups"]?.arrayValue?.first?["name"] == "gold")
        #expect(await call("POST", "/consumer_groups/gold/consumers", body: "consumer=alice",
                           contentType: "application/x-www-form-urlencoded").json?["code"] == 12)
        #expect(await call("DELETE", "/consumer_groups/gold/consumers/nobody").status == 404)
        #expect(await call("GET", "/consumer_groups/none/consumers").status == 404)
    }

    /// `headers = off`: the Admin API adds neither `Server` nor `X-Kong-Admin-Latency`.
    @Test func headersSettingAppliesToTheAdminAPI() async {
        let plain = await call("GET", "/status")
        #expect(plain.headers.contains { $0.0 == "Server" } && plain.headers.contains { $0.0 == "X-Kong-Admin-Latency" })
        var settings = Settings()
        settings.proxy.responseHeaders = .none
        let quiet = AdminAPI(gateway: gateway, loader: loader, settings: settings, persistencePath: nil)
        let response = await quiet.respond(to: AdminRequest(method: "GET", path: "/status", query: [], headers: [:], body: []))
        #expect(response.status == 200)
        #expect(!response.headers.contains { $0.0 == "Server" || $0.0 == "X-Kong-Admin-Latency" })
    }

    @Test func adminTokenProtectsEveryRequest() async {
        var settings = Settings()
        settings.adminToken = "s3cret"
        let guarded = AdminAPI(gateway: gateway, loader: loader, settings: settings, persistencePath: nil)
        let denied = await guarded.respond(to: AdminRequest(method: "GET", path: "/services"))
        #expect(denied.status == 401)
        #expect(denied.json == ["message": "Invalid credentials. Token or User credentials required"])
        let wrong = await guarded.respond(to: AdminRequest(method: "GET", path: "/", headers: ["kong-admin-token": ["s3cre"]]))
        #expect(wrong.status == 401)
        let allowed = await guarded.respond(to: AdminRequest(method: "GET", path: "/", headers: ["kong-admin-token": ["s3cret"]]))
        #expect(allowed.status == 200)
        #expect(allowed.json?["configuration"]?["admin_token"] == "******", "the token is never shown")
    }

    @Test func postConfigWhileAnotherLoadRunsAnswers429() async {
        // Another load holds the reservation (as a concurrent POST would while it validates).
        api.stateBox.withLockedValue { $0.loading = true }
        let busy = await call("POST", "/config", body: "_format_version: \"3.0\"\n", contentType: "application/yaml")
        #expect(busy.status == 429)
        #expect(busy.json == ["message": "Currently loading previous configuration"])
        #expect(busy.headers.contains { $0.0 == "Retry-After" })
        #expect(await call("GET", "/services").json?["data"]?.arrayValue?.count == 1, "nothing was applied")
        api.stateBox.withLockedValue { $0.loading = false }
        #expect(await call("POST", "/config", body: "_format_version: \"3.0\"\n", contentType: "application/yaml").status == 201)
    }

    /// docs/admin-api.yaml is the contract: every served path and method appears in it, and it
    /// names nothing that is not served.
    @Test func openAPIDocumentMatchesTheServedRoutes() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/admin-api.yaml"), encoding: .utf8)
        let document = try DocumentReader.read(text, format: .yaml)
        let documented = try #require(document["paths"]?.objectValue)
        let served = try #require(await call("GET", "/endpoints").json?["data"]?.arrayValue?.compactMap(\.stringValue))
        #expect(Set(served) == Set(documented.keys), "paths served vs documented")
        for path in served {
            let methods = api.allowedMethods(AdminAPI.segments(path)).map { $0.lowercased() }
            let operations = Set(documented[path]?.objectValue?.keys.filter { $0 != "parameters" } ?? [])
            #expect(Set(methods) == operations, "methods of \(path)")
        }
    }

    /// Found by the schemathesis run: a multipart part with an empty value crashed the decoder.
    @Test func multipartBodiesWithEmptyValues() async {
        let boundary = "XyZ"
        let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"host\"\r\n\r\nexample.com\r\n--\(boundary)--\r\n"
        let response = await call("POST", "/services", body: body, contentType: "multipart/form-data; boundary=\(boundary)")
        #expect(response.status == 405, "valid (empty name is null), then refused in DB-less mode: \(String(decoding: response.body, as: UTF8.self))")
        let form = await call("POST", "/routes", body: "paths[]=/a&paths[]=/b&service.id=not-a-uuid",
                              contentType: "application/x-www-form-urlencoded")
        #expect(form.json?["fields"]?["service"]?["id"] == "expected a valid UUID")
    }

    /// Found in review: inputs that could crash or exhaust the process.
    @Test func hostileInputsAreRefusedCalmly() async {
        let huge = Data("9223372036854775807".utf8).base64EncodedString()
        #expect(await call("GET", "/routes", query: [("offset", huge)]).json?["code"] == 7)
        let index = await call("POST", "/routes", body: "paths[999999999999]=/a&hosts[]=x.test",
                               contentType: "application/x-www-form-urlencoded")
        #expect(index.status == 405, "an absurd array position is ignored, the rest validates")
        let deep = String(repeating: "a.", count: 5000) + "b=1"
        let overDeep = await call("POST", "/services", body: deep + "&host=h", contentType: "application/x-www-form-urlencoded")
        #expect(overDeep.status == 405,
                "the over-deep key is ignored, the rest validates, then DB-less refuses the write: \(String(decoding: overDeep.body, as: UTF8.self))")
        #expect(overDeep.json?["fields"]?["a"] == nil, "over-deep keys are ignored")
        #expect(await call("POST", "/schemas/services/other", body: "{}", contentType: "application/json").status == 404)
    }
}
