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
        let entry = AccessLogEntry(remoteAddress: "10.0.0.7", method: .DELETE, target: "/a b\\c", version: .http1_1,
                                   status: 204, bodyBytesSent: 1_234_567_890, headers: headers, requestID: "abc")
        var out: [UInt8] = []
        entry.write(to: &out, timeLocal: Array("01/Jan/2026:00:00:00 +0000".utf8))
        #expect(String(decoding: out, as: UTF8.self)
            == #"10.0.0.7 - - [01/Jan/2026:00:00:00 +0000] "DELETE /a b\x5Cc HTTP/1.1" 204 1234567890 "-" "-" kong_request_id: "abc""# + "\n")
    }

    @Test func valuesAreEscapedAsNginxEscapesThem() {
        var out: [UInt8] = []
        AccessLogEntry.escaped("a\u{7F}\t\"\\é~ b", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #"a\x7F\x09\x22\x5C\xC3\xA9~ b"#)
    }

    @Test func theRemoteUserIsTheBasicUserName() {
        func user(_ value: String) -> String? {
            var headers = HTTPHeaders()
            headers.add(name: "Authorization", value: value)
            return AccessLogEntry.remoteUser(headers)
        }
        #expect(user("Basic " + Data("ann:pw:with:colons".utf8).base64EncodedString()) == "ann")
        #expect(user("basic " + Data("bob".utf8).base64EncodedString()) == "bob")
        #expect(user("Bearer " + Data("ann:pw".utf8).base64EncodedString()) == nil)
        #expect(user("Basic") == nil)
    }
}
