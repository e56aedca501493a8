import Core

/// An Entra ID token for Azure OpenAI (resource `https://cognitiveservices.azure.com`), used with
/// `auth.azure_use_managed_identity`: a client-credentials grant when `auth.azure_client_secret`
/// and `auth.azure_tenant_id` are set, else the managed identity of the host (instance metadata
/// service). Endpoints come from the Azure SDKs' own variables, so tests can point them anywhere.
public struct AzureIdentity: Sendable, CustomStringConvertible {
    public static let resource = "https://cognitiveservices.azure.com"
    public static let defaultAuthorityHost = "https://login.microsoftonline.com"
    public static let defaultMetadataHost = "http://169.254.169.254"

    /// `description` never shows the secret.
    public enum Mode: Sendable, Equatable, CustomStringConvertible {
        /// `POST <authority>/<tenant>/oauth2/v2.0/token`.
        case clientSecret(authorityHost: String, tenantID: String, clientID: String, secret: String)
        /// `GET <host>/metadata/identity/oauth2/token`; `clientID` picks a user-assigned identity.
        case managedIdentity(metadataHost: String, clientID: String?)

        public var description: String {
            switch self {
            case .clientSecret(let authority, let tenant, let client, _):
                return "client secret at \(authority), tenant \(tenant), client \(client)"
            case .managedIdentity(let host, let client):
                return "managed identity at \(host), client \(client ?? "system-assigned")"
            }
        }
    }

    public let mode: Mode

    public init(mode: Mode) { self.mode = mode }

    /// From `auth.azure_client_id`, `auth.azure_client_secret` (vault references resolved) and
    /// `auth.azure_tenant_id`; hosts from env `AZURE_AUTHORITY_HOST` and
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
    public static func resolve(auth: JSONValue, environment: [String: String]) throws(LLMCloudIdentityError) -> AzureIdentity {
        func field(_ name: String) throws(LLMCloudIdentityError) -> String? {
            guard let value = auth[name]?.stringValue, !value.isEmpty else { return nil }
            guard let resolved = VaultReference.resolve(value, environment: environment) else {
                throw LLMCloudIdentityError("could not resolve the vault reference in auth.\(name)")
            }
            return resolved
        }
        func host(_ variable: String, default fallback: String) -> String {
            var value = environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? fallback
            while value.hasSuffix("/") { value.removeLast() }
            return value
        }
        let clientID = try field("azure_client_id")
        if let secret = try field("azure_client_secret"), let tenant = try field("azure_tenant_id") {
            guard let clientID else {
                throw LLMCloudIdentityError("auth.azure_client_id is required with auth.azure_client_secret")
            }
            return AzureIdentity(mode: .clientSecret(authorityHost: host("AZURE_AUTHORITY_HOST", default: defaultAuthorityHost),
                                                     tenantID: tenant, clientID: clientID, secret: secret))
        }
        return AzureIdentity(mode: .managedIdentity(metadataHost: host("AZURE_POD_IDENTITY_AUTHORITY_HOST",
                                                                       default: defaultMetadataHost),
                                                    clientID: clientID))
    }

    public var description: String { "AzureIdentity(\(mode))" }

    /// Identifies the credential in `CloudTokenCache`: endpoint, tenant and client, plus a digest
    /// of the secret so a rotated secret does not reuse the old token.
    var cacheKey: String {
        switch mode {
        case .clientSecret(let authority, let tenant, let client, let secret):
            var hasher = Hasher()
            hasher.combine(secret)
            return "azure|secret|\(authority)|\(tenant)|\(client)|\(hasher.finalize())"
        case .managedIdentity(let host, let client):
            return "azure|msi|\(host)|\(client ?? "")"
        }
    }

    func fetchToken() async throws(LLMCloudIdentityError) -> CloudToken {
        switch mode {
        case .clientSecret(let authority, let tenant, let client, let secret):
            let url = "\(authority)/\(CloudEncoding.percentEncoded(tenant))/oauth2/v2.0/token"
            let body = CloudEncoding.formBody([
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", secret),
                ("scope", Self.resource + "/.default"),
            ])
            return try await CloudTokenEndpoint.fetch("Azure token endpoint", url: url, method: .POST, headers: [],
                                                      formBody: body, secrets: [secret])
        case .managedIdentity(let host, let client):
            var url = "\(host)/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                + CloudEncoding.percentEncoded(Self.resource)
            if let client { url += "&client_id=" + CloudEncoding.percentEncoded(client) }
            return try await CloudTokenEndpoint.fetch("Azure instance metadata token endpoint", url: url, method: .GET,
                                                      headers: [("Metadata", "true")], formBody: nil, secrets: [])
        }
    }
}
