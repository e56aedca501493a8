import ArgumentParser
import AdminAPI
import Core
import Foundation
import NIOConcurrencyHelpers
import Plugins

struct Silverback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silverback",
        abstract: "A Kong-compatible AI gateway.",
        subcommands: [Start.self, Quit.self, Stop.self, Health.self, Config.self, Version.self]
    )
}

/// Options shared by commands that read node settings.
struct NodeOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("conf")], help: "Configuration file (kong.conf format).")
    var conf: String?
    @Option(name: [.customShort("p"), .customLong("prefix")], help: "Prefix directory (overrides the prefix setting).")
    var prefix: String?

    func settings() throws -> Settings {
        var text: String?
        let path: String?
        do {
            path = try Settings.confPath(named: conf) { candidate in
                var isDirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory) && !isDirectory.boolValue
            }
        } catch {
            throw CLIError(error.message)
        }
        if let path {
            // Read as a stream, as Kong's `io.open` reads it: `-c /dev/null` and a shell's
            // `-c <(envsubst < kong.conf.tmpl)` (a pipe) work too, which Foundation's
            // whole-file read refuses.
            do {
                guard let handle = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadNoPermission) }
                defer { try? handle.close() }
                text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
            } catch {
                throw CLIError("could not read configuration file \(path): \(error.localizedDescription)")
            }
        }
        let settings: Settings
        do {
            settings = try Settings.load(confText: text, confPath: path, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw CLIError(error.message)
        }
        // Kong's `log_level`: what the error log (stderr) shows from here on.
        ErrorLog.setLevel(ErrorLog.Level(name: settings.logLevel) ?? .notice)
        for warning in settings.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        var result = settings
        if let prefix { result.prefix = prefix }
        return result
    }

    /// The node's entity schemas; `dbless` turns on the plugin checks of DB-less mode (a running
    /// node without a database; `config parse`, which checks files meant for one).
    func loader(for settings: Settings, dbless: Bool) throws -> DeclarativeLoader {
        do {
            let plugins = try BundledPlugins.definitions(for: settings.plugins)
            return DeclarativeLoader(registry: EntityRegistry(plugins: plugins, dbless: dbless))
        } catch {
            throw CLIError("\(error)")
        }
    }
}

extension NodeOptions {
    /// Loads a declarative file; a failure becomes `<failure>\n<Kong's error text>`.
    static func loadDeclarative(path: String, loader: DeclarativeLoader, failure: String) throws -> DeclarativeConfig {
        do {
            return try loader.load(path: path)
        } catch {
            switch error {
            case .unreadable(let message): throw CLIError("\(failure)\n\(message)")
            case .invalid(let invalid): throw CLIError("\(failure)\n\(invalid.text)")
            }
        }
    }
}

/// A failure reported as Kong's CLI does: `Error: <message>` on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Commands the entry point awaits (see main.swift).
protocol AsyncEntry {
    func serve() async throws
}

struct Start: AsyncParsableCommand, AsyncEntry {
    static let configuration = CommandConfiguration(abstract: "Start the gateway.")
    @OptionGroup var node: NodeOptions

    /// An `*_access_log` (`value` as set, `defaultValue` Kong's), opened before anything
    /// listens: as nginx, a node whose configured log cannot be opened does not start.
    /// `<prefix>/logs` is made as Kong prepares its prefix. Only Kong's default path in a prefix
    /// this user cannot write is a warning, as the pid file there is: the node runs without that
    /// log rather than not at all.
    static func openAccessLog(_ value: String?, defaultValue: String?, _ settings: Settings) throws -> AccessLog? {
        guard let path = settings.accessLogPath(value) else { return nil }
        let logs = settings.prefix + "/logs"
        if path.hasPrefix(logs + "/") {
            try? FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        }
        do { return try AccessLog(path: path) } catch {
            guard value == defaultValue else { throw CLIError(error.message) }
            FileHandle.standardError.write(Data("warning: \(error.message); running without that access log\n".utf8))
            return nil
        }
    }

    func run() async throws { try await serve() }

    /// Named apart from `run()`: the entry point calls it directly, so overload resolution between
    /// ArgumentParser's sync and async `run()` can never pick the help-printing one.
    func serve() async throws {
        let settings = try node.settings()
        // As Kong's `kong start` ("Kong is already running in <prefix>"): one node per prefix.
        if let other = NodePIDFile.running(prefix: settings.prefix), other != getpid() {
            throw CLIError("Silverback is already running in \(settings.prefix) (pid \(other))")
        }
        guard settings.database != .postgres else {
            throw CLIError("database = postgres is not implemented yet; use database = sqlite (DB mode) or database = off")
        }
        let loader = try node.loader(for: settings, dbless: settings.database == .off)
        // DB mode opens its store first (locked, then migrated): the plugins' shared counters
        // live in it too.
        var store: SQLiteEntityStore?
        var counters: SQLiteCounterStore?
        if settings.database == .sqlite {
            try DatabaseMode.lockForWriting(settings: settings)
            store = try DatabaseMode.openStore(settings: settings, registry: loader.registry)
            do { counters = try SQLiteCounterStore(path: DatabaseMode.path(settings: settings)) } catch {
                throw CLIError(error.message)
            }
        }
        let factories = BundledPlugins.factories(environment: { ProcessInfo.processInfo.environment },
                                                 counterDatabase: counters)
        // The Admin API's and status listener's logs are opened with the proxy's, before anything listens.
        let adminAccessLog = settings.adminListen.isEmpty ? nil
            : try Self.openAccessLog(settings.adminAccessLog, defaultValue: Settings.defaultAdminAccessLog, settings)
        let statusAccessLog = settings.statusListen.isEmpty ? nil
            : try Self.openAccessLog(settings.statusAccessLog, defaultValue: nil, settings)
        let gateway = Gateway(loader: loader, factories: factories, options: settings.proxy,
                              accessLog: try Self.openAccessLog(settings.proxyAccessLog,
                                                                defaultValue: Settings.defaultProxyAccessLog, settings))
        let persisted = AdminAPI.persistedConfigPath(prefix: settings.prefix)
        var initialHash: String?
        var database: EntityDatabase?
        if let store {
            database = try await DatabaseMode.open(settings: settings, store: store, registry: loader.registry, gateway: gateway)
        } else if let path = settings.declarativeConfig {
            do throws(GatewayLoadError) { try gateway.applyFile(path) } catch {
                throw CLIError("error parsing declarative config file \(path):\n\(error.message)")
            }
            initialHash = (try? String(contentsOfFile: path, encoding: .utf8))
                .map { gateway.holder.current.config.configurationHash(text: $0) }
        } else if let text = settings.declarativeConfigString {
            // Kong's `has_declarative_config`: a file first, else the string.
            let config: DeclarativeConfig
            do throws(DeclarativeLoadError) { config = try loader.load(unnamed: text) } catch {
                switch error {
                case .unreadable(let message): throw CLIError("error parsing declarative string:\n\(message)")
                case .invalid(let invalid): throw CLIError("error parsing declarative string:\n\(invalid.text)")
                }
            }
            do { try gateway.apply(config) } catch { throw CLIError("error parsing declarative string:\n\(error)") }
            initialHash = config.configurationHash(text: text)
        } else if let text = try? String(contentsOfFile: persisted, encoding: .utf8) {
            // The configuration last accepted by `POST /config`, as Kong keeps it across restarts.
            do {
                let config = try loader.load(unnamed: text)
                try gateway.apply(config)
                initialHash = config.configurationHash(text: text)
            } catch {
                throw CLIError("error loading the configuration kept in \(persisted): \(error)")
            }
        }
        warnAboutPluginsWithoutRuntime(gateway)
        let ports: [Int]
        var certificate = settings.sslCert.flatMap { cert in
            settings.sslCertKey.map { TLSCertificateFiles(certificatePath: cert, keyPath: $0) }
        }
        if certificate == nil, settings.sslCert == nil, settings.sslCertKey == nil, settings.proxyListen.contains(where: \.ssl) {
            let made = try DefaultCertificate.files(prefix: settings.prefix)
            FileHandle.standardError.write(Data(("notice: no ssl_cert configured: the ssl listeners serve the self-signed "
                + "default certificate \(made.certificatePath), as Kong does\n").utf8))
            certificate = made
        }
        do { ports = try await gateway.bind(settings.proxyListen, certificate: certificate) } catch let error as ListenError {
            throw CLIError("could not listen on proxy_listen \(error)")
        } catch {
            throw CLIError("\(error)")
        }
        let listening = zip(settings.proxyListen, ports).map { "\($0.host):\($1)" }.joined(separator: ", ")
        let adminAPI = AdminAPI(gateway: gateway, loader: loader, settings: settings, persistencePath: persisted,
                                initialHash: initialHash, database: database)
        // SIGHUP re-reads the declarative file; a DB-mode node has none (its database is the source).
        let signals = SignalHandlers(gateway: gateway, declarativeConfig: database == nil ? settings.declarativeConfig : nil,
                                     admin: adminAPI)
        let admin = AdminServer(api: adminAPI, accessLog: adminAccessLog)
        let status = AdminServer(api: adminAPI, statusOnly: true, accessLog: statusAccessLog)
        // TLS is not served on the Admin API or the status listener: an `ssl` address is not
        // opened at all, rather than answering in cleartext where TLS is expected.
        var servedListeners: [(address: ListenAddress, server: AdminServer, property: String)] = []
        for (addresses, server, property) in [(settings.adminListen, admin, "admin_listen"), (settings.statusListen, status, "status_listen")] {
            for address in addresses {
                if address.ssl {
                    FileHandle.standardError.write(Data(("warning: \(property) \(address.host):\(address.port) has the ssl flag; "
                        + "TLS is not supported there yet, so this address is not served\n").utf8))
                } else {
                    servedListeners.append((address, server, property))
                }
            }
        }
        // Kong refuses to start when any listener cannot be bound; a node serving traffic without
        // its Admin API would look healthy to a supervisor while nobody can configure it.
        let (reports, report) = AsyncStream.makeStream(of: AdminListenerReport.self)
        var refused: String?
        await withTaskGroup(of: Void.self) { group in
            for (address, server, property) in servedListeners {
                group.addTask {
                    let running = NIOLockedValueBox(false)
                    var failure: (any Error)?
                    do {
                        try await server.run(host: address.host, port: address.port) { port in
                            running.withLockedValue { $0 = true }
                            report.yield(.running)
                            say("\(property == "admin_listen" ? "Admin API" : "Status API") listening on \(address.host):\(port)")
                        }
                    } catch {
                        failure = error
                    }
                    if running.withLockedValue({ $0 }) {
                        if let failure {
                            FileHandle.standardError.write(Data("admin API on \(address.host):\(address.port) stopped: \(failure)\n".utf8))
                        }
                    } else {
                        // Never up: the start, waiting for this listener's report, fails.
                        report.yield(.refused(failure.map {
                            "could not listen on \(property) " + ListenError(host: address.host, port: address.port, cause: $0).description
                        } ?? "the \(property) address \(address.host):\(address.port) ended before listening"))
                    }
                }
            }
            var pending = servedListeners.count
            if pending > 0 {
                for await outcome in reports {
                    if case .refused(let message) = outcome { refused = message; break }
                    pending -= 1
                    if pending == 0 { break }
                }
            }
            if refused != nil {
                gateway.shutdown()
            } else {
                NodePIDFile.write(prefix: settings.prefix)
                say("Silverback started: proxy listening on \(listening)")
            }
            await gateway.run()
            group.cancelAll()
        }
        NodePIDFile.remove(prefix: settings.prefix)
        withExtendedLifetime(signals) {}
        if let refused { throw CLIError(refused) }
        say("Silverback stopped")
    }

    /// How an Admin API listener came up: the start waits for one report per `admin_listen` address.
    enum AdminListenerReport: Sendable { case running, refused(String) }

    /// Validated plugins whose runtime is not built yet are said out loud, never silently skipped.
    func warnAboutPluginsWithoutRuntime(_ gateway: Gateway) {
        let runnable = Set(BundledPlugins.factories.map(\.name))
        let idle = Set(gateway.holder.current.snapshot.plugins.map(\.name)).subtracting(runnable).sorted()
        if !idle.isEmpty {
            FileHandle.standardError.write(Data(("warning: plugins configured but not run by this build yet: "
                + idle.joined(separator: ", ") + "\n").utf8))
        }
    }
}

/// SIGTERM/SIGINT/SIGQUIT drain and stop; SIGHUP re-reads the declarative file (a bad file keeps the
/// running configuration).
final class SignalHandlers {
    let sources: [any DispatchSourceSignal]

    init(gateway: Gateway, declarativeConfig: String?, admin: AdminAPI) {
        var sources: [any DispatchSourceSignal] = []
        // SIGQUIT is nginx's graceful stop (Kong's images stop with it, `kong quit` sends it).
        for number in [SIGTERM, SIGINT, SIGQUIT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { gateway.shutdown() }
            source.resume()
            sources.append(source)
        }
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hup.setEventHandler {
            guard let path = declarativeConfig else { return }
            do throws(GatewayLoadError) {
                try gateway.applyFile(path)
                if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                    admin.configurationApplied(gateway.holder.current.config, text: text)
                }
                say("reloaded declarative config \(path)")
            } catch {
                FileHandle.standardError.write(Data("error reloading declarative config file \(path), keeping the running configuration:\n\(error.message)\n".utf8))
            }
        }
        hup.resume()
        sources.append(hup)
        self.sources = sources
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with declarative configuration files.",
        subcommands: [Parse.self, Init.self, DBImport.self, DBExport.self]
    )

    struct Parse: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse and validate a declarative configuration file.")
        @Argument(help: "The declarative configuration file (.yml, .yaml or .json).") var file: String
        @OptionGroup var node: NodeOptions

        func run() throws {
            let config = try NodeOptions.loadDeclarative(path: file, loader: try node.loader(for: try node.settings(), dbless: true),
                                                         failure: "Failed parsing:")
            // The plugins are built too, as `start` builds them: what a node would refuse to run
            // (a strategy this build lacks, an `error_code` no response can carry) fails here.
            let factories = BundledPlugins.factories(environment: { ProcessInfo.processInfo.environment }, counterDatabase: nil)
            do { _ = try GatewayConfiguration(config, factories: factories) } catch {
                throw CLIError("Failed parsing:\n\(error.message)")
            }
            print("parse successful")
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a commented example declarative configuration.")
        @Argument(help: "Where to write it.") var file: String = "kong.yml"

        func run() throws {
            if FileManager.default.fileExists(atPath: file) {
                throw CLIError("\(file) already exists; refusing to overwrite it")
            }
            do { try ExampleConfig.text.write(toFile: file, atomically: true, encoding: .utf8) } catch {
                throw CLIError("could not write \(file): \(error.localizedDescription)")
            }
            print("Created \(file)")
        }
    }
}

/// `<prefix>/pids/silverback.pid`, as Kong keeps nginx's: what `health`, `quit` and `stop` act on.
enum NodePIDFile {
    static func path(prefix: String) -> String { prefix + "/pids/silverback.pid" }

    static func write(prefix: String) {
        do {
            try FileManager.default.createDirectory(atPath: prefix + "/pids", withIntermediateDirectories: true)
            try "\(getpid())\n".write(toFile: path(prefix: prefix), atomically: true, encoding: .utf8)
        } catch {
            FileHandle.standardError.write(Data("warning: could not write \(path(prefix: prefix)): \(error.localizedDescription)\n".utf8))
        }
    }

    /// Removes the file only when it is this process's: another node's stays.
    static func remove(prefix: String) {
        guard recorded(prefix: prefix) == getpid() else { return }
        try? FileManager.default.removeItem(atPath: path(prefix: prefix))
    }

    static func recorded(prefix: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: path(prefix: prefix), encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else { return nil }
        return pid
    }

    /// The running node's pid, nil when there is none: no file, its process gone, or the pid now
    /// another program's (a stale file after a crash, the number reused).
    static func running(prefix: String) -> pid_t? {
        guard let pid = recorded(prefix: prefix), kill(pid, 0) == 0 || errno == EPERM else { return nil }
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
           let own = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
           URL(fileURLWithPath: executable).lastPathComponent != URL(fileURLWithPath: own).lastPathComponent {
            return nil
        }
        return pid
    }
}

/// Kong's `kong health`: whether the node of this prefix runs.
struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check whether the node runs.")
    @OptionGroup var node: NodeOptions

    func run() throws {
        let prefix = try node.settings().prefix
        guard NodePIDFile.running(prefix: prefix) != nil else { throw CLIError("Silverback is not running at \(prefix)") }
        print("silverback.......running\n\nSilverback is healthy at \(prefix)")
    }
}

/// Sends `signal` to the node of `prefix`; true once it is gone within `timeout` seconds.
private func signalNode(prefix: String, pid: pid_t, _ signal: Int32, timeout: Int) throws -> Bool {
    if kill(pid, signal) != 0 {
        if errno == ESRCH { return true }
        throw CLIError("could not signal Silverback at \(prefix) (pid \(pid)): \(String(cString: strerror(errno)))")
    }
    let deadline = Date().addingTimeInterval(TimeInterval(max(0, timeout)))
    // Gone only when the process is (ESRCH); EPERM is a process that still runs.
    while kill(pid, 0) == 0 || errno != ESRCH {
        guard Date() < deadline else { return false }
        usleep(50_000)
    }
    return true
}

private func runningNode(_ node: NodeOptions) throws -> (prefix: String, pid: pid_t) {
    let prefix = try node.settings().prefix
    guard let pid = NodePIDFile.running(prefix: prefix) else { throw CLIError("Silverback is not running at \(prefix)") }
    return (prefix, pid)
}

/// Kong's `kong quit`: keeps serving `--wait` seconds (time for a load balancer to stop sending),
/// then SIGQUIT (requests in flight complete); after `--timeout` seconds, SIGTERM.
struct Quit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the node gracefully.")
    @OptionGroup var node: NodeOptions
    @Option(help: "Seconds to keep serving before the stop begins.") var wait: Int = 0
    @Option(help: "Seconds to wait for the graceful stop before forcing it.") var timeout: Int = 10
    func run() throws {
        let (prefix, pid) = try runningNode(node)
        if wait > 0 { sleep(UInt32(wait)) }
        if try !signalNode(prefix: prefix, pid: pid, SIGQUIT, timeout: timeout) {
            FileHandle.standardError.write(Data("Silverback at \(prefix) did not stop within \(timeout) s; sending SIGTERM\n".utf8))
            guard try signalNode(prefix: prefix, pid: pid, SIGTERM, timeout: 30) else {
                throw CLIError("Silverback at \(prefix) did not stop")
            }
        }
        print("Silverback stopped")
    }
}

/// Kong's `kong stop` (SIGTERM; Silverback drains on it too).
struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the node.")
    @OptionGroup var node: NodeOptions
    func run() throws {
        let (prefix, pid) = try runningNode(node)
        guard try signalNode(prefix: prefix, pid: pid, SIGTERM, timeout: 30) else {
            throw CLIError("Silverback at \(prefix) did not stop within 30 s")
        }
        print("Silverback stopped")
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() {
        print("Silverback \(SilverbackVersion.version) (Kong \(SilverbackVersion.kongCompatibility) compatible)")
    }
}

enum SilverbackVersion {
    static let version = "0.1.0"
    static let kongCompatibility = KongVersion.number
}

/// Status lines of a running node, written unbuffered so pipes and log collectors get them at once.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
