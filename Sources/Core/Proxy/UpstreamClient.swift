import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Sends proxied requests upstream and streams the answers back.
///
/// Backed by AsyncHTTPClient for now (pooled keep-alive connections, TLS, streaming bodies); the
/// architecture's end state is a lean NIO client on the client connection's event loop, which
/// can replace this type behind the same two methods.
public final class UpstreamClient: Sendable {
    private let eventLoopGroup: any EventLoopGroup
    /// One client per (timeouts, TLS verification) combination: AsyncHTTPClient sets them per
    /// client, and services rarely use more than a handful of combinations.
    private let clients = NIOLockedValueBox<[ClientKey: HTTPClient]>([:])

    struct ClientKey: Hashable {
        let connectTimeoutMS: Int
        let readTimeoutMS: Int
        let writeTimeoutMS: Int
        let verifyTLS: Bool
    }

    public init(eventLoopGroup: any EventLoopGroup) {
        self.eventLoopGroup = eventLoopGroup
    }

    func client(for service: Service) -> HTTPClient {
        let key = ClientKey(connectTimeoutMS: service.connectTimeout, readTimeoutMS: service.readTimeout,
                            writeTimeoutMS: service.writeTimeout, verifyTLS: service.tlsVerify ?? true)
        return clients.withLockedValue { clients in
            if let existing = clients[key] { return existing }
            var configuration = HTTPClient.Configuration()
            // Kong's timeouts bound the gap between two successive reads or writes, not the whole
            // exchange: a long stream that keeps sending never times out.
            configuration.timeout = .init(connect: .milliseconds(Int64(max(1, key.connectTimeoutMS))),
                                          read: .milliseconds(Int64(max(1, key.readTimeoutMS))),
                                          write: .milliseconds(Int64(max(1, key.writeTimeoutMS))))
            configuration.redirectConfiguration = .disallow
            configuration.decompression = .disabled
            configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
            // A failed connect must surface at once (502/503 and the service's own `retries`),
            // not be retried silently until the read deadline.
            configuration.connectionPool.retryConnectionEstablishment = false
            if !key.verifyTLS {
                var tls = configuration.tlsConfiguration ?? .makeClientConfiguration()
                tls.certificateVerification = .none
                configuration.tlsConfiguration = tls
            }
            let client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: configuration)
            clients[key] = client
            return client
        }
    }

    /// Sends the request; returns once the response head arrived (the body streams after).
    func send(_ request: HTTPClientRequest, service: Service) async throws(UpstreamFailure) -> HTTPClientResponse {
        do {
            // No overall deadline: the per-read/-write timeouts above are the limits.
            return try await client(for: service).execute(request, deadline: .distantFuture)
        } catch {
            throw UpstreamFailure(error)
        }
    }

    public func shutdown() async {
        let all = clients.withLockedValue { clients in
            defer { clients = [:] }
            return Array(clients.values)
        }
        for client in all { try? await client.shutdown() }
    }
}

/// Why an upstream attempt failed, mapped to Kong's status and text (spec §8.4).
struct UpstreamFailure: Error {
    enum Kind { case timeout, nameResolution, invalidResponse }
    let kind: Kind
    let underlying: any Error

    init(_ error: any Error) {
        underlying = error
        if let e = error as? HTTPClientError, [.connectTimeout, .readTimeout, .deadlineExceeded].contains(e) {
            kind = .timeout
        } else if error is ChannelError, case .connectTimeout? = error as? ChannelError {
            kind = .timeout
        } else if let e = error as? NIOConnectionError, e.connectionErrors.isEmpty,
                  e.dnsAError != nil || e.dnsAAAAError != nil {
            kind = .nameResolution
        } else if "\(error)".contains("NXDOMAIN") || "\(error)".lowercased().contains("name resolution") {
            kind = .nameResolution
        } else {
            kind = .invalidResponse
        }
    }

    /// Whether a new attempt may be made: only failures before the request reached the upstream.
    var isRetryable: Bool {
        if case .nameResolution = kind { return false }
        if let e = underlying as? HTTPClientError { return e == .connectTimeout }
        return underlying is NIOConnectionError || underlying is ChannelError
            || "\(underlying)".contains("connection refused") || "\(underlying)".contains("Connection refused")
    }

    var status: Int {
        switch kind {
        case .timeout: return 504
        case .nameResolution: return 503
        case .invalidResponse: return 502
        }
    }

    var message: String {
        switch kind {
        case .timeout: return ProxyErrorText.upstreamTimeout
        case .nameResolution: return ProxyErrorText.nameResolutionFailed
        case .invalidResponse: return ProxyErrorText.invalidUpstreamResponse
        }
    }
}
