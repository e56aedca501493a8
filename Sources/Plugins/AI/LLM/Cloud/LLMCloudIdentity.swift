import Core
import Foundation

/// The upstream request as it will go on the wire, for signing.
public struct LLMSignableRequest: Sendable {
    public var method: String
    /// The `Host` header value exactly as sent (with `:port` when it is sent so).
    public var hostHeader: String
    /// The path exactly as sent (already percent-encoded where the wire needs it), no query.
    public var path: String
    /// The raw query string without `?`; nil or empty when none.
    public var query: String?
    /// The `Content-Type` header as sent; nil when the request has none.
    public var contentType: String?
    public var body: [UInt8]

    public init(method: String, hostHeader: String, path: String, query: String? = nil, contentType: String? = nil,
                body: [UInt8] = []) {
        self.method = method
        self.hostHeader = hostHeader
        self.path = path
        self.query = query
        self.contentType = contentType
        self.body = body
    }
}

/// Why no cloud identity could be applied. The message is for the error log and never holds a
/// secret; the client only sees Kong's generic 500.
public struct LLMCloudIdentityError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// The cloud identity of an `llm` record (spec ai-plugins §2.3 step 14, §2.5): AWS SigV4 for
/// Bedrock, a GCP service-account token for Gemini with `auth.gcp_use_service_account`, an Entra
/// ID token for Azure with `auth.azure_use_managed_identity`.
///
/// Built once per configuration snapshot. Configuration problems (missing keys, an invalid
/// service account) surface from `headers(for:region:now:)`, so each request logs them as Kong
/// does.
public struct LLMCloudIdentity: Sendable {
    enum Kind: Sendable {
        case aws(Result<AWSCredentials, LLMCloudIdentityError>)
        case gcp(Result<GCPServiceAccount, LLMCloudIdentityError>)
        case azure(Result<AzureIdentity, LLMCloudIdentityError>)
    }

    /// SigV4 service name for Bedrock.
    public static let bedrockService = "bedrock"

    let kind: Kind
    let cache: CloudTokenCache

    /// Nil when the configuration needs no cloud identity: Bedrock always needs one, Gemini only
    /// with `auth.gcp_use_service_account`, Azure only with `auth.azure_use_managed_identity`.
    /// `auth` is the record's `auth` (null or absent is fine); `environment` serves the env
    /// fallbacks and `{vault://env/…}` references.
    public static func make(provider: LLMProvider, auth: JSONValue, environment: [String: String],
                            cache: CloudTokenCache = .shared) -> LLMCloudIdentity? {
        func result<T>(_ body: () throws(LLMCloudIdentityError) -> T) -> Result<T, LLMCloudIdentityError> {
            do throws(LLMCloudIdentityError) { return .success(try body()) } catch { return .failure(error) }
        }
        switch provider {
        case .bedrock:
            return LLMCloudIdentity(
                kind: .aws(result { () throws(LLMCloudIdentityError) in try AWSCredentials.resolve(auth: auth, environment: environment) }),
                cache: cache)
        case .gemini where auth["gcp_use_service_account"]?.boolValue == true:
            return LLMCloudIdentity(
                kind: .gcp(result { () throws(LLMCloudIdentityError) in try GCPServiceAccount.resolve(auth: auth, environment: environment) }),
                cache: cache)
        case .azure where auth["azure_use_managed_identity"]?.boolValue == true:
            return LLMCloudIdentity(
                kind: .azure(result { () throws(LLMCloudIdentityError) in try AzureIdentity.resolve(auth: auth, environment: environment) }),
                cache: cache)
        default:
            return nil
        }
    }

    /// Headers to set on the upstream request (replacing any of the same name). Call it after the
    /// method, Host, path, query, `Content-Type` and body are final: Bedrock's signature covers them.
    ///
    /// - Parameters:
    ///   - region: the region the target was resolved for (`LLMUpstream.signingRegion`); an AWS
    ///     identity without one fails. Ignored by non-AWS identities.
    ///   - now: signing time and token-cache clock.
    public func headers(for request: LLMSignableRequest, region: String?,
                        now: Date) async throws(LLMCloudIdentityError) -> [(name: String, value: String)] {
        switch kind {
        case .aws(let credentials):
            let credentials = try credentials.get()
            guard let region, !region.isEmpty else { throw LLMCloudIdentityError("AWS region not specified anywhere") }
            return AWSSigV4.headers(for: request, credentials: credentials, region: region,
                                    service: Self.bedrockService, date: now)
        case .gcp(let account):
            let account = try account.get()
            let token = try await cache.token(for: account.cacheKey, now: now) { () async throws(LLMCloudIdentityError) in
                try await account.fetchToken(now: now)
            }
            return [("Authorization", "Bearer " + token)]
        case .azure(let identity):
            let identity = try identity.get()
            let token = try await cache.token(for: identity.cacheKey, now: now) { () async throws(LLMCloudIdentityError) in
                try await identity.fetchToken()
            }
            return [("Authorization", "Bearer " + token)]
        }
    }
}
