import AsyncHTTPClient
import Core
import NIOCore
import NIOHTTP1

/// A bearer token from an OAuth-style token endpoint.
public struct CloudToken: Sendable, Equatable, CustomStringConvertible {
    public let accessToken: String
    /// Lifetime in seconds, as the endpoint announced it.
    public let expiresIn: Double

    public init(accessToken: String, expiresIn: Double) {
        self.accessToken = accessToken
        self.expiresIn = expiresIn
    }

    public var description: String { "CloudToken(redacted, expires in \(expiresIn) s)" }
}

/// The side call to a token endpoint (GCP OAuth, Entra ID, Azure IMDS).
enum CloudTokenEndpoint {
    static let timeout: TimeAmount = .seconds(10)
    /// Its own client: redirects are refused (one would re-send a client secret elsewhere), and
    /// every read is bounded, not only the wait for the response head.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: HTTPClient.Configuration.Timeout(connect: .seconds(5), read: timeout))
        configuration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
    static let maxResponseBytes = 1 << 20
    /// Used when the answer carries no `expires_in`.
    static let defaultLifetime: Double = 3_600

    /// - Parameters:
    ///   - label: names the endpoint in errors (e.g. `GCP token endpoint`).
    ///   - secrets: values that must never reach an error message (a description the endpoint
    ///     returns is dropped if it contains one).
    static func fetch(_ label: String, url: String, method: HTTPMethod, headers: [(String, String)],
                      formBody: String?, secrets: [String]) async throws(LLMCloudIdentityError) -> CloudToken {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let formBody {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: formBody))
        }

        let status: UInt
        let body: ByteBuffer
        do {
            let response = try await client.execute(request, timeout: timeout)
            status = response.status.code
            body = try await response.body.collect(upTo: maxResponseBytes)
        } catch {
            throw LLMCloudIdentityError("\(label) request failed: \(redacted(String(describing: error), secrets))")
        }

        let json = try? JSONValue.parse(bytes: body.readableBytesView)
        guard (200..<300).contains(status) else {
            var message = "\(label) answered \(status)"
            if let json, let code = json["error"]?.stringValue {
                message += " (\(redacted(code, secrets))"
                if let description = json["error_description"]?.stringValue {
                    message += ": " + redacted(String(description.prefix(300)), secrets)
                }
                message += ")"
            }
            throw LLMCloudIdentityError(message)
        }
        guard let json else { throw LLMCloudIdentityError("\(label) answered with a body that is not JSON") }
        guard let token = json["access_token"]?.stringValue, !token.isEmpty else {
            throw LLMCloudIdentityError("\(label) answered without an access_token")
        }
        // IMDS sends `expires_in` as a string.
        let lifetime: Double
        switch json["expires_in"] {
        case .number(let seconds)?: lifetime = seconds
        case .string(let text)?: lifetime = Double(text) ?? defaultLifetime
        default: lifetime = defaultLifetime
        }
        return CloudToken(accessToken: token, expiresIn: lifetime)
    }

    /// `text`, or a placeholder when it contains any of `secrets`.
    static func redacted(_ text: String, _ secrets: [String]) -> String {
        secrets.contains { !$0.isEmpty && text.contains($0) } ? "(details withheld: they contain a secret)" : text
    }
}
