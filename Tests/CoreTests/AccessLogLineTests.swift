import Foundation
import NIOHTTP1
import Testing
@testable import Core

/// The pieces of a `kong_log_format` line (the lines themselves are checked end to end in
/// `AccessLogTests`).
struct AccessLogLineTests {
    @Test func localTimeCarriesItsOffset() {
        let now = time(nil)
        var t = now
        var parts = tm()
        localtime_r(&t, &parts)
        let text = String(decoding: AccessLogClock.format(now), as: UTF8.self)
        let minutes = Int(parts.tm_gmtoff) / 60
        let offset = (minutes < 0 ? "-" : "+") + String(format: "%02d%02d", abs(minutes) / 60, abs(minutes) % 60)
        #expect(text.hasSuffix(" " + offset), "\(text)")
        #expect(text.hasPrefix(String(format: "%02d/", Int(parts.tm_mday))), "\(text)")
        #expect(text.contains(String(format: ":%02d:%02d:%02d ", Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))), "\(text)")
    }

    @Test func aLineHasEveryFieldInItsPlace() {
        var headers = HTTPHeaders()
        headers.add(name: "User-Agent", value: "")
        headers.add(name: "Authorization", value: "Basic !!not-base64")
        headers.add(name: "Referer", value: "ref")
        let entry = AccessLogEntry(remoteAddress: "10.0.0.7", method: .DELETE, target: "/a b\\c", version: .http1_1,
                                   status: 204, bodyBytesSent: 1_234_567_890, headers: headers, requestID: "abc")
        var out: [UInt8] = []
        entry.write(to: &out, timeLocal: Array("01/Jan/2026:00:00:00 +0000".utf8))
        #expect(String(decoding: out, as: UTF8.self)
            == #"10.0.0.7 - - [01/Jan/2026:00:00:00 +0000] "DELETE /a b\x5Cc HTTP/1.1" 204 1234567890 "ref" "" kong_request_id: "abc""# + "\n", "an empty User-Agent is empty, a missing one is -")
    }

    /// `$request` is the request line as received: a target's own bytes when the head's target
    /// does not show them, and the first line as read for a head never parsed.
    @Test func theRequestIsLoggedAsReceived() {
        func request(_ entry: AccessLogEntry) -> String {
            var out: [UInt8] = []
            entry.write(to: &out, timeLocal: Array("01/Jan/2026:00:00:00 +0000".utf8))
            return String(decoding: out, as: UTF8.self).components(separatedBy: "\"")[1]
        }
        let received = AccessLogEntry(remoteAddress: "::1", method: .GET, target: "/caf\u{FFFD}", version: .http1_0,
                                      receivedTarget: Array("/caf".utf8) + [0xE9], status: 200, bodyBytesSent: 0,
                                      headers: HTTPHeaders(), requestID: "abc")
        #expect(request(received) == #"GET /caf\xE9 HTTP/1.0"#, "the byte received, not U+FFFD's")
        let unparsed = AccessLogEntry(remoteAddress: "::1", method: .GET, target: "", version: .http1_1,
                                      unparsedRequestLine: [0x16, 0x03, 0x01, UInt8(ascii: "x")], status: 400,
                                      bodyBytesSent: 0, headers: HTTPHeaders(), requestID: "abc")
        #expect(request(unparsed) == #"\x16\x03\x01x"#, "a TLS hello to a plain port, as nginx logs it")
    }

    @Test func valuesAreEscapedAsNginxEscapesThem() {
        var out: [UInt8] = []
        AccessLogEntry.escaped("a\u{7F}\t\"\\é~ b", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #"a\x7F\x09\x22\x5C\xC3\xA9~ b"#)
    }

    /// nginx's `ngx_http_auth_basic_user`: `Basic ` in any case, spaces, base64 with optional
    /// padding (nothing after `=` is read), `user:` with a user that is not empty; the bytes as
    /// they are.
    @Test func theRemoteUserIsReadAsNginxReadsIt() {
        func user(_ value: String) -> [UInt8]? {
            var headers = HTTPHeaders()
            headers.add(name: "Authorization", value: value)
            return AccessLogEntry.remoteUser(headers)
        }
        func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
        #expect(user("Basic " + b64(Array("ann:pw:with:colons".utf8))) == Array("ann".utf8))
        #expect(user("bASIC    " + b64(Array("ann:".utf8))) == Array("ann".utf8), "an empty password is still a user")
        #expect(user("Basic YW5uOnB3") == Array("ann".utf8), "ann:pw without padding")
        #expect(user("Basic YW5uOnB3==garbage") == Array("ann".utf8), "nothing after = is read")
        #expect(user("Basic " + b64([0xFF, 0x41, 0x3A, 0x78])) == [0xFF, 0x41], "bytes, not text")
        #expect(user("Basic " + b64(Array("bob".utf8))) == nil, "no colon")
        #expect(user("Basic " + b64(Array(":pw".utf8))) == nil, "an empty user")
        #expect(user("Basic YW5uOnB3 ") == nil, "a trailing space is not base64")
        #expect(user("Basic YW5uO") == nil, "4n + 1 characters")
        #expect(user("Bearer " + b64(Array("ann:pw".utf8))) == nil)
        #expect(user("Basic") == nil)
        #expect(user("Basic\u{0}YW5uOnB3") == nil, "the space after Basic is a space")
        #expect(user("Basic   ") == nil)
    }
}
