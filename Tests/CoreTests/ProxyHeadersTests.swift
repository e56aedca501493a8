import NIOHTTP1
import Testing
@testable import Core

/// Headers sent upstream (spec §8.1) that depend on node settings.
struct ProxyHeadersTests {
    static let snapshot: ConfigSnapshot = {
        let config = try! DeclarativeLoader(registry: EntityRegistry(plugins: [])).load(text: """
        _format_version: "3.0"
        services:
        - {name: echo, url: "http://upstream.test:9000", routes: [{name: api, paths: ["/api"]}]}
        """, format: .yaml)
        return ConfigSnapshot(config)
    }()

    func upstreamHeaders(_ headers: [(String, String)], options: ProxyOptions, localPort: Int,
                         target: UpstreamTargetOverride? = nil, snapshot: ConfigSnapshot = snapshot) throws -> HTTPHeaders {
        let context = ProxyRequestContext(requestID: "r-1", method: .GET, rawPath: "/api/x", rawQuery: nil,
                                          headers: HTTPHeaders(headers), clientAddress: "10.0.0.9", isTLS: false)
        context.upstreamTarget = target
        let match = try #require(Router(snapshot: snapshot).match(
            RouterRequest(method: "GET", host: "gw.test", rawPath: "/api/x", headers: [:], localPort: localPort)))
        return ProxyHeaders.upstreamRequestHeaders(context, match: match, service: try #require(match.service),
                                                   options: options, httpVersion: .http1_1, localPort: localPort)
    }

    /// `port_maps = 80:8000`: a client that reached port 8000 is told port 80, the published one.
    @Test func portMapsNameThePublishedPort() throws {
        var options = ProxyOptions()
        options.portMaps = [8000: 80]
        #expect(try upstreamHeaders([("Host", "gw.test")], options: options, localPort: 8000)["X-Forwarded-Port"] == ["80"])
        #expect(try upstreamHeaders([("Host", "gw.test")], options: options, localPort: 8443)["X-Forwarded-Port"] == ["8443"],
                "an unmapped port stays")
    }

    /// A plugin's upstream target (ai-proxy's `upstream_url`) names the one Host header sent, with
    /// its port unless it is the scheme's default; a route with `preserve_host` keeps the client's.
    @Test func aPluginsUpstreamTargetNamesTheHost() throws {
        let target = UpstreamTargetOverride(tls: false, host: "llm.test", port: 8080, path: "/v1/chat/completions")
        let sent = try upstreamHeaders([("Host", "gw.test")], options: ProxyOptions(), localPort: 8000, target: target)
        #expect(sent["Host"] == ["llm.test:8080"])
        #expect(sent["X-Forwarded-Host"] == ["gw.test"], "the client's host is still forwarded")
        let tls = UpstreamTargetOverride(tls: true, host: "llm.test", port: 443, path: "/")
        #expect(try upstreamHeaders([("Host", "gw.test")], options: ProxyOptions(), localPort: 8000, target: tls)["Host"] == ["llm.test"])
        let preserving = ConfigSnapshot(try DeclarativeLoader(registry: EntityRegistry(plugins: [])).load(text: """
        _format_version: "3.0"
        services:
        - {name: echo, url: "http://upstream.test:9000", routes: [{name: api, paths: ["/api"], preserve_host: true}]}
        """, format: .yaml))
        #expect(try upstreamHeaders([("Host", "gw.test")], options: ProxyOptions(), localPort: 8000, target: target,
                                    snapshot: preserving)["Host"] == ["gw.test"])
    }

    /// Only a WebSocket upgrade goes upstream (any case, repeated lines joined as nginx does).
    @Test(arguments: [
        ([("Upgrade", "WebSocket")], true),
        ([("Upgrade", "websocket"), ("Upgrade", "websocket")], false),
        ([("Upgrade", "h2c")], false),
        ([], false),
    ] as [([(String, String)], Bool)])
    func onlyWebSocketUpgradesGoUpstream(_ client: [(String, String)], _ passed: Bool) throws {
        let sent = try upstreamHeaders([("Host", "gw.test"), ("Connection", "Upgrade")] + client,
                                       options: ProxyOptions(), localPort: 8000)
        #expect(sent["Upgrade"] == (passed ? ["websocket"] : []))
        #expect(sent["Connection"] == [passed ? "keep-alive, Upgrade" : "keep-alive"])
    }

    /// `set` leaves a header that is there once with the value as it is, and otherwise ends with
    /// exactly one header of that value; `removeIfPresent` is `remove` when the name is there.
    @Test func settingAndRemovingHeadersOnlyWhenNeeded() {
        var once = HTTPHeaders([("Accept", "*/*"), ("content-type", "application/json"), ("X-A", "1")])
        once.set(name: "Content-Type", value: "application/json")
        #expect(once.map { "\($0.name): \($0.value)" } == ["Accept: */*", "content-type: application/json", "X-A: 1"], "kept in place")
        for start: [(String, String)] in [[("Content-Type", "text/plain")], [], [("content-type", "application/json"), ("Content-Type", "application/json")],
                                          [("Content-Type", "application/JSON")]] {
            var headers = HTTPHeaders(start + [("X-A", "1")])
            headers.set(name: "Content-Type", value: "application/json")
            #expect(headers["content-type"] == ["application/json"], "\(start)")
            #expect(headers["x-a"] == ["1"])
        }
        var present = HTTPHeaders([("Content-Encoding", "gzip"), ("X-A", "1")])
        present.removeIfPresent(name: "content-encoding")
        var absent = HTTPHeaders([("X-A", "1")])
        absent.removeIfPresent(name: "Content-Encoding")
        #expect(present["content-encoding"].isEmpty && present["x-a"] == ["1"] && absent.count == 1)
    }

    /// Header names compare ASCII case-insensitively against a lower-case name, byte for byte.
    @Test func headerNamesCompareIgnoringASCIICase() {
        let cases: [(String, String, Bool)] = [
            ("Content-Type", "content-type", true), ("CONTENT-TYPE", "content-type", true), ("content-type", "content-type", true),
            ("Content-Typf", "content-type", false), ("Content-Type ", "content-type", false), ("content-type", "Content-Type", false),
            ("X-élan", "x-élan", true), ("X-Élan", "x-élan", false), ("", "", true), ("A-Header-Name-Longer-Than-Fifteen", "a-header-name-longer-than-fifteen", true),
            ("[", "{", false), ("@", "`", false),
        ]
        for (name, lowercased, equal) in cases {
            #expect(ProxyHeaders.equalsIgnoringCase(name, lowercased) == equal, "\(name) ~ \(lowercased)")
            let bridged = String(decoding: Array(name.utf8), as: UTF8.self)
            #expect(ProxyHeaders.equalsIgnoringCase(bridged + "", lowercased) == equal)
        }
    }
}

/// RFC 9110's IMF-fixdate, as nginx writes `Date`.
@Test func httpDatesAreIMFFixdates() {
    #expect(HTTPDate.format(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT")
    #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
    let now = HTTPDate().now
    #expect(now.count == 29 && now.hasSuffix(" GMT"), "\(now)")
}

/// An upstream's answer loses what Kong 3.10 and nginx drop: `Proxy-Authenticate` passes, and
/// `Trailer` stays only for a client that asked for trailers.
@Test(arguments: [false, true])
func answerHopByHopHeadersAreKongs(clientAcceptsTrailers: Bool) {
    let upstream = HTTPHeaders([("Proxy-Authenticate", "Basic"), ("Trailer", "X-Checksum"), ("Keep-Alive", "timeout=5"),
                                ("Connection", "X-Private"), ("X-Private", "secret"), ("X-Kept", "1")])
    let sent = ProxyHeaders.downstreamHeaders(upstream, requestID: "r", status: 200, headerSet: .none, upstreamLatency: 0,
                                              proxyLatency: 0, keepContentLength: true,
                                              clientAcceptsTrailers: clientAcceptsTrailers)
    #expect(sent["Proxy-Authenticate"] == ["Basic"])
    #expect(sent["Trailer"] == (clientAcceptsTrailers ? ["X-Checksum"] : []))
    #expect(sent["Keep-Alive"].isEmpty && sent["Connection"].isEmpty && sent["X-Private"].isEmpty)
    #expect(sent["X-Kept"] == ["1"])
}
