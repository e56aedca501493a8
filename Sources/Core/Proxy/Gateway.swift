import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One running data-plane node: listeners, the current configuration and its replacement.
public final class Gateway: Sendable {
    public let holder: ConfigurationHolder
    let factories: [PluginFactory]
    let loader: DeclarativeLoader
    let logSink = LogSink()
    let server: ProxyServer
    let group: any EventLoopGroup
    /// Whether this gateway created `group` (and so shuts it down).
    let ownsGroup: Bool

    /// `threads` nil: NIO's process-wide event loops (which the CLI also makes the Swift
    /// concurrency executor, so request tasks never hop threads).
    /// `accessLog`: where each proxied request's `kong_log_format` line goes (none when nil).
    public init(loader: DeclarativeLoader, factories: [PluginFactory], threads: Int? = nil,
                options: ProxyOptions = ProxyOptions(), accessLog: AccessLog? = nil) {
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
        let services = ProxyServices(holder: holder, pools: UpstreamPools(), logSink: logSink,
                                     connections: ConnectionRegistry(), options: options, accessLog: accessLog)
        server = ProxyServer(services: services, group: group)
    }

    /// Validates and compiles a configuration off the request path, then swaps it in atomically.
    /// On any error the running configuration stays.
    public func apply(_ config: DeclarativeConfig) throws(ConfigurationBuildError) {
        let compiled = try GatewayConfiguration(config, factories: factories)
        holder.replace(with: compiled)
    }

    /// DB mode's last check before a write is committed: each plugin row written must give a
    /// handler, or the write is refused with Kong's schema-violation shape. (Stored, it would
    /// make every later snapshot fail to compile and the node stop following its database.)
    @Sendable public func admissionProblem(_ changes: [EntityChange]) -> KongError? {
        let byName = Dictionary(factories.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for case .put("plugins", let row) in changes {
            guard let instance = PluginInstance(row), let factory = byName[instance.name] else { continue }
            do { _ = try factory.make(instance, GatewayConfiguration.emptyDirectory) } catch {
                return .schemaViolation(ErrorRecord(fields: ["config": .message("\(error)")]))
            }
        }
        return nil
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

    /// Binds the proxy listeners; returns the bound ports in order. Addresses with the `ssl`
    /// flag serve TLS with the PEM certificate and key given.
    public func bind(_ addresses: [ListenAddress], certificate: TLSCertificateFiles? = nil) async throws -> [Int] {
        var tls: NIOSSLContext?
        if addresses.contains(where: \.ssl) {
            guard let certificate else { throw GatewayLoadError(message: "ssl_cert and ssl_cert_key must be set for listeners with the 'ssl' flag") }
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certificate.certificatePath).map { NIOSSLCertificateSource.certificate($0) }
                let key = try NIOSSLPrivateKey(file: certificate.keyPath, format: .pem)
                tls = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
            } catch {
                throw GatewayLoadError(message: "could not load ssl_cert / ssl_cert_key: \(error)")
            }
        }
        return try await server.bind(addresses, tls: tls)
    }

    /// Serves until `shutdown()`; then drains in-flight requests and releases resources.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.logSink.run() }
            await server.waitUntilStopped()
            // The drain's last access lines are queued on the loops: waited for before the end.
            await server.services.pools.writePendingAccessLines()
            logSink.finish()
        }
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    /// Connection and request counters of the proxy listeners.
    public var statistics: ConnectionRegistry.Statistics { server.services.connections.statistics }

    /// Stops accepting connections; requests in flight complete.
    public func shutdown() { server.shutdown() }
}

public struct TLSCertificateFiles: Sendable {
    public let certificatePath: String
    public let keyPath: String
    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }
}

public struct GatewayLoadError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
