#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1
import Synchronization

/// The proxy's access log, as Kong configures nginx's (`proxy_access_log`, default
/// `logs/access.log` under the prefix; `off` turns it off): one line per request in Kong's
/// `kong_log_format`, appended to a file or a stream (`/dev/stdout` in containers).
///
/// nginx writes these lines from the worker that served the request; here each event loop
/// gathers its lines (`AccessLogBatch`) and writes them at the end of its turn (`LogLineWriter`:
/// one `write(2)` to a regular file, a line per write to a pipe).
public final class AccessLog: Sendable {
    public let path: String
    private let descriptor: Int32
    private let writesWholeBatches: Bool
    /// When a failed write was last reported (seconds since the epoch).
    private let lastFailureReport = Atomic<Int>(-60)

    /// Opens (creating) the file for appending; an error says why, as nginx's `open() failed`.
    public init(path: String) throws(AccessLogError) {
        self.path = path
        let opened = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard opened >= 0 else {
            throw AccessLogError("could not open the access log \(path): \(String(cString: strerror(errno)))")
        }
        descriptor = opened
        writesWholeBatches = LogLineWriter.takesWholeBatches(opened)
    }

    deinit { close(descriptor) }

    /// Writes whole lines (`bytes` ends with a line's end). A failed write is reported and its
    /// lines dropped: a full disk must not stop the proxy, as it does not stop nginx.
    /// Reported at most once a minute, as nginx reports a log it cannot write: a closed
    /// `/dev/stdout` fails every line.
    func write(lines bytes: UnsafeRawBufferPointer) {
        LogLineWriter.write(lines: bytes, to: descriptor, wholeBatches: writesWholeBatches) { error in
            let now = Int(time(nil))
            let last = lastFailureReport.load(ordering: .relaxed)
            guard now - last >= 60, lastFailureReport.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
            else { return }
            ErrorLog.report("[access log] write to \(path) failed: \(String(cString: strerror(error)))")
        }
    }
}

extension AccessLog {
    /// nginx's default `combined` format, which Kong's Admin API and status servers log in
    /// (`admin_access_log`, `status_access_log`): `kong_log_format` without the request ID. One
    /// write per line, from any thread: these servers answer a few requests, not a stream.
    public func writeCombinedLine(remoteAddress: String, method: String, target: String, status: Int,
                                  bodyBytesSent: Int, referer: String?, userAgent: String?, authorization: String?) {
        var headers = HTTPHeaders()
        if let referer { headers.add(name: "Referer", value: referer) }
        if let userAgent { headers.add(name: "User-Agent", value: userAgent) }
        if let authorization { headers.add(name: "Authorization", value: authorization) }
        let entry = AccessLogEntry(remoteAddress: remoteAddress, method: HTTPMethod(rawValue: method), target: target,
                                   version: .http1_1, status: status, bodyBytesSent: bodyBytesSent, headers: headers,
                                   requestID: nil)
        var line: [UInt8] = []
        entry.write(to: &line, timeLocal: AccessLogClock.format(time(nil)))
        line.withUnsafeBytes { write(lines: $0) }
    }
}

public struct AccessLogError: Error, Sendable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One event loop's access log lines not written yet: written together once the loop's current
/// turn ends. Used on that loop only.
final class AccessLogBatch {
    private let log: AccessLog
    private let eventLoop: any EventLoop
    private var lines: [UInt8] = []
    private var scheduled = false
    private let clock = AccessLogClock()
    /// What a burst may hold before it is written at once.
    static let heldLimit = 64 * 1024

    init(log: AccessLog, eventLoop: any EventLoop) {
        self.log = log
        self.eventLoop = eventLoop
        lines.reserveCapacity(4096)
    }

    func append(_ entry: AccessLogEntry) {
        assert(eventLoop.inEventLoop, "a loop's access log batch is used on that loop only")
        entry.write(to: &lines, timeLocal: clock.now)
        if lines.count >= Self.heldLimit { return writeLines() }
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { self.writeLines() }
    }

    /// Writes what is held now (at shutdown, after the loop's queued writes).
    func writeNow() { writeLines() }

    private func writeLines() {
        scheduled = false
        guard !lines.isEmpty else { return }
        lines.withUnsafeBytes { log.write(lines: $0) }
        if lines.capacity > 4 * Self.heldLimit { lines = [] } else { lines.removeAll(keepingCapacity: true) }
    }
}

/// What `kong_log_format` prints of one request:
///
///     $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
///     "$http_referer" "$http_user_agent" kong_request_id: "$kong_request_id"
///
/// (one line). Values are escaped as nginx's `escape=default` does: `"`, `\`, control bytes and
/// bytes from 0x7F as `\xHH`; a missing value is `-`, an empty one stays empty.
struct AccessLogEntry {
    /// `$remote_addr`: the client, or the address a trusted proxy named (`real_ip_header`).
    var remoteAddress: String
    var method: HTTPMethod
    var target: String
    var version: HTTPVersion
    /// The target's bytes as received, when `target` does not show them (see `HTTP1Parser`).
    var receivedTarget: [UInt8]? = nil
    /// `$request` of a head that was never parsed (refused, cut off, timed out): the bytes of
    /// its first line as read, in place of method, target and version.
    var unparsedRequestLine: [UInt8]? = nil
    var status: Int
    var bodyBytesSent: Int
    var headers: HTTPHeaders
    /// `$kong_request_id`; nil for nginx's `combined` format, which ends before it.
    var requestID: String?

    func write(to out: inout [UInt8], timeLocal: [UInt8]) {
        Self.escaped(remoteAddress, to: &out)
        out.append(contentsOf: " - ".utf8)
        if let user = Self.remoteUser(headers) { Self.escaped(bytes: user, to: &out) } else { out.append(UInt8(ascii: "-")) }
        out.append(contentsOf: " [".utf8)
        out.append(contentsOf: timeLocal)
        out.append(contentsOf: "] \"".utf8)
        if let unparsedRequestLine {
            Self.escaped(bytes: unparsedRequestLine, to: &out)
        } else {
            Self.escaped(method.rawValue, to: &out)
            out.append(UInt8(ascii: " "))
            if let receivedTarget { Self.escaped(bytes: receivedTarget, to: &out) } else { Self.escaped(target, to: &out) }
            out.append(contentsOf: " HTTP/".utf8)
            Self.decimal(version.major, to: &out)
            out.append(UInt8(ascii: "."))
            Self.decimal(version.minor, to: &out)
        }
        out.append(contentsOf: "\" ".utf8)
        Self.decimal(status, to: &out)
        out.append(UInt8(ascii: " "))
        Self.decimal(bodyBytesSent, to: &out)
        out.append(contentsOf: " \"".utf8)
        Self.escaped(headers.first(name: "referer"), to: &out)
        out.append(contentsOf: "\" \"".utf8)
        Self.escaped(headers.first(name: "user-agent"), to: &out)
        if let requestID {
            out.append(contentsOf: "\" kong_request_id: \"".utf8)
            Self.escaped(requestID, to: &out)
        }
        out.append(contentsOf: "\"\n".utf8)
    }

    /// `$remote_user`: the user name of a `Basic` `Authorization` header, read as nginx's
    /// `ngx_http_auth_basic_user` reads it (whether or not anything checks the password): nil
    /// unless the value is `Basic ` (any case), spaces, base64 (padding optional) of `user:…`
    /// with a user that is not empty.
    static func remoteUser(_ headers: HTTPHeaders) -> [UInt8]? {
        guard let value = headers.first(name: "authorization") else { return nil }
        var encoded = Substring(value).utf8[...]
        guard encoded.count >= 6, encoded.prefix(5).map({ $0 | 0x20 }).elementsEqual("basic".utf8),
              encoded.dropFirst(5).first == UInt8(ascii: " ") else { return nil }
        encoded = encoded.dropFirst(6).drop(while: { $0 == UInt8(ascii: " ") })
        guard !encoded.isEmpty, let decoded = NginxBase64.decode(encoded),
              let colon = decoded.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
        return Array(decoded[..<colon])
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    static func escaped(_ value: String?, to out: inout [UInt8]) {
        guard let value else { return out.append(UInt8(ascii: "-")) }
        escaped(bytes: value.utf8, to: &out)
    }

    static func escaped<Bytes: Sequence>(bytes: Bytes, to out: inout [UInt8]) where Bytes.Element == UInt8 {
        for byte in bytes {
            if byte < 0x20 || byte >= 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                out.append(contentsOf: "\\x".utf8)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            } else {
                out.append(byte)
            }
        }
    }

    /// A count in decimal, its digits written backwards and then turned around in place.
    static func decimal(_ value: Int, to out: inout [UInt8]) {
        let start = out.count
        var rest = max(0, value)
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        out[start...].reverse()
    }
}

/// nginx's `ngx_decode_base64`: the standard alphabet up to the first `=` (what follows is not
/// read), no padding needed, any other byte or a length of 4n + 1 refused.
enum NginxBase64 {
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()

    static func decode<Bytes: Collection>(_ text: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        var sextets: [UInt8] = []
        sextets.reserveCapacity(text.count)
        for byte in text {
            if byte == UInt8(ascii: "=") { break }
            let value = values[Int(byte)]
            guard value != 0xFF else { return nil }
            sextets.append(value)
        }
        guard sextets.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(sextets.count * 3 / 4)
        var index = 0
        while index + 4 <= sextets.count {
            let (a, b, c, d) = (sextets[index], sextets[index + 1], sextets[index + 2], sextets[index + 3])
            out.append(a << 2 | b >> 4)
            out.append(b << 4 | c >> 2)
            out.append(c << 6 | d)
            index += 4
        }
        let rest = sextets.count - index
        if rest > 1 { out.append(sextets[index] << 2 | sextets[index + 1] >> 4) }
        if rest > 2 { out.append(sextets[index + 1] << 4 | sextets[index + 2] >> 2) }
        return out
    }
}

/// nginx's `$time_local`, `23/Nov/2026:11:39:35 +0000`: local time with its offset, formatted
/// at most once per second.
final class AccessLogClock {
    private var second = -1
    private(set) var text: [UInt8] = []

    var now: [UInt8] {
        let current = time(nil)
        if current != second {
            second = current
            text = Self.format(current)
        }
        return text
    }

    static func format(_ seconds: time_t) -> [UInt8] {
        var t = seconds
        var parts = tm()
        localtime_r(&t, &parts)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let offset = parts.tm_gmtoff / 60
        let sign = offset < 0 ? "-" : "+"
        let text = "\(two(Int(parts.tm_mday)))/\(months[Int(parts.tm_mon)])/\(parts.tm_year + 1900):"
            + "\(two(Int(parts.tm_hour))):\(two(Int(parts.tm_min))):\(two(Int(parts.tm_sec))) "
            + "\(sign)\(two(abs(offset) / 60))\(two(abs(offset) % 60))"
        return Array(text.utf8)
    }
}
