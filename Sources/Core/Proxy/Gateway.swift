import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// One running data-plane node: listeners, the current configuration and its replacement.
public final class Gateway: Sendable {
    public let holder: ConfigurationHolder
    let factories: [PluginFactory]
    let loader: DeclarativeLoader
    let upstream: UpstreamClient
    let logSink = LogSink()
    let server: ProxyServer
    let group: any EventLoopGroup
    /// Whether this gateway created `group` (and so shuts it down).
    let ownsGroup: Bool
    private let servers = NIOLockedValueBox<[NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>]>([])

    /// `threads` nil: NIO's process-wide event loops (which the CLI also makes the Swift
    /// concurrency executor, so request tasks never hop threads).
    public init(loader: DeclarativeLoader, factories: [PluginFactory], threads: Int? = nil) {
        self.loader = loader
        self.factories = factories
        if let threads {
            group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
            ownsGroup = true
        } else {
            group = MultiThreadedEventLoopGroup.singleton
            ownsGroup = false
        }
        holder = ConfigurationHolder(.empty(factories: factories))
        upstream = UpstreamClient(eventLoopGroup: group)
        server = ProxyServer(holder: holder, upstream: upstream, logSink: logSink, group: group)
    }

    /// Validates and compiles a configuration off the request path, then swaps it in atomically.
    /// On any error the running configuration stays.
    public func apply(_ config: DeclarativeConfig) throws(ConfigurationBuildError) {
        let compiled = try GatewayConfiguration(config, factories: factories)
        holder.replace(with: compiled)
    }

    /// Loads a declarative file and applies it (startup and SIGHUP).
    public func applyFile(_ path: String) throws(GatewayLoadError) {
        let config: DeclarativeConfig
        do { config = try loader.load(path: path) } catch {
            switch error {
            case .unreadable(let message): throw GatewayLoadError(message: message)
            case .invalid(let invalid): throw GatewayLoadError(message: invalid.text)
            }
        }
        do { try apply(config) } catch { throw GatewayLoadError(message: error.message) }
    }

    /// Binds the proxy listeners; returns the bound ports in order.
    public func bind(_ addresses: [ListenAddress]) async throws -> [Int] {
        let bound = try await server.bind(addresses)
        servers.withLockedValue { $0 += bound }
        return bound.map { $0.channel.localAddress?.port ?? 0 }
    }

    /// Serves until `shutdown()`; then drains in-flight requests and releases resources.
    public func run() async {
        let bound = servers.withLockedValue { $0 }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.logSink.run() }
            await server.serve(bound)
            logSink.finish()
        }
        await upstream.shutdown()
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    /// Stops accepting connections; requests in flight complete.
    public func shutdown() { server.shutdown() }
}

public struct GatewayLoadError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
