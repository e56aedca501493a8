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
