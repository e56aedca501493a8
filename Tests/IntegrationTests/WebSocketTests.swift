import Core
import Foundation
import NIOCore
import Testing

/// WebSocket upgrades (spec §8.1: `Connection: keep-alive, Upgrade` and `Upgrade: websocket`
/// upstream): the 101 reaches the client, then bytes pass both ways until either side closes.
@Suite(.serialized)
struct WebSocketTests {
    static func upgrade(_ path: String, extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + extra
    }

    /// A gateway whose one route, `/ws`, leads to a fresh WebSocket upstream.
    static func gatewayInFront(readTimeout: Int? = nil) async throws -> (WebSocketUpstream, ProxyHarness) {
        let ws = try await WebSocketUpstream.start()
        let timeout = readTimeout.map { ", read_timeout: \($0)" } ?? ""
        let h = try await ProxyHarness.start("""
        services:
        - {name: chat, url: "http://127.0.0.1:\(ws.port)"\(timeout), routes: [{name: ws, paths: ["/ws"]}]}
        """)
        return (ws, h)
    }

    /// Asks for the upgrade of `/ws` and reads the answer's head into `text`.
    static func switchProtocols(_ iterator: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
                                _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, into text: inout String) async throws {
        try await outbound.write(ByteBuffer(string: upgrade("/ws")))
        _ = try await read(&iterator, into: &text) { $0.contains("\r\n\r\n") }
    }

    /// Reads until `done(text)` holds or the connection ends; whether it ended.
    static func read(_ iterator: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, into text: inout String,
                     until done: (String) -> Bool) async throws -> Bool {
        while !done(text) {
            guard let chunk = try await iterator.next() else { return true }
            text += String(buffer: chunk)
        }
        return false
    }

    @Test func upgradesAreTunneledBothWaysAndLoggedAs101() async throws {
        let ws = try await WebSocketUpstream.start()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("ws-\(UUID().uuidString).log").path
        let h = try await ProxyHarness.start("""
        services:
        - name: chat
          url: http://127.0.0.1:\(ws.port)
          routes:
          - name: ws
            paths: ["/ws"]
            strip_path: false
            plugins:
            - {name: file-log, config: {path: "\(log)"}}
        """)
        defer { Task { await h.stop(); await ws.stop(); try? FileManager.default.removeItem(atPath: log) } }
        let (head, tunneled, ended) = try await h.rawConnection().executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var text = ""
            // Frames right behind the request (a client need not wait for the 101) go through too.
            try await outbound.write(ByteBuffer(string: Self.upgrade("/ws/chat", extra: "early")))
            _ = try await Self.read(&iterator, into: &text) { $0.contains("EARLY") }
            let head = text.components(separatedBy: "\r\n\r\n")[0]
            try await outbound.write(ByteBuffer(string: "hello"))
            _ = try await Self.read(&iterator, into: &text) { $0.contains("HELLO") }
            try await outbound.write(ByteBuffer(string: "bye"))
            let ended = try await Self.read(&iterator, into: &text) { _ in false }
            return (head, String(text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")), ended)
        }
        let lower = head.lowercased()
        #expect(head.hasPrefix("HTTP/1.1 101 Switching Protocols"), "\(head)")
        #expect(lower.contains("\r\nupgrade: websocket"), "\(head)")
        #expect(lower.contains("\r\nconnection: upgrade"), "\(head)")
        #expect(lower.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "\(head)")
        #expect(lower.contains("\r\nx-kong-request-id: "), "Kong's headers go with the 101: \(head)")
        #expect(lower.contains("\r\nvia: 1.1 kong/3.10.0"), "\(head)")
        #expect(!lower.contains("content-length") && !lower.contains("transfer-encoding"), "\(head)")
        #expect(tunneled == "EARLYHELLOBYE", "the upstream's bytes, unframed, in order")
        #expect(ended, "the upstream closing closes the client's connection")

        let sent = try #require(ws.requestHeads.first)
        #expect(sent.hasPrefix("GET /ws/chat HTTP/1.1"))
        #expect(sent.contains("\r\nConnection: keep-alive, Upgrade"), "\(sent)")
        #expect(sent.contains("\r\nUpgrade: websocket"), "\(sent)")
        #expect(sent.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="), "\(sent)")
        #expect(sent.contains("\r\nSec-WebSocket-Version: 13"), "\(sent)")

        let lines = try await AIProxyTests.logLines(log, atLeast: 1)
        let entry = try #require(lines.first.flatMap { try? JSONValue.parse($0) })
        #expect(entry["response"]?["status"] == 101)
        #expect(entry["request"]?["uri"] == "/ws/chat")
    }

    @Test func theClientClosingClosesTheUpstream() async throws {
        let (ws, h) = try await Self.gatewayInFront()
        defer { Task { await h.stop(); await ws.stop() } }
        let echoed = try await h.rawConnection().executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var text = ""
            try await Self.switchProtocols(&iterator, outbound, into: &text)
            try await outbound.write(ByteBuffer(string: "ping"))
            _ = try await Self.read(&iterator, into: &text) { $0.contains("PING") }
            return text.hasSuffix("PING")
        }
        #expect(echoed)
        let deadline = ContinuousClock.now + .seconds(10)
        while ws.closedConnections == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(ws.closedConnections == 1, "the gateway closed its upstream side")
    }

    /// nginx closes an upgraded connection idle (both ways) for the service's read_timeout.
    @Test func anIdleTunnelClosesAfterTheReadTimeout() async throws {
        let (ws, h) = try await Self.gatewayInFront(readTimeout: 1000)
        defer { Task { await h.stop(); await ws.stop() } }
        let (text, ended) = try await h.rawConnection().executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var text = ""
            try await Self.switchProtocols(&iterator, outbound, into: &text)
            try await outbound.write(ByteBuffer(string: "ping"))
            let ended = try await Self.read(&iterator, into: &text) { _ in false }
            return (text, ended)
        }
        #expect(text.hasPrefix("HTTP/1.1 101"), "\(text)")
        #expect(text.hasSuffix("PING"), "open and working until it sat idle: \(text)")
        #expect(ended)
    }

    /// A graceful shutdown waits for responses to end; a tunnel has no end to wait for, so it
    /// closes at once (its client reconnects elsewhere).
    @Test func drainingClosesAnOpenTunnel() async throws {
        let (ws, h) = try await Self.gatewayInFront(readTimeout: 60000)
        defer { Task { await h.stop(); await ws.stop() } }
        let (ended, waited) = try await h.rawConnection().executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var text = ""
            try await Self.switchProtocols(&iterator, outbound, into: &text)
            let start = ContinuousClock.now
            h.gateway.shutdown()
            return (try await Self.read(&iterator, into: &text) { _ in false }, ContinuousClock.now - start)
        }
        #expect(ended)
        // Not a timing check: without the drain the tunnel would stay open for the 60 s idle limit.
        #expect(waited < .seconds(30), "closed by the drain, not by the idle limit")
    }

    /// A drain that starts while the upgrade is on its way: the tunnel closes right after the 101.
    @Test func drainingBeforeTheSwitchClosesTheTunnelAfterThe101() async throws {
        let ws = try await WebSocketUpstream.start()
        let h = try await ProxyHarness.start("""
        services:
        - {name: chat, url: "http://127.0.0.1:\(ws.port)", read_timeout: 60000, routes: [{name: ws, paths: ["/slow"], strip_path: false}]}
        """)
        defer { Task { await h.stop(); await ws.stop() } }
        let (text, ended, waited) = try await h.rawConnection().executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var text = ""
            try await outbound.write(ByteBuffer(string: Self.upgrade("/slow")))
            // The upstream has the request and answers 300 ms after it arrived: drain meanwhile.
            let deadline = ContinuousClock.now + .seconds(10)
            while ws.requestHeads.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            let start = ContinuousClock.now
            h.gateway.shutdown()
            let ended = try await Self.read(&iterator, into: &text) { _ in false }
            return (text, ended, ContinuousClock.now - start)
        }
        #expect(text.hasPrefix("HTTP/1.1 101"), "the answer in flight still reaches the client: \(text)")
        #expect(ended)
        #expect(waited < .seconds(30), "closed by the drain, not by the idle limit")
    }

    /// Other upgrades are hop-by-hop and dropped, as Kong does; a 101 the gateway did not ask for
    /// is not followed.
    @Test func onlyWebSocketUpgradesArePassedOn() async throws {
        let ws = try await WebSocketUpstream.start()
        let h = try await ProxyHarness.start("""
        services:
        - {name: echo, url: UPSTREAM, routes: [{name: echo, paths: ["/echo"], strip_path: false}]}
        - {name: chat, url: "http://127.0.0.1:\(ws.port)", routes: [{name: ws, paths: ["/unasked"], strip_path: false}]}
        """)
        defer { Task { await h.stop(); await ws.stop() } }
        let h2c = try await h.send("/echo", headers: [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                                                     ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        #expect(h2c.status == 200)
        #expect(h2c.json?["headers"]?["upgrade"] == nil)
        #expect(h2c.json?["headers"]?["http2-settings"] == nil, "named in Connection: hop-by-hop")
        #expect(h2c.json?["headers"]?["connection"] == ["keep-alive"])
        let unasked = try await h.send("/unasked")
        #expect(unasked.status == 502)
        #expect(unasked.body.contains("An invalid response was received from the upstream server"), "\(unasked.body)")
    }
}
