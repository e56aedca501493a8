import AsyncHTTPClient
import Core
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// Runs the real `silverback` binary, as a user would, against the files in kong-compat/.
struct CLITests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The binary `swift build`/`swift test` put next to the test bundle.
    static var binary: URL {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("silverback")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/silverback")
    }

    struct Run { let status: Int32; let stdout: String; let stderr: String }

    /// A command that reads node settings and names no file reads Kong's default
    /// `/etc/kong/kong.conf` or `/etc/kong.conf`: on a host that has one, the tests' nodes are
    /// given an empty file instead, so what they test does not depend on the host.
    static func hermetic(_ arguments: [String]) -> [String] {
        let readsSettings = !(arguments.starts(with: ["config", "init"]) || arguments.starts(with: ["version"]))
        guard readsSettings, !arguments.contains(where: { $0 == "-c" || $0 == "--conf" || $0.hasPrefix("--conf=") }),
              Settings.defaultConfPaths.contains(where: { FileManager.default.fileExists(atPath: $0) }) else { return arguments }
        return arguments + ["-c", emptyConf]
    }

    static let emptyConf: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-empty-\(UUID().uuidString).conf").path
        FileManager.default.createFile(atPath: path, contents: Data())
        return path
    }()

    /// Runs to exit; a process still running after `limit` seconds is killed (SIGKILL: a node
    /// stuck starting may not act on SIGTERM), so a command that should have exited fails its
    /// test instead of hanging the suite.
    func run(_ arguments: [String], environment: [String: String] = [:], cwd: URL? = nil, limit: Double = 60) throws -> Run {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = Self.hermetic(arguments)
        process.currentDirectoryURL = cwd ?? Self.packageRoot
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KONG_") }
        // A prefix of its own, as `SilverbackNode`'s: one node runs per prefix.
        env["KONG_PREFIX"] = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-run-\(UUID().uuidString)").path
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + limit) {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// `yaml` as `kong.yml` in a fresh temporary folder (the caller removes the folder).
    static func declarativeFile(_ yaml: String) throws -> (folder: URL, path: String) {
        let folder = try TemporaryDirectory.make("cli")
        let path = folder.appendingPathComponent("kong.yml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return (folder, path)
    }

    static func files(_ folder: String) -> [String] {
        let dir = packageRoot.appendingPathComponent("kong-compat/declarative/\(folder)")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
            .map { "kong-compat/declarative/\(folder)/\($0)" }
    }

    @Test(arguments: files("valid"))
    func validFilesParse(file: String) throws {
        let result = try run(["config", "parse", file])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "parse successful\n")
    }

    @Test func theExampleSetIsComplete() {
        #expect(Self.files("valid").count >= 3)
        #expect(Self.files("invalid").count >= 4)
    }

    @Test func brokenServiceGivesKongText() throws {
        let result = try run(["config", "parse", "kong-compat/declarative/invalid/bad-service.yml"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("""
        Failed parsing:
        in 'services':
          - in entry 1 of 'services':
            in 'host': required field missing
            in 'port': value should be between 0 and 65535
        """))
    }

    @Test(arguments: [
        ("bad-ai-proxy.yml", "in 'temperature': value should be between 0 and 5"),
        ("bad-ai-proxy.yml", "must set 'model.options.azure_instance' for azure provider"),
        ("bad-reference.yml", "in 'orphan':\n    - in entry 1 of 'orphan': invalid reference 'service: missing-service' (no such entry in 'services')"),
        ("unknown-plugin.yml", "in 'name': plugin 'rate-limiting' not enabled; add it to the 'plugins' configuration property"),
    ])
    func invalidFilesAreRefusedWithKongMessages(file: String, message: String) throws {
        let result = try run(["config", "parse", "kong-compat/declarative/invalid/\(file)"])
        #expect(result.status == 1)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func pluginsSettingRestrictsEnabledPlugins() throws {
        let result = try run(["config", "parse", "kong-compat/declarative/valid/minimal.json"],
                             environment: ["KONG_PLUGINS": "ai-proxy"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("plugin 'key-auth' not enabled"))
    }

    @Test func unknownExtensionIsRefused() throws {
        let result = try run(["config", "parse", "README.md"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("unknown file type: README.md. (Accepted types: json, yaml)"))
    }

    @Test func configInitWritesAParseableTemplateAndRefusesToOverwrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-init-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try run(["config", "init"], cwd: dir)
        #expect(first.status == 0)
        let parsed = try run(["config", "parse", dir.appendingPathComponent("kong.yml").path])
        #expect(parsed.stdout == "parse successful\n", "\(parsed.stderr)")
        let second = try run(["config", "init"], cwd: dir)
        #expect(second.status == 1)
        #expect(second.stderr.contains("already exists"))
    }
    /// A deprecated field (ai-proxy's `model.options.upstream_path`, spec §0.5) still loads, and
    /// the node says so once, as Kong's `kong.deprecation` does.
    @Test func aDeprecatedFieldIsLoggedOnce() throws {
        let (dir, file) = try Self.declarativeFile("""
        _format_version: "3.0"
        plugins:
        - name: ai-proxy
          config: {route_type: llm/v1/chat, model: {provider: openai, name: gpt-4o, options: {upstream_path: /v1/other}}}
        """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let parsed = try run(["config", "parse", file])
        #expect(parsed.status == 0, "\(parsed.stderr)")
        let warning = "[deprecation] llm: config.model.options.upstream_path is deprecated, please use "
            + "config.model.options.upstream_url instead (scheduled for removal in 4.0)"
        #expect(parsed.stderr.components(separatedBy: warning).count - 1 == 1, "\(parsed.stderr)")
        // Kong's `log_level`: a warning is below `error`, and the node keeps it to itself then.
        let quiet = try run(["config", "parse", file], environment: ["KONG_LOG_LEVEL": "error"])
        #expect(quiet.status == 0 && !quiet.stderr.contains("[deprecation]"), "\(quiet.stderr)")
    }


    /// `config parse` builds the plugins as `start` does: a configuration the node would refuse to
    /// run (here an `error_code` no HTTP response can carry, which the schema's `gt 0` lets
    /// through) fails the parse too, with the same reason.
    @Test func parseRefusesWhatStartWouldRefuse() throws {
        let (dir, file) = try Self.declarativeFile("""
        _format_version: "3.0"
        plugins:
        - name: ai-rate-limiting-advanced
          config: {llm_providers: [{name: openai, limit: [100], window_size: [60]}], error_code: 600}
        """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let parsed = try run(["config", "parse", file])
        #expect(parsed.status == 1)
        #expect(parsed.stderr.contains("Failed parsing:"), "\(parsed.stderr)")
        #expect(parsed.stderr.contains("error_code must be an HTTP status code (100-599), got 600"), "\(parsed.stderr)")
        let started = try run(["start"], environment: ["KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": file])
        #expect(started.status == 1)
        #expect(started.stderr.contains("error_code must be an HTTP status code (100-599), got 600"), "\(started.stderr)")
    }

    @Test func startRefusesBadConfigurationAndUnsupportedModes() throws {
        let bad = try run(["start"], environment: ["KONG_DATABASE": "off",
                                                    "KONG_DECLARATIVE_CONFIG": "kong-compat/declarative/invalid/bad-service.yml"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("error parsing declarative config file kong-compat/declarative/invalid/bad-service.yml:"))
        #expect(bad.stderr.contains("in 'port': value should be between 0 and 65535"))
        let badSetting = try run(["start"], environment: ["KONG_DATABASE": "mysql"])
        #expect(badSetting.status == 1)
        #expect(badSetting.stderr.contains("database has an invalid value: 'mysql'"))
        let unopenable = try run(["start"], environment: ["KONG_DATABASE": "off", "KONG_PROXY_ACCESS_LOG": "/no-such-directory/access.log"])
        #expect(unopenable.status == 1)
        #expect(unopenable.stderr.contains("could not open the access log /no-such-directory/access.log: No such file or directory"),
                "\(unopenable.stderr)")
        // Kong's default path in a prefix that cannot hold it: a warning, and the node starts.
        let blocked = try TemporaryDirectory.make("blocked-prefix")
        defer { try? FileManager.default.removeItem(at: blocked) }
        try Data().write(to: blocked.appendingPathComponent("logs"))  // a file where the directory would go
        let withoutLog = try SilverbackNode(environment: ["KONG_DATABASE": "off", "KONG_PREFIX": blocked.path])
        #expect(withoutLog.stop() == 0)
        let warned = String(decoding: withoutLog.errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(warned.contains("warning: could not open the access log \(blocked.path)/logs/access.log: Not a directory; running without that access log"),
                "\(warned)")
        let missingConf = try run(["start", "-c", "kong-compat/no-such.conf"])
        #expect(missingConf.status == 1)
        #expect(missingConf.stderr.contains("no file at: kong-compat/no-such.conf"), "\(missingConf.stderr)")
        // A configuration file read as a stream: a device, or a pipe as a shell's `<(…)` gives.
        let empty = try run(["config", "parse", "kong-compat/declarative/valid/minimal.json", "-c", "/dev/null"])
        #expect(empty.status == 0, "\(empty.stderr)")
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-conf-\(UUID().uuidString)").path
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        Thread.detachNewThread {
            guard let writer = FileHandle(forWritingAtPath: fifo) else { return }
            writer.write(Data("database = mysql\n".utf8))
            try? writer.close()
        }
        let piped = try run(["start", "-c", fifo])
        #expect(piped.status == 1)
        #expect(piped.stderr.contains("database has an invalid value: 'mysql'"), "the pipe's settings were read: \(piped.stderr)")
        let postgres = try run(["start"], environment: ["KONG_DATABASE": "postgres"])
        #expect(postgres.status == 1)
        #expect(postgres.stderr.contains("database = postgres is not implemented yet"))
    }

    /// Kong does not start when a listener cannot be bound: a node without its Admin API would look
    /// alive to a supervisor (and to a CI script) while nobody could configure it.
    @Test(arguments: ["KONG_ADMIN_LISTEN", "KONG_PROXY_LISTEN"])
    func startRefusesAnAddressAlreadyInUse(setting: String) async throws {
        let taken = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { taken.close(promise: nil) }
        let port = taken.localAddress!.port!
        var environment = ["KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": "kong-compat/declarative/valid/minimal.json",
                           "KONG_PROXY_LISTEN": "127.0.0.1:0", "KONG_ADMIN_LISTEN": "127.0.0.1:0"]
        environment[setting] = "127.0.0.1:0, 127.0.0.1:\(port)"
        let result = try run(["start"], environment: environment, limit: 20)
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("could not listen on"), "\(result.stderr)")
        #expect(result.stderr.contains("127.0.0.1:\(port): address already in use"), "\(result.stderr)")
    }

    /// The real binary: starts, proxies with Kong's 404, serves the Admin API over a socket,
    /// takes a new configuration through `POST /config`, stops on SIGTERM.
    @Test func startServesProxyAndAdminAndStopsOnSIGTERM() async throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-prefix-\(UUID().uuidString)")
        let node = try SilverbackNode(environment: ["KONG_DECLARATIVE_CONFIG": "kong-compat/declarative/valid/minimal.json",
                                                    "KONG_PREFIX": prefix.path])
        let proxyPort = node.proxyPort, adminPort = node.adminPort
        let (body, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(proxyPort)/nothing-here")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 404)
        #expect(String(decoding: body, as: UTF8.self).contains("no Route matched with those values"))

        let (status, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(adminPort)/status")!)
        #expect(String(decoding: status, as: UTF8.self).contains("configuration_hash"))
        var post = URLRequest(url: URL(string: "http://127.0.0.1:\(adminPort)/config")!)
        post.httpMethod = "POST"
        post.setValue("application/yaml", forHTTPHeaderField: "Content-Type")
        post.httpBody = Data("_format_version: \"3.0\"\nroutes:\n- name: lonely\n  paths: [\"/lonely\"]\n".utf8)
        let (_, posted) = try await URLSession.shared.data(for: post)
        #expect((posted as? HTTPURLResponse)?.statusCode == 201)
        let (_, lonely) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(proxyPort)/lonely")!)
        #expect((lonely as? HTTPURLResponse)?.statusCode == 503, "the posted configuration is live on the proxy")
        // Repeated lines: the log shows the first, as nginx's `$http_user_agent` does.
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: adminPort) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let answered = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET /status/ready HTTP/1.1\r\nHost: admin\r\nUser-Agent: first/1\r\n"
                + "User-Agent: second/2\r\nReferer: http://one\r\nReferer: http://two\r\nConnection: close\r\n\r\n"))
            var text = ""
            for try await chunk in inbound { text += String(buffer: chunk) }
            return text
        }
        #expect(answered.hasPrefix("HTTP/1.1 200"), "\(answered)")

        #expect(node.stop() == 0)  // SIGTERM
        #expect(FileManager.default.fileExists(atPath: prefix.appendingPathComponent("silverback-config.json").path))
        // Kong's default proxy_access_log, under the prefix: one kong_log_format line per request.
        let accessLog = try String(contentsOf: prefix.appendingPathComponent("logs/access.log"), encoding: .utf8)
        let lines = accessLog.split(separator: "\n")
        #expect(lines.count == 2, "\(accessLog)")
        #expect(lines.first?.contains(#""GET /nothing-here HTTP/1.1" 404 "#) == true, "\(accessLog)")
        #expect(lines.last?.contains(#""GET /lonely HTTP/1.1" 503 "#) == true, "\(accessLog)")
        // admin_access_log: nginx's combined format (no request ID), under the prefix too.
        let adminLog = try String(contentsOf: prefix.appendingPathComponent("logs/admin_access.log"), encoding: .utf8)
        let adminLines = adminLog.split(separator: "\n")
        #expect(adminLines.count == 3, "\(adminLog)")
        #expect(adminLines.first?.hasPrefix("127.0.0.1 - - [") == true, "\(adminLog)")
        #expect(adminLines.first?.contains(#""GET /status HTTP/1.1" 200 "#) == true, "\(adminLog)")
        #expect(adminLines.dropFirst().first?.contains(#""POST /config HTTP/1.1" 201 "#) == true, "\(adminLog)")
        #expect(adminLines.last?.contains(#""GET /status/ready HTTP/1.1" 200 "#) == true, "\(adminLog)")
        #expect(adminLines.last?.hasSuffix(#" "http://one" "first/1""#) == true, "the first of repeated lines: \(adminLog)")
        #expect(adminLines.allSatisfy { !$0.contains("kong_request_id") && $0.hasSuffix("\"") }, "\(adminLog)")
    }

    /// `status_access_log` (off by default, as Kong's): when set, each request to the status
    /// listener gets nginx's combined line there, a path under the prefix as Kong reads it; the
    /// proxy's and the Admin API's requests do not.
    @Test func theStatusListenerLogsToItsOwnAccessLog() async throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-prefix-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: prefix) }
        let node = try SilverbackNode(environment: ["KONG_DATABASE": "off", "KONG_PREFIX": prefix.path,
                                                    "KONG_STATUS_LISTEN": "127.0.0.1:0",
                                                    "KONG_STATUS_ACCESS_LOG": "logs/status_access.log"])
        let statusLine = try #require(node.startupOutput.split(separator: "\n").first { $0.contains("Status API listening on") },
                                      "\(node.startupOutput)")
        let statusPort = try #require(statusLine.split(separator: ":").last.flatMap { Int($0) })
        var probe = URLRequest(url: URL(string: "http://127.0.0.1:\(statusPort)/status")!)
        probe.setValue("probe/1", forHTTPHeaderField: "User-Agent")
        let (_, probed) = try await URLSession.shared.data(for: probe)
        #expect((probed as? HTTPURLResponse)?.statusCode == 200)
        let (missingBody, missing) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(statusPort)/services")!)
        #expect((missing as? HTTPURLResponse)?.statusCode == 404, "the status listener serves the status paths only")
        _ = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(node.adminPort)/status")!)
        _ = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(node.proxyPort)/elsewhere")!)
        #expect(node.stop() == 0)

        let log = try String(contentsOf: prefix.appendingPathComponent("logs/status_access.log"), encoding: .utf8)
        let lines = log.split(separator: "\n")
        #expect(lines.count == 2, "the status requests only: \(log)")
        #expect(lines.first?.hasPrefix("127.0.0.1 - - [") == true, "\(log)")
        #expect(lines.first?.contains(#""GET /status HTTP/1.1" 200 "#) == true, "\(log)")
        #expect(lines.first?.hasSuffix(#" "-" "probe/1""#) == true, "combined: referer and user agent end it: \(log)")
        #expect(lines.last?.contains(#""GET /services HTTP/1.1" 404 \#(missingBody.count) "#) == true, "\(log)")
    }

    /// Kong's `declarative_config_string` (containers set `KONG_DECLARATIVE_CONFIG_STRING`): the
    /// configuration is the text itself, JSON or YAML, hashed as `POST /config` text; a bad one
    /// stops the start with Kong's kind of message.
    @Test func startLoadsTheDeclarativeConfigString() async throws {
        let text = #"{"_format_version":"3.0","services":[{"name":"inline","url":"http://127.0.0.1:9","routes":[{"name":"r","paths":["/inline"]}]}]}"#
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-prefix-\(UUID().uuidString)")
        let node = try SilverbackNode(environment: ["KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG_STRING": text,
                                                    "KONG_PREFIX": prefix.path])
        let (services, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(node.adminPort)/services/inline")!)
        #expect(String(decoding: services, as: UTF8.self).contains(#""name":"inline""#))
        let (status, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(node.adminPort)/status")!)
        #expect(String(decoding: status, as: UTF8.self).contains(DeclarativeConfig.hash(of: text)))
        #expect(node.stop() == 0)

        let bad = try run(["start"], environment: ["KONG_DATABASE": "off",
                                                    "KONG_DECLARATIVE_CONFIG_STRING": "_format_version: \"3.0\"\nservices:\n- port: 70000\n"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("error parsing declarative string:"), "\(bad.stderr)")
        #expect(bad.stderr.contains("in 'port': value should be between 0 and 65535"))
    }

    /// Kong's `status_listen` serves `/status` and `/status/ready` (the Helm chart's probes) and
    /// nothing else; an `ssl` Admin API address is not served in cleartext; SIGQUIT (Kong's
    /// images' stop signal) drains and exits like SIGTERM.
    @Test func theStatusListenerServesProbesAndSIGQUITStops() async throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-prefix-\(UUID().uuidString)")
        let node = try SilverbackNode(environment: ["KONG_DATABASE": "off", "KONG_PREFIX": prefix.path,
                                                    "KONG_STATUS_LISTEN": "127.0.0.1:0", "KONG_ADMIN_TOKEN": "s3cret",
                                                    "KONG_ADMIN_LISTEN": "127.0.0.1:0, 127.0.0.1:0 http2 ssl"])
        let line = try #require(node.startupOutput.split(separator: "\n").first { $0.contains("Status API listening on") })
        let statusPort = try #require(line.split(separator: ":").last.flatMap { Int($0) })
        #expect(node.startupOutput.components(separatedBy: "Admin API listening on").count == 2, "the ssl address is not served")
        func get(_ port: Int, _ path: String) async throws -> (Int, String) {
            let (body, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: body, as: UTF8.self))
        }
        // Probes carry no admin token: the status listener does not ask for one.
        let empty = try await get(statusPort, "/status/ready")
        #expect(empty.0 == 503 && empty.1.contains("no configuration available (empty configuration present)"), "\(empty)")
        #expect(try await get(statusPort, "/status").0 == 200)
        #expect(try await get(statusPort, "/services").0 == 404, "the status listener is not the Admin API")
        var post = URLRequest(url: URL(string: "http://127.0.0.1:\(node.adminPort)/config")!)
        post.httpMethod = "POST"
        post.setValue("application/yaml", forHTTPHeaderField: "Content-Type")
        post.setValue("s3cret", forHTTPHeaderField: "Kong-Admin-Token")
        post.httpBody = Data("_format_version: \"3.0\"\nservices:\n- {name: s, url: \"http://127.0.0.1:9\"}\n".utf8)
        _ = try await URLSession.shared.data(for: post)
        #expect(try await get(node.adminPort, "/status").0 == 401, "the Admin API itself still does")
        #expect(try await get(statusPort, "/status/ready") == (200, #"{"message":"ready"}"#))
        // Kong's `health` and `quit` act on the node of a prefix (its pid file); quit sends SIGQUIT.
        let health = try run(["health", "-p", prefix.path])
        #expect(health.status == 0 && health.stdout.contains("Silverback is healthy at \(prefix.path)"), "\(health.stderr)")
        let second = try run(["start", "-p", prefix.path], environment: ["KONG_DATABASE": "off", "KONG_PROXY_LISTEN": "127.0.0.1:0",
                                                                          "KONG_ADMIN_LISTEN": "127.0.0.1:0"], limit: 20)
        #expect(second.status == 1 && second.stderr.contains("Silverback is already running in \(prefix.path)"), "\(second.stderr)")
        let quit = try run(["quit", "-p", prefix.path, "--wait", "1"], limit: 40)
        #expect(quit.status == 0 && quit.stdout.contains("Silverback stopped"), "\(quit.stderr)")
        node.process.waitUntilExit()
        #expect(node.process.terminationStatus == 0, "SIGQUIT drains and stops, no crash report")
        let after = try run(["health", "-p", prefix.path])
        #expect(after.status == 1 && after.stderr.contains("Silverback is not running at \(prefix.path)"))
        let stderr = String(decoding: node.errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(stderr.contains("admin_listen 127.0.0.1:0 has the ssl flag"), "\(stderr)")
        #expect(!stderr.contains("Backtracing"))
        #expect(!stderr.contains("Server started"), "the Admin server's info line is below the default `notice`")
    }

    /// An `ssl` proxy listener without `ssl_cert` serves a self-signed default certificate made
    /// under the prefix (Kong's default `8443 ssl`, the Helm chart's), the same one after a restart.
    @Test func sslListenersWithoutACertificateServeTheDefaultOne() async throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("silverback-prefix-\(UUID().uuidString)")
        let environment = ["KONG_DATABASE": "off", "KONG_PREFIX": prefix.path, "KONG_PROXY_LISTEN": "127.0.0.1:0 ssl"]
        let node = try SilverbackNode(environment: environment)
        let certificate = prefix.appendingPathComponent("ssl/silverback-default.crt").path
        let first = try String(contentsOfFile: certificate, encoding: .utf8)
        #expect(first.hasPrefix("-----BEGIN CERTIFICATE-----"))
        let keyMode = try FileManager.default.attributesOfItem(atPath: prefix.appendingPathComponent("ssl/silverback-default.key").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600, "the key is readable by the node's user only")
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let response = try await client.execute(HTTPClientRequest(url: "https://127.0.0.1:\(node.proxyPort)/nothing"), timeout: .seconds(10))
        #expect(response.status == .notFound, "served over TLS")
        try await client.shutdown()
        #expect(node.stop() == 0)
        let again = try SilverbackNode(environment: environment)
        #expect(try String(contentsOfFile: certificate, encoding: .utf8) == first, "kept across restarts")
        #expect(again.stop() == 0)
    }

    @Test func version() throws {
        let result = try run(["version"])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("Silverback "))
    }
}
