import Core
import Crypto
import Foundation
import _CryptoExtras

/// A Google service account key (the JSON file Google issues), exchanged for an OAuth access
/// token through an RS256 JWT bearer assertion (RFC 7523). Used by Gemini/Vertex with
/// `auth.gcp_use_service_account` (spec ai-plugins §2.5).
public struct GCPServiceAccount: Sendable, CustomStringConvertible {
    public static let defaultTokenURI = "https://oauth2.googleapis.com/token"
    public static let scope = "https://www.googleapis.com/auth/cloud-platform"
    /// Lifetime asked for in the assertion (Google's maximum).
    static let assertionLifetime = 3_600

    public let clientEmail: String
    public let privateKeyID: String?
    public let tokenURI: String
    private let privateKey: _RSA.Signing.PrivateKey

    /// From the service-account JSON; the error says which part is wrong, never its content.
    public init(json text: String) throws(LLMCloudIdentityError) {
        func invalid(_ reason: String) -> LLMCloudIdentityError {
            LLMCloudIdentityError("GCP service account JSON is not valid: \(reason)")
        }
        guard case .object(let object)? = try? JSONValue.parse(text) else { throw invalid("not a JSON object") }
        guard let email = object["client_email"]?.stringValue, !email.isEmpty else { throw invalid("missing client_email") }
        guard let pem = object["private_key"]?.stringValue, !pem.isEmpty else { throw invalid("missing private_key") }
        do {
            privateKey = try _RSA.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw invalid("private_key is not a PEM RSA private key of 2048 bits or more")
        }
        clientEmail = email
        privateKeyID = object["private_key_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        tokenURI = object["token_uri"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultTokenURI
    }

    /// `auth.gcp_service_account_json` (vault references resolved) › env `GCP_SERVICE_ACCOUNT`.
    public static func resolve(auth: JSONValue, environment: [String: String]) throws(LLMCloudIdentityError) -> GCPServiceAccount {
        if let value = auth["gcp_service_account_json"]?.stringValue, !value.isEmpty {
            guard let json = VaultReference.resolve(value, environment: environment) else {
                throw LLMCloudIdentityError("could not resolve the vault reference in auth.gcp_service_account_json")
            }
            return try GCPServiceAccount(json: json)
        }
        guard let json = environment["GCP_SERVICE_ACCOUNT"], !json.isEmpty else {
            throw LLMCloudIdentityError("GCP service account JSON not found: set auth.gcp_service_account_json "
                + "or GCP_SERVICE_ACCOUNT")
        }
        return try GCPServiceAccount(json: json)
    }

    public var description: String { "GCPServiceAccount(\(clientEmail), key redacted)" }

    /// Identifies the credential in `CloudTokenCache`.
    var cacheKey: String { "gcp|\(tokenURI)|\(clientEmail)|\(privateKeyID ?? "")" }

    /// The signed JWT: header `{"alg":"RS256","kid":…,"typ":"JWT"}`, claims `iss`, `scope`, `aud`
    /// (the token URI), `iat` and `exp` = `iat` + 3600.
    public func assertion(issuedAt: Date) throws(LLMCloudIdentityError) -> String {
        var header: [String: JSONValue] = ["alg": "RS256", "typ": "JWT"]
        if let privateKeyID { header["kid"] = .string(privateKeyID) }
        let iat = Int(issuedAt.timeIntervalSince1970.rounded(.down))
        let claims: JSONValue = [
            "iss": .string(clientEmail),
            "scope": .string(Self.scope),
            "aud": .string(tokenURI),
            "iat": .number(Double(iat)),
            "exp": .number(Double(iat + Self.assertionLifetime)),
        ]
        let signingInput = CloudEncoding.base64URL(JSONValue.object(header).serializedBytes()) + "."
            + CloudEncoding.base64URL(claims.serializedBytes())
        let signature: _RSA.Signing.RSASignature
        do {
            signature = try privateKey.signature(for: Array(signingInput.utf8), padding: .insecurePKCS1v1_5)
        } catch {
            throw LLMCloudIdentityError("could not sign the GCP service account assertion")
        }
        return signingInput + "." + CloudEncoding.base64URL(signature.rawRepresentation)
    }

    /// POSTs the assertion to `token_uri` (jwt-bearer grant).
    func fetchToken(now: Date) async throws(LLMCloudIdentityError) -> CloudToken {
        let jwt = try assertion(issuedAt: now)
        let body = CloudEncoding.formBody([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt),
        ])
        return try await CloudTokenEndpoint.fetch("GCP token endpoint", url: tokenURI, method: .POST, headers: [],
                                                  formBody: body, secrets: [jwt])
    }
}
