import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// A fixed number of shared, pipelined connections to one Redis server (Kong's keepalive pool),
/// opened on first use and replaced when they close. Each new connection authenticates and
/// selects its database before any command goes over it.
final class RedisConnectionPool: Sendable {
    struct Configuration: Hashable, Sendable {
        var host = "127.0.0.1"
        var port = 6379
        var database = 0
        var username: String?
        var password: String?
        var connectTimeout: TimeAmount = .milliseconds(2000)
        var readTimeout: TimeAmount = .milliseconds(2000)
        var size = 4
        /// Lua scripts loaded (SCRIPT LOAD) on each new connection, so EVALSHA finds them.
        var scripts: [String] = []
        /// Kong's `ssl`, `ssl_verify` and `server_name`; nil for plain TCP.
        var tls: TLS?
        /// Redis Sentinel: the master's address is asked of the sentinels for each new
        /// connection (`host`/`port` are then unused), so a failover is followed on reconnect.
        var sentinel: Sentinel?
    }

    struct Sentinel: Hashable, Sendable {
        struct Node: Hashable, Sendable {
            var host: String
            var port: Int
        }
        var master: String
        var nodes: [Node]
        var username: String?
        var password: String?
    }

    struct TLS: Hashable, Sendable {
        var verify = false
        /// SNI, and the name the certificate must carry when verified.
        var serverName: String?
    }

    typealias Opening = Task<Result<RedisConnection, RedisFailure>, Never>

    let configuration: Configuration
    private let slots: [NIOLockedValueBox<Opening?>]
    /// Each slot's connection once open, for writes that must not wait for a task to run.
    private let ready: [NIOLockedValueBox<RedisConnection?>]
    private let next = NIOLockedValueBox(0)

    /// Made once per pool from `configuration.tls`; a failure is every connection's failure.
    private let tlsContext: Result<NIOSSLContext, RedisFailure>?

    init(_ configuration: Configuration) {
        self.configuration = configuration
        tlsContext = configuration.tls.map { tls in
            var settings = TLSConfiguration.makeClientConfiguration()
            // Kong's `ssl_verify` defaults to false: encrypted, but any certificate is accepted.
            settings.certificateVerification = tls.verify ? .fullVerification : .none
            do { return .success(try NIOSSLContext(configuration: settings)) } catch {
                return .failure(RedisFailure(description: "TLS setup failed: \(error)"))
            }
        }
        slots = (0..<max(1, configuration.size)).map { _ in NIOLockedValueBox(nil) }
        ready = (0..<max(1, configuration.size)).map { _ in NIOLockedValueBox(nil) }
    }

    /// The slot for `affinity` (commands with the same affinity share a connection, so Redis
    /// runs them in the order they were written), else the next in turn.
    private func slot(_ affinity: Int?) -> Int {
        if let affinity { return Int(UInt(bitPattern: affinity) % UInt(slots.count)) }
        return next.withLockedValue { value -> Int in
            defer { value = (value + 1) % slots.count }
            return value
        }
    }

    func send(_ arguments: [String], affinity: Int? = nil) async throws(RedisFailure) -> RESPValue {
        let connection = try await connection(at: slot(affinity))
        return try await connection.send(arguments)
    }

    /// Writes `arguments` before returning when the slot's connection is open (nil otherwise:
    /// the caller sends it with `send`). A later command with the same affinity is run after it.
    func writeNow(_ arguments: [String], affinity: Int) -> EventLoopFuture<RESPValue>? {
        guard let connection = ready[slot(affinity)].withLockedValue({ $0 }), connection.isActive else { return nil }
        return connection.write(arguments)
    }

    /// The slot's connection, opened (once, whoever asks meanwhile) when there is none or it closed.
    private func connection(at index: Int) async throws(RedisFailure) -> RedisConnection {
        let slot = slots[index]
        let configuration = self.configuration, tlsContext = self.tlsContext
        let opening = slot.withLockedValue { current -> Opening in
            if let current { return current }
            let task: Opening = Task { await Self.open(configuration, tls: tlsContext) }
            current = task
            return task
        }
        switch await opening.value {
        case .success(let connection) where connection.isActive:
            ready[index].withLockedValue { $0 = connection }
            return connection
        case .success:
            // Closed since: replace it, unless another caller already did.
            slot.withLockedValue { if $0 == opening { $0 = nil } }
            return try await self.connection(at: index)
        case .failure(let failure):
            // Not kept: the next call tries again.
            slot.withLockedValue { if $0 == opening { $0 = nil } }
            throw failure
        }
    }

    private static func open(_ configuration: Configuration,
                             tls: Result<NIOSSLContext, RedisFailure>?) async -> Result<RedisConnection, RedisFailure> {
        do throws(RedisFailure) {
            var (host, port) = (configuration.host, configuration.port)
            if let sentinel = configuration.sentinel {
                (host, port) = try await masterAddress(sentinel, configuration, tls: tls)
            }
            let connection = try await connect(host: host, port: port, configuration, tls: tls)
            do throws(RedisFailure) {
                try await authenticate(connection, username: configuration.username, password: configuration.password)
            } catch {
                connection.close()
                return .failure(error)
            }
            if configuration.database != 0,
               case .error(let message) = try await connection.send(["SELECT", String(configuration.database)]) {
                connection.close()
                return .failure(RedisFailure(description: "SELECT \(configuration.database) failed: \(message)"))
            }
            for script in configuration.scripts {
                if case .error(let message) = try await connection.send(["SCRIPT", "LOAD", script]) {
                    connection.close()
                    return .failure(RedisFailure(description: "SCRIPT LOAD failed: \(message)"))
                }
            }
            return .success(connection)
        } catch {
            return .failure(error)
        }
    }

    private static func connect(host: String, port: Int, _ configuration: Configuration,
                                tls: Result<NIOSSLContext, RedisFailure>?) async throws(RedisFailure) -> RedisConnection {
        var secured: (context: NIOSSLContext, serverName: String?)?
        if let tls {
            // SNI is a host name: an address literal is not sent.
            let name = configuration.tls?.serverName ?? host
            secured = (try tls.get(), isAddressLiteral(name) ? nil : name)
        }
        return try await RedisConnection.connect(host: host, port: port, connectTimeout: configuration.connectTimeout,
                                                 readTimeout: configuration.readTimeout, tls: secured)
    }

    /// AUTH (with the username when there is one); nothing without a password.
    private static func authenticate(_ connection: RedisConnection, username: String?,
                                     password: String?) async throws(RedisFailure) {
        guard let password else { return }
        let auth = username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
        if case .error(let message) = try await connection.send(auth) {
            // Redis's own text names no secret (`WRONGPASS invalid username-password pair`).
            throw RedisFailure(description: "authentication failed: \(message)")
        }
    }

    /// The master's address as the first sentinel that knows it says (`SENTINEL
    /// get-master-addr-by-name`), asking the nodes in order.
    private static func masterAddress(_ sentinel: Sentinel, _ configuration: Configuration,
                                      tls: Result<NIOSSLContext, RedisFailure>?) async throws(RedisFailure) -> (String, Int) {
        var reasons: [String] = []
        for node in sentinel.nodes {
            do throws(RedisFailure) {
                let connection = try await connect(host: node.host, port: node.port, configuration, tls: tls)
                defer { connection.close() }
                try await authenticate(connection, username: sentinel.username, password: sentinel.password)
                let reply = try await connection.send(["SENTINEL", "get-master-addr-by-name", sentinel.master])
                guard case .array(let parts?) = reply, parts.count == 2,
                      let host = parts[0].text, let port = parts[1].text.flatMap(Int.init) else {
                    throw RedisFailure(description: "does not know master '\(sentinel.master)'")
                }
                return (host, port)
            } catch {
                reasons.append("\(node.host):\(node.port) \(error.description)")
            }
        }
        throw RedisFailure(description: "no sentinel gave the address of master '\(sentinel.master)': "
                                        + reasons.joined(separator: "; "))
    }

    private static func isAddressLiteral(_ host: String) -> Bool {
        host.contains(":") || host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { UInt8($0) != nil }
    }

    func close() {
        for slot in ready { slot.withLockedValue { $0 = nil } }
        for slot in slots {
            let opening = slot.withLockedValue { current -> Opening? in
                defer { current = nil }
                return current
            }
            if let opening { Task { if case .success(let connection) = await opening.value { connection.close() } } }
        }
    }
}
