import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

/// HTTP clients for the AI plugins' own calls (the transformers' LLM and upstream calls,
/// ai-azure-content-safety's Azure call), one per (certificate verification, forward proxy,
/// timeout) and shared process-wide: connections are pooled across requests and configuration
/// snapshots, and a configuration reload does not leak clients. Redirects are refused (one would
/// carry a key elsewhere); every read is bounded by the caller.
enum AISideCallClients {
    struct Key: Hashable {
        let verifyTLS: Bool
        let proxy: AIForwardProxy?
        let timeoutMilliseconds: Int
    }

    private static let clients = NIOLockedValueBox<[Key: HTTPClient]>([:])

    /// - Parameter timeoutMilliseconds: Kong's `http_timeout`, which lua-resty-http applies to the
    ///   connect, each send and each read, as these clients do.
    static func client(verifyTLS: Bool, proxy: AIForwardProxy?, timeoutMilliseconds: Int) -> HTTPClient {
        let key = Key(verifyTLS: verifyTLS, proxy: proxy, timeoutMilliseconds: timeoutMilliseconds)
        return clients.withLockedValue { clients in
            if let client = clients[key] { return client }
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            configuration.decompression = .disabled
            let timeout = TimeAmount.milliseconds(Int64(max(1, timeoutMilliseconds)))
            configuration.timeout = HTTPClient.Configuration.Timeout(connect: timeout, read: timeout, write: timeout)
            // A refused connection fails the call at once, as Kong's does, instead of being
            // retried until the deadline.
            configuration.connectionPool.retryConnectionEstablishment = false
            if !verifyTLS {
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.certificateVerification = .none
                configuration.tlsConfiguration = tls
            }
            if let proxy { configuration.proxy = .server(host: proxy.host, port: proxy.port) }
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[key] = client
            return client
        }
    }

}

/// Kong's `http(s)_proxy_host` / `_port`: a forward proxy at `http://host:port` (HTTPS goes through
/// it with CONNECT).
struct AIForwardProxy: Sendable, Hashable {
    let host: String
    let port: Int
}
