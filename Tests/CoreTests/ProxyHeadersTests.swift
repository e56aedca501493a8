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

    func upstreamHeaders(_ headers: [(String, String)], options: ProxyOptions, localPort: Int) throws -> HTTPHeaders {
        let context = ProxyRequestContext(requestID: "r-1", method: .GET, rawPath: "/api/x", rawQuery: nil,
                                          headers: HTTPHeaders(headers), clientAddress: "10.0.0.9", isTLS: false)
        let match = try #require(Router(snapshot: Self.snapshot).match(
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
}
