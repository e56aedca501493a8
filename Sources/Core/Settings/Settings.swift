import NIOCore
import Foundation

/// Node settings, read as Kong reads them: defaults, then a kong.conf-style file (`-c`), then
/// `KONG_<NAME>` environment variables, which win.
public struct Settings: Sendable, Equatable {
    public enum Database: String, Sendable, CaseIterable { case off, sqlite, postgres }

    public var database: Database = .off
    public var declarativeConfig: String?
    /// The configuration itself (Kong's `declarative_config_string`, set as
    /// `KONG_DECLARATIVE_CONFIG_STRING` in containers); a `declarative_config` file wins over it.
    public var declarativeConfigString: String?
    public var proxyListen: [ListenAddress] = [ListenAddress(host: "0.0.0.0", port: 8000)]
    public var adminListen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 8001)]
    /// Kong's `status_listen` (default off): `/status` and `/status/ready` only, for probes.
    public var statusListen: [ListenAddress] = []
    /// What the settings were read with that this node does not use: said at start, not fatal
    /// (Kong drops unknown properties without a word).
    public var warnings: [String] = []
    public var prefix = "/usr/local/kong"
    /// Kong's `proxy_access_log`: the access log's path (relative paths are under `prefix`), nil
    /// when `off`.
    public var proxyAccessLog: String? = Settings.defaultProxyAccessLog
    public static let defaultProxyAccessLog = "logs/access.log"
    /// Kong's `admin_access_log` and `status_access_log` (nginx's `combined` lines).
    public var adminAccessLog: String? = Settings.defaultAdminAccessLog
    public static let defaultAdminAccessLog = "logs/admin_access.log"
    public var statusAccessLog: String?
    public var logLevel = "notice"
    /// Kong's `plugins` property: `bundled`, `off`, or plugin names.
    public var plugins = ["bundled"]
    /// When set, every Admin API request needs `Kong-Admin-Token: <token>`.
    public var adminToken: String?
    /// PEM certificate and key for `proxy_listen` entries with the `ssl` flag.
    public var sslCert: String?
    public var sslCertKey: String?
    /// `trusted_ips`, `headers`, `headers_upstream`, `allow_debug_header`, `port_maps`: what the
    /// proxy path reads per request.
    public var proxy = ProxyOptions()

    public init() {}

    public static let logLevels = ["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"]

    /// Property names this node understands.
    public static let knownProperties: Set<String> = [
        "database", "declarative_config", "declarative_config_string", "proxy_listen", "status_listen", "role", "admin_listen", "prefix", "log_level", "plugins",
        "proxy_access_log", "admin_access_log", "status_access_log",
        "ssl_cert", "ssl_cert_key", "admin_token", "trusted_ips", "real_ip_header", "real_ip_recursive",
        "headers", "headers_upstream",
        "allow_debug_header", "port_maps",
        "nginx_http_client_header_timeout", "nginx_http_client_body_timeout", "nginx_http_keepalive_timeout",
    ]

    /// Applies `name = value` pairs; unknown names and malformed values are errors.
    public mutating func apply(_ name: String, _ rawValue: String, source: String) throws(SettingsError) {
        let value = rawValue.trimmingCharacters(in: .whitespaces)
        switch name {
        case "database":
            guard let db = Database(rawValue: value) else {
                throw SettingsError("\(source): database has an invalid value: '\(value)' (off, sqlite, postgres)")
            }
            database = db
        case "declarative_config":
            declarativeConfig = value.isEmpty ? nil : value
        case "declarative_config_string":
            declarativeConfigString = value.isEmpty ? nil : value
        case "proxy_listen":
            proxyListen = try ListenAddress.parseList(value, property: name, source: source)
        case "admin_listen":
            adminListen = try ListenAddress.parseList(value, property: name, source: source)
        case "status_listen":
            statusListen = value == "off" ? [] : try ListenAddress.parseList(value, property: name, source: source)
        case "role":
            // Hybrid mode needs a control plane connection; a data plane started without one would
            // come up empty and answer 404 to everything.
            guard value == "traditional" else {
                throw SettingsError("\(source): role = \(value) is not supported: Silverback runs in traditional mode only (no hybrid mode)")
            }
        case "prefix":
            guard !value.isEmpty else { throw SettingsError("\(source): prefix must not be empty") }
            prefix = value
        case "proxy_access_log":
            proxyAccessLog = try accessLogValue(name, value, source: source, format: "kong_log_format")
        case "admin_access_log":
            adminAccessLog = try accessLogValue(name, value, source: source, format: "nginx's combined format")
        case "status_access_log":
            statusAccessLog = try accessLogValue(name, value, source: source, format: "nginx's combined format")
        case "log_level":
            guard Self.logLevels.contains(value) else {
                throw SettingsError("\(source): log_level has an invalid value: '\(value)' (\(Self.logLevels.joined(separator: ", ")))")
            }
            logLevel = value
        case "plugins":
            let names = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw SettingsError("\(source): plugins must not be empty (use 'off' for none)") }
            plugins = names
        case "admin_token":
            adminToken = value.isEmpty ? nil : value
        case "ssl_cert":
            sslCert = value.isEmpty ? nil : value
        case "ssl_cert_key":
            sslCertKey = value.isEmpty ? nil : value
        case "trusted_ips":
            switch TrustedIPs.parse(value) {
            case .success(let ips): proxy.trustedIPs = ips
            case .failure(let error): throw SettingsError("\(source): trusted_ips: \(error.message)")
            }
        case "real_ip_header":
            guard !value.isEmpty else { throw SettingsError("\(source): real_ip_header must not be empty") }
            // The PROXY protocol needs listeners that read its preamble, which Silverback's do not.
            guard value.lowercased() != "proxy_protocol" else {
                throw SettingsError("\(source): real_ip_header = proxy_protocol is not supported (no PROXY protocol listeners)")
            }
            proxy.realIPHeader = value.lowercased()
        case "real_ip_recursive":
            switch value {
            case "on", "true": proxy.realIPRecursive = true
            case "off", "false": proxy.realIPRecursive = false
            default: throw SettingsError("\(source): real_ip_recursive is not a boolean: '\(value)' (on, off)")
            }
        case "headers":
            switch ResponseHeaderSet.parse(value) {
            case .success(let set): proxy.responseHeaders = set
            case .failure(let error): throw SettingsError("\(source): headers: \(error.message)")
            }
        case "headers_upstream":
            let tokens = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard tokens.allSatisfy({ ["x-kong-request-id", "off"].contains($0) }),
                  !(tokens.contains("off") && tokens.count > 1) else {
                throw SettingsError("\(source): headers_upstream: invalid header value: \(value) (x-kong-request-id, off)")
            }
            proxy.requestIDUpstream = tokens.contains("x-kong-request-id")
        case "allow_debug_header":
            switch value {
            case "on", "true": proxy.allowDebugHeader = true
            case "off", "false": proxy.allowDebugHeader = false
            default: throw SettingsError("\(source): allow_debug_header is not a boolean: '\(value)' (on, off)")
            }
        case "port_maps":
            proxy.portMaps = try Self.portMaps(value, source: source)
        case "nginx_http_client_header_timeout":
            proxy.clientTimeouts.header = try Self.nginxTime(value, name: name, source: source)
        case "nginx_http_client_body_timeout":
            proxy.clientTimeouts.body = try Self.nginxTime(value, name: name, source: source)
        case "nginx_http_keepalive_timeout":
            // nginx's optional second value (the `Keep-Alive: timeout=` header) is not sent.
            let first = value.split(separator: " ").first.map(String.init) ?? value
            proxy.clientTimeouts.keepalive = try Self.nginxTime(first, name: name, source: source, zeroAllowed: true)
        default:
            warnings.append("\(source): property '\(name)' is not used by Silverback; ignored")
        }
    }

    /// nginx's time syntax: a number with an optional unit (`ms`, `s`, `m`, `h`, `d`; seconds
    /// without one), or several (`1m30s`), at most nginx's limit (2^31 - 1 ms, about 24 days).
    /// Zero only where nginx gives it a meaning (`keepalive_timeout 0` turns keep-alive off).
    static func nginxTime(_ value: String, name: String, source: String,
                          zeroAllowed: Bool = false) throws(SettingsError) -> TimeAmount {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        let invalid = SettingsError("\(source): \(name) is not a valid time: '\(value)' (e.g. 60s, 1m)")
        var rest = Substring(value)
        var total: Int64 = 0
        while !rest.isEmpty {
            let digits = rest.prefix(while: \.isASCII).prefix(while: \.isNumber)
            guard let number = Int64(digits), number < 1_000_000_000 else { throw invalid }
            rest = rest.dropFirst(digits.count)
            let unit = units.first { rest.hasPrefix($0.0) }  // `ms` is tried before `m`
            if let unit { rest = rest.dropFirst(unit.0.count) }
            total += number * (unit?.1 ?? 1000)
        }
        guard !value.isEmpty, total > 0 || zeroAllowed, total <= Int64(Int32.max) else { throw invalid }
        return .milliseconds(total)
    }

    /// `port_maps = 80:8000, 443:8443`: host port, then the port this node listens on.
    static func portMaps(_ value: String, source: String) throws(SettingsError) -> [Int: Int] {
        var maps: [Int: Int] = [:]
        for entry in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let ports = entry.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard ports.count == 2, let host = ports[0], let container = ports[1],
                  (1...65535).contains(host), (1...65535).contains(container) else {
                throw SettingsError("\(source): port_maps: invalid port mapping '\(entry)' (host_port:container_port)")
            }
            maps[container] = host
        }
        return maps
    }

    /// The access log's file: `proxy_access_log` as nginx reads it, relative to the prefix
    /// unless absolute; nil when off.
    public var proxyAccessLogPath: String? { accessLogPath(proxyAccessLog) }

    /// An `*_access_log` value's file, as nginx reads it: relative to the prefix unless absolute.
    public func accessLogPath(_ value: String?) -> String? {
        guard let path = value else { return nil }
        return path.hasPrefix("/") ? path : prefix + "/" + path
    }

    /// `path [format] [buffer=…]…` → the path, nil for `off`. nginx's arguments after the path
    /// (a format of the user's, buffering) are not read: a warning says so. nginx's
    /// `syslog:server=…` destination is no file: nothing is written, and a warning says so
    /// (rather than a file named `syslog:…` under the prefix).
    private mutating func accessLogValue(_ name: String, _ value: String, source: String,
                                         format: String) throws(SettingsError) -> String? {
        let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let path = words.first else { throw SettingsError("\(source): \(name) must not be empty") }
        if path.hasPrefix("syslog:") {
            warnings.append("\(source): \(name): syslog destinations are not supported by Silverback; no access log is written")
            return nil
        }
        if words.count > 1 {
            warnings.append("\(source): \(name): '\(words.dropFirst().joined(separator: " "))' is not used by Silverback; lines are written in \(format)")
        }
        return path == "off" ? nil : String(path)
    }

    /// Where Kong looks for its configuration file when `-c` names none, in this order
    /// (`kong/conf_loader`'s `DEFAULT_PATHS`); with none there, the defaults apply.
    public static let defaultConfPaths = ["/etc/kong/kong.conf", "/etc/kong.conf"]

    /// The configuration file to read: the one named (which must then exist: Kong's
    /// `no file at: <path>`), else the first default path holding a file, else none.
    public static func confPath(named: String?, defaults: [String] = defaultConfPaths,
                                isFile: (String) -> Bool) throws(SettingsError) -> String? {
        if let named {
            guard isFile(named) else { throw SettingsError("no file at: \(named)") }
            return named
        }
        return defaults.first(where: isFile)
    }

    /// Defaults ← file ← environment. `environment` is the process environment.
    public static func load(confText: String?, confPath: String?, environment: [String: String]) throws(SettingsError) -> Settings {
        var settings = Settings()
        if let confText {
            let source = confPath ?? "configuration file"
            // Any line ending: `\r\n` is a single Character to Swift, never equal to `\n`.
            for (lineNumber, line) in confText.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
                guard let (name, value) = try parseLine(String(line), source: "\(source):\(lineNumber + 1)") else { continue }
                try settings.apply(name, value, source: "\(source):\(lineNumber + 1)")
            }
        }
        // Only variables naming a known property are read: the environment carries many other
        // KONG_* variables (e.g. of Kong itself) that this node does not interpret.
        for name in knownProperties.sorted() {
            if let value = environment["KONG_" + name.uppercased()] {
                try settings.apply(name, value, source: "KONG_\(name.uppercased())")
            }
        }
        return settings
    }

    /// One kong.conf line: `name = value`, `#` starts a comment unless escaped as `\#`.
    static func parseLine(_ line: String, source: String) throws(SettingsError) -> (String, String)? {
        var text = ""
        var escaped = false
        for ch in line {
            if escaped {
                if ch != "#" { text.append("\\") }  // only `\#` is an escape
                text.append(ch)
                escaped = false
                continue
            }
            if ch == "\\" { escaped = true; continue }
            if ch == "#" { break }
            text.append(ch)
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return nil }
        guard let eq = trimmed.firstIndex(of: "=") else {
            throw SettingsError("\(source): malformed line, expected 'name = value': \(trimmed)")
        }
        let name = trimmed[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
        guard !name.isEmpty else { throw SettingsError("\(source): malformed line, missing property name") }
        return (name, String(trimmed[trimmed.index(after: eq)...]).trimmingCharacters(in: .whitespaces))
    }
}

public struct SettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One `*_listen` entry: `host:port` plus Kong's flags (`ssl`, `http2`, `reuseport`, ...).
public struct ListenAddress: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var flags: [String] = []

    public init(host: String, port: Int, flags: [String] = []) {
        self.host = host
        self.port = port
        self.flags = flags
    }

    public var ssl: Bool { flags.contains("ssl") }

    static let knownFlags: Set<String> = ["ssl", "http2", "proxy_protocol", "deferred", "bind", "reuseport",
                                          "backlog", "ipv6only", "so_keepalive"]

    static func parseList(_ value: String, property: String, source: String) throws(SettingsError) -> [ListenAddress] {
        if value == "off" { return [] }
        var out: [ListenAddress] = []
        for entry in value.split(separator: ",") {
            let words = entry.split(separator: " ").map(String.init)
            guard let address = words.first else { continue }
            let hostPort: (String, String)
            if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
                let host = String(address[address.index(after: address.startIndex)..<close])
                let rest = address[address.index(after: close)...]
                guard rest.hasPrefix(":") else { throw SettingsError("\(source): \(property) has an invalid address: '\(address)'") }
                hostPort = (host, String(rest.dropFirst()))
            } else if let colon = address.lastIndex(of: ":") {
                hostPort = (String(address[..<colon]), String(address[address.index(after: colon)...]))
            } else {
                throw SettingsError("\(source): \(property) has an invalid address: '\(address)' (expected host:port)")
            }
            guard let port = Int(hostPort.1), (0...65535).contains(port), !hostPort.0.isEmpty else {
                throw SettingsError("\(source): \(property) has an invalid address: '\(address)'")
            }
            let flags = Array(words.dropFirst())
            for flag in flags where !knownFlags.contains(flag.split(separator: "=").first.map(String.init) ?? flag) {
                throw SettingsError("\(source): \(property) has an invalid flag: '\(flag)'")
            }
            // Accepted, it would make every request fail: no listener reads the PROXY preamble.
            if flags.contains("proxy_protocol") {
                throw SettingsError("\(source): \(property): the proxy_protocol flag is not supported (listeners do not read the PROXY protocol preamble)")
            }
            out.append(ListenAddress(host: hostPort.0, port: port, flags: flags))
        }
        guard !out.isEmpty else { throw SettingsError("\(source): \(property) must not be empty") }
        return out
    }
}
