import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import Plugins
import Testing

/// The pooled, pipelined Redis client against a RESP server written here (on 127.0.0.1): replies
/// matched to callers in order under concurrency, AUTH/SELECT on each new connection, read
/// timeouts, and recovery from a closed connection.
@Suite(.serialized)
struct RedisClientTests {
    @Test func concurrentCommandsArePipelinedAndEachGetsItsOwnReply() async throws {
        let server = try await MockRedis.start()
        defer { Task { await server.stop() } }
        var configuration = RedisConnectionPool.Configuration(port: server.port)
        configuration.size = 2
        let pool = RedisConnectionPool(configuration)
        defer { pool.close() }
        let replies = try await withThrowingTaskGroup(of: Double.self) { group in
            for _ in 0..<200 {
                group.addTask { try await pool.send(["INCRBYFLOAT", "counter", "1"]).number ?? -1 }
            }
            return try await group.reduce(into: [Double]()) { $0.append($1) }
        }
        #expect(Set(replies) == Set((1...200).map(Double.init)), "every caller got its own increment back")
        #expect(try await pool.send(["GET", "counter"]).number == 200)
        #expect(server.connections <= 2, "two pooled connections, reused")
        #expect(try await pool.send(["GET", "missing"]) == .bulkString(nil))
        #expect(try await pool.send(["NOSUCH"]) == .error("ERR unknown command 'NOSUCH'"), "an error reply is a value")
    }

    @Test func newConnectionsAuthenticateAndSelectTheirDatabaseFirst() async throws {
        let server = try await MockRedis.start(password: "s3cret")
        defer { Task { await server.stop() } }
        var configuration = RedisConnectionPool.Configuration(port: server.port)
        configuration.size = 1
        configuration.username = "limiter"
        configuration.password = "s3cret"
        configuration.database = 3
        let pool = RedisConnectionPool(configuration)
        defer { pool.close() }
        #expect(try await pool.send(["PING"]) == .simpleString("PONG"))
        #expect(server.commands.prefix(3).map { $0.joined(separator: " ") } == ["AUTH limiter s3cret", "SELECT 3", "PING"])

        var wrong = configuration
        wrong.password = "not-it"
        let refused = RedisConnectionPool(wrong)
        defer { refused.close() }
        await #expect {
            _ = try await refused.send(["PING"])
        } throws: { error in
            let text = String(describing: error)
            return text.contains("authentication failed: WRONGPASS") && !text.contains("not-it")
        }
    }

    @Test func aLateReplyTimesOutAndThePoolRecovers() async throws {
        let server = try await MockRedis.start()
        defer { Task { await server.stop() } }
        var configuration = RedisConnectionPool.Configuration(port: server.port)
        configuration.size = 1
        // Well under SLOW's second, and enough for a PING on a loaded machine.
        configuration.readTimeout = .milliseconds(400)
        let pool = RedisConnectionPool(configuration)
        defer { pool.close() }
        await #expect(throws: RedisFailure.timeout) { _ = try await pool.send(["SLOW"]) }
        #expect(try await pool.send(["PING"]) == .simpleString("PONG"), "a new connection replaces the timed-out one")
        #expect(server.connections == 2)
    }

    @Test func aConnectionTheServerClosedIsReplaced() async throws {
        let server = try await MockRedis.start()
        defer { Task { await server.stop() } }
        var configuration = RedisConnectionPool.Configuration(port: server.port)
        configuration.size = 1
        let pool = RedisConnectionPool(configuration)
        defer { pool.close() }
        #expect(try await pool.send(["PING"]) == .simpleString("PONG"))
        await #expect(throws: RedisFailure.closed) { _ = try await pool.send(["QUIT"]) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await pool.send(["PING"]) == .simpleString("PONG"))
        #expect(server.connections == 2)
    }

    /// A command written after the channel closed (its handlers are gone, as after a failed TLS
    /// handshake) fails instead of waiting for a reply nobody will deliver.
    @Test(.timeLimit(.minutes(1))) func aCommandOnAClosedConnectionFailsWithoutHanging() async throws {
        let server = try await MockRedis.start()
        defer { Task { await server.stop() } }
        let connection = try await RedisConnection.connect(host: "127.0.0.1", port: server.port,
                                                           connectTimeout: .seconds(1), readTimeout: .seconds(5))
        connection.close()
        try await Task.sleep(for: .milliseconds(100))
        await #expect {
            _ = try await connection.send(["PING"])
        } throws: { error in
            String(describing: error).contains("write failed")
        }
    }

    @Test func anUnreachableServerFailsWithoutHanging() async throws {
        let port = 1  // nothing listens there (a freed port could be handed to another test's server)
        let pool = RedisConnectionPool(RedisConnectionPool.Configuration(port: port))
        defer { pool.close() }
        await #expect {
            _ = try await pool.send(["PING"])
        } throws: { error in
            String(describing: error).contains("could not connect to 127.0.0.1:\(port)")
        }
    }
}

/// A RESP server for the tests: PING, GET, INCRBYFLOAT, AUTH (checked against `password`),
/// SELECT, SLOW (answers after a second), QUIT (closes without answering); anything else is an
/// unknown command. Records every command and counts connections.
final class MockRedis: Sendable {
    let port: Int
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var values: [String: Double] = [:]
        var commands: [[String]] = []
        var connections = 0
    }

    var commands: [[String]] { state.withLockedValue { $0.commands } }
    var connections: Int { state.withLockedValue { $0.connections } }

    private init(port: Int, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    static func start(password: String? = nil) async throws -> MockRedis {
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.connections += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(MockRedisHandler(state: state, password: password))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return MockRedis(port: channel.localAddress!.port!, channel: channel, state: state)
    }

    func stop() async { try? await channel.close() }
}

private final class MockRedisHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let state: NIOLockedValueBox<MockRedis.State>
    let password: String?
    var received: [UInt8] = []

    init(state: NIOLockedValueBox<MockRedis.State>, password: String?) {
        self.state = state
        self.password = password
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        while let (value, end) = try? RESPParser.parse(received) {
            received.removeFirst(end)
            guard case .array(let items?) = value else { return }
            let command = items.compactMap(\.text)
            state.withLockedValue { $0.commands.append(command) }
            reply(to: command, context: context)
        }
    }

    private func send(_ value: RESPValue, _ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: value.encoded)), promise: nil)
    }

    private func reply(to command: [String], context: ChannelHandlerContext) {
        switch command.first?.uppercased() ?? "" {
        case "PING": send(.simpleString("PONG"), context)
        case "AUTH":
            send(command.last == password ? .simpleString("OK") : .error("WRONGPASS invalid username-password pair or user is disabled."), context)
        case "SELECT": send(.simpleString("OK"), context)
        case "GET":
            let value = state.withLockedValue { $0.values[command[1]] }
            send(.bulkString(value.map { Array(String($0).utf8) }), context)
        case "INCRBYFLOAT":
            let value = state.withLockedValue { state -> Double in
                state.values[command[1], default: 0] += Double(command[2]) ?? 0
                return state.values[command[1]]!
            }
            send(.bulkString(Array(String(value).utf8)), context)
        case "SLOW":
            let loop = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .seconds(1)) {
                loop.value.0.send(.simpleString("LATE"), loop.value.1)
            }
        case "QUIT": context.close(promise: nil)
        default: send(.error("ERR unknown command '\(command.first ?? "")'"), context)
        }
    }
}
