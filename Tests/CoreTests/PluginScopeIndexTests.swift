import Testing
@testable import Core

/// Scope precedence of spec §7.3 (Kong EE's 12 levels).
struct PluginScopeIndexTests {
    let route = "r", service = "s", consumer = "c", gold = "g-gold", silver = "g-silver"

    func instance(_ id: String, route: String? = nil, service: String? = nil, consumer: String? = nil,
                  group: String? = nil, enabled: Bool = true, protocols: [String] = ["http", "https"]) -> PluginInstance {
        var row: [String: JSONValue] = ["id": .string(id), "name": "p", "enabled": .bool(enabled),
                                        "protocols": .array(protocols.map(JSONValue.string)), "config": [:]]
        if let route { row["route"] = ["id": .string(route)] }
        if let service { row["service"] = ["id": .string(service)] }
        if let consumer { row["consumer"] = ["id": .string(consumer)] }
        if let group { row["consumer_group"] = ["id": .string(group)] }
        return PluginInstance(.object(row))!
    }

    /// Every level present; removing the winner each time must reveal the next level down.
    @Test func twelveLevelsInOrder() {
        var all = [
            instance("1-consumer-route-service", route: route, service: service, consumer: consumer),
            instance("2-group-route-service", route: route, service: service, group: gold),
            instance("3-consumer-route", route: route, consumer: consumer),
            instance("4-consumer-service", service: service, consumer: consumer),
            instance("5-group-route", route: route, group: gold),
            instance("6-group-service", service: service, group: gold),
            instance("7-route-service", route: route, service: service),
            instance("8-consumer", consumer: consumer),
            instance("9-group", group: gold),
            instance("10-route", route: route),
            instance("11-service", service: service),
            instance("12-global"),
        ]
        while !all.isEmpty {
            let index = PluginScopeIndex(plugins: all)
            let winner = index.resolve("p", routeID: route, serviceID: service, consumerID: consumer, consumerGroups: [gold])
            #expect(winner?.id == all[0].id)
            all.removeFirst()
        }
    }

    @Test func withoutConsumerOnlyNonConsumerScopesApply() {
        let index = PluginScopeIndex(plugins: [instance("consumer", consumer: consumer), instance("group", group: gold),
                                               instance("route", route: route)])
        #expect(index.resolve("p", routeID: route, serviceID: service, consumerID: nil, consumerGroups: [])?.id == "route")
    }

    @Test func firstGroupInGivenOrderWins() {
        let index = PluginScopeIndex(plugins: [instance("silver", group: silver), instance("gold", group: gold)])
        #expect(index.resolve("p", routeID: nil, serviceID: nil, consumerID: consumer, consumerGroups: [gold, silver])?.id == "gold")
    }

    @Test func disabledAndNonHTTPInstancesAreIgnored() {
        let index = PluginScopeIndex(plugins: [instance("route-off", route: route, enabled: false),
                                               instance("tcp-only", service: service, protocols: ["tcp"]),
                                               instance("global")])
        #expect(index.resolve("p", routeID: route, serviceID: service, consumerID: nil, consumerGroups: [])?.id == "global")
        #expect(index.resolve("other", routeID: route, serviceID: service, consumerID: nil, consumerGroups: []) == nil)
    }
}

struct KongErrorResponseTests {
    @Test func formatsByAccept() {
        #expect(KongErrorResponse.format(accept: nil) == .json)
        #expect(KongErrorResponse.format(accept: "text/html") == .html)
        #expect(KongErrorResponse.format(accept: "text/plain;q=0.5, application/xml") == .xml)
        #expect(KongErrorResponse.format(accept: "*/*") == .json)
        #expect(KongErrorResponse.format(accept: nil, contentType: "text/plain", nginxLevel: true) == .plain)
        #expect(KongErrorResponse.format(accept: nil, nginxLevel: true) == .plain)
    }

    /// Kong's `get_response_type`: q=0 never wins, ties go to the first, a `q` outside 0–1 with
    /// at most three decimals is a plain parameter (q stays 1), a value that is no media range is
    /// skipped; with an `Accept` present, nothing qualifying means JSON, even for NGINX-level errors.
    @Test func acceptFollowsKongsQualityRules() {
        #expect(KongErrorResponse.format(accept: "text/html;q=0") == .json, "q=0: not acceptable")
        #expect(KongErrorResponse.format(accept: "text/html;q=0, text/plain;q=0.001") == .plain)
        #expect(KongErrorResponse.format(accept: "text/plain;q=0.5, text/html;q=0.5") == .plain, "ties: the first")
        #expect(KongErrorResponse.format(accept: "text/html;q=0.9, application/xml;q=2") == .xml, "q=2 reads as q=1")
        #expect(KongErrorResponse.format(accept: "application/xml;q=0.5, text/html;q=0.9999") == .html, "four decimals: q=1")
        #expect(KongErrorResponse.format(accept: "html, text/plain;q=0.1") == .plain, "not a media range: skipped")
        #expect(KongErrorResponse.format(accept: "Text/HTML; Q=1.000") == .html)
        #expect(KongErrorResponse.format(accept: "text/html;q=0", contentType: "text/plain", nginxLevel: true) == .json)
        #expect(KongErrorResponse.format(accept: nil, contentType: "application/xml; charset=utf-8", nginxLevel: true) == .xml)
    }

    @Test func templates() {
        let json = KongErrorResponse(status: 404, message: ProxyErrorText.noRoute, requestID: "abc", format: .json)
        #expect(json.body == "{\n  \"message\":\"no Route matched with those values\",\n  \"request_id\":\"abc\"\n}")
        #expect(json.contentType == "application/json; charset=utf-8")
        let plain = KongErrorResponse(status: 503, message: nil, requestID: "abc", format: .plain)
        #expect(plain.body == "The upstream server is currently unavailable\nrequest_id: abc\n")
        let xml = KongErrorResponse(status: 401, requestID: "id", format: .xml)
        #expect(xml.body.contains("<message>Unauthorized</message>\n  <requestid>id</requestid>"))
        let html = KongErrorResponse(status: 494, requestID: "id", format: .html)
        #expect(html.status == 400)
        #expect(html.body.contains("<p>request_id: id</p>"))
    }
}

/// The handlers resolved once per route for requests without a consumer are the ones the scope
/// walk resolves per request, for every route, plugin and scope; with a consumer the walk runs.
struct HandlersWithoutConsumerTests {
    struct Tagged: PluginHandler, WithoutRequestPhases {
        let tag: String
    }

    static let names = ["p-high": 20, "p-mid": 15, "p-low": 10]

    @Test func theResolvedHandlersAreTheScopeWalksOnes() throws {
        let definitions = Self.names.map { name, priority in
            PluginDefinition(name: name, priority: priority, version: "test", config: RecordSchema(["tag": Field.string.required()]))
        }
        let factories = Self.names.map { name, priority in
            PluginFactory(name: name, priority: priority) { instance, _ in Tagged(tag: instance.config["tag"]?.stringValue ?? "") }
        }
        let config = try DeclarativeLoader(registry: EntityRegistry(plugins: definitions)).load(text: """
        _format_version: "3.0"
        services:
        - name: a
          url: http://a.test
          plugins: [{name: p-mid, config: {tag: service-a}}]
          routes:
          - name: a1
            paths: ["/a1"]
            plugins: [{name: p-high, config: {tag: route-a1}}, {name: p-mid, config: {tag: route-a1}}]
          - {name: a2, paths: ["/a2"]}
        - name: b
          url: http://b.test
          routes:
          - {name: b1, paths: ["/b1"]}
        routes:
        - name: alone
          paths: ["/alone"]
          plugins: [{name: p-low, config: {tag: route-alone}}]
        consumers:
        - username: vip
          plugins: [{name: p-high, config: {tag: consumer}}, {name: p-low, config: {tag: consumer}}]
        plugins:
        - {name: p-low, config: {tag: global}}
        - {name: p-high, config: {tag: global}, enabled: false}
        """, format: .yaml)
        let configuration = try GatewayConfiguration(config, factories: factories)
        let vip = try #require(configuration.snapshot.consumers.first?.id)
        func tag(_ handler: (any PluginHandler)?) -> String? { (handler as? Tagged)?.tag }
        var seen: [String: [String?]] = [:]
        for path in ["/a1", "/a2", "/b1", "/alone"] {
            let match = try #require(configuration.router.match(RouterRequest(method: "GET", host: "t", rawPath: Substring(path),
                                                                              headers: [:], localPort: 8000)))
            #expect(configuration.handlersWithoutConsumer[ObjectIdentifier(match.route)] != nil, "\(path) is resolved once")
            for (position, name) in configuration.pluginOrder.enumerated() {
                #expect(tag(configuration.handler(at: position, match: match, consumerID: nil))
                        == tag(configuration.handler(name, match: match, consumerID: nil)), "\(path) \(name)")
                #expect(tag(configuration.handler(at: position, match: match, consumerID: vip))
                        == tag(configuration.handler(name, match: match, consumerID: vip)), "\(path) \(name) vip")
            }
            seen[path] = configuration.pluginOrder.indices.map { tag(configuration.handler(at: $0, match: match, consumerID: nil)) }
        }
        #expect(configuration.pluginOrder == ["p-high", "p-mid", "p-low"])
        #expect(seen["/a1"] == ["route-a1", "route-a1", "global"])
        #expect(seen["/a2"] == [nil, "service-a", "global"], "the disabled global p-high applies nowhere")
        #expect(seen["/b1"] == [nil, nil, "global"])
        #expect(seen["/alone"] == [nil, nil, "route-alone"])
    }
}
