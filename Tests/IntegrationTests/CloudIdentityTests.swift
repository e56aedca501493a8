import _CryptoExtras
import Core
import Foundation
import NIOHTTP1
import Plugins
import Testing

/// ai-proxy's cloud identities end to end (spec §2.3-14, §2.5): a mock provider that checks the
/// Bedrock SigV4 signature of what it received, a mock Google token endpoint that verifies the
/// service account's RS256 JWT, and a mock Azure instance metadata endpoint.
@Suite(.serialized)
struct CloudIdentityTests {
    static let hello = #"{"messages":[{"role":"user","content":"Hello there"}]}"#
    /// A first configuration, replaced once the mock's address is known.
    static let idle = AIConfig.document(AIConfig.route("idle", path: "/idle", aiProxy: "\(AIConfig.chat), \(AIConfig.openAI())"))
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let bedrockAnswer = #"{"output":{"message":{"role":"assistant","content":[{"text":"Signed and delivered"}]}},"stopReason":"end_turn","usage":{"inputTokens":5,"outputTokens":3,"totalTokens":8}}"#

    /// Whether `request` carries a valid SigV4 signature for these credentials, recomputed from
    /// the method, Host, path, query, content type and body the provider actually received.
    static func signatureIsValid(_ request: ProviderRequest, secret: String, region: String = "us-east-1") -> Bool {
        guard let amzDate = request.headers.first(name: "x-amz-date"),
              let date = Self.amzDateFormat.date(from: amzDate),
              let authorization = request.headers.first(name: "authorization") else { return false }
        let signable = LLMSignableRequest(
            method: request.method.rawValue, hostHeader: request.headers.first(name: "host") ?? "",
            path: request.path, query: request.query, contentType: request.headers.first(name: "content-type"),
            body: request.body)
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: secret,
                                         sessionToken: request.headers.first(name: "x-amz-security-token"))
        let expected = AWSSigV4.headers(for: signable, credentials: credentials, region: region, service: "bedrock", date: date)
        return expected.first { $0.name == "Authorization" }?.value == authorization
    }

    static let amzDateFormat: DateFormatter = {
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "UTC")
        format.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return format
    }()

    /// Signed over what is sent; the configured header and query-parameter auth is not sent (spec
    /// §2.5: Bedrock's requests carry their signature only, as Kong's driver sends them).
    @Test func bedrockRequestsAreSignedOverWhatIsSent() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("bedrock", path: "/bedrock", aiProxy: """
            \(AIConfig.chat), auth: {aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "\(Self.secret)", \
            header_name: x-extra-key, header_value: not-for-aws, param_name: qk, param_value: not-for-aws, param_location: query}, \
            model: {provider: bedrock, name: "anthropic.claude-3-haiku-20240307-v1:0", \
            options: {upstream_url: "PROVIDER/model/anthropic.claude-3-haiku-20240307-v1:0/converse", \
            bedrock: {aws_region: eu-west-3}}}
            """)))
        defer { Task { await h.stop() } }
        h.provider.answer { request in
            Self.signatureIsValid(request, secret: Self.secret, region: "eu-west-3")
                ? .json(Self.bedrockAnswer)
                : .json(#"{"message":"The request signature we calculated does not match"}"#, status: 403)
        }

        let response = try await h.post("/bedrock?trace=1&a=b%20c", Self.hello)
        #expect(response.status == 200, "\(response.body)")
        #expect(response.json?["choices"]?[0]?["message"]?["content"] == "Signed and delivered")
        let sent = try #require(h.provider.requests.first)
        let authorization = try #require(sent.headers.first(name: "authorization"))
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
        #expect(authorization.contains("/eu-west-3/bedrock/aws4_request"))
        #expect(authorization.contains("SignedHeaders=content-type;host;x-amz-date"), "\(authorization)")
        #expect(sent.query == "trace=1&a=b%20c", "the client's query is signed and sent, without the configured parameter")
        #expect(sent.headers["x-extra-key"].isEmpty)
        // The control: the same request does not verify under another secret.
        #expect(!Self.signatureIsValid(sent, secret: "another-secret", region: "eu-west-3"))
        #expect(!response.body.contains(Self.secret))
    }

    /// Keys and a session token from the standard `AWS_*` variables: the token is sent (and
    /// signed), and the log shows it as REDACTED.
    @Test func bedrockSessionCredentialsFromTheEnvironmentNeverReachTheLog() async throws {
        let directory = try TemporaryDirectory.make("bedrock-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("bedrock.log").path
        let token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("bedrock", path: "/bedrock", aiProxy: """
            \(AIConfig.chat), auth: {allow_override: false}, \
            model: {provider: bedrock, name: "anthropic.claude-3-haiku-20240307-v1:0", options: {upstream_url: "PROVIDER/converse"}}
            """, more: ["name: file-log, config: {path: \"\(logPath)\"}"]))) { _ in
            ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": Self.secret,
             "AWS_SESSION_TOKEN": token, "AWS_REGION": "us-east-1"]
        }
        defer { Task { await h.stop() } }
        h.provider.answer { request in
            Self.signatureIsValid(request, secret: Self.secret) ? .json(Self.bedrockAnswer)
                : .json(#"{"message":"The request signature we calculated does not match"}"#, status: 403)
        }

        let response = try await h.post("/bedrock", Self.hello)
        #expect(response.status == 200, "\(response.body)")
        let sent = try #require(h.provider.requests.first)
        #expect(sent.headers.first(name: "x-amz-security-token") == token)
        #expect(sent.headers.first(name: "authorization")?.contains("x-amz-security-token") == true, "signed")
        let lines = try await AIProxyTests.logLines(logPath, atLeast: 1)
        let line = try #require(lines.first)
        #expect(!line.contains(token), "the session token is in the log: \(line)")
        #expect(try JSONValue.parse(line)["request"]?["headers"]?["x-amz-security-token"] == "REDACTED")
    }

    /// Kong's 500 when Bedrock has no region anywhere; nothing reaches the provider.
    @Test func bedrockWithoutARegionFailsBeforeProxying() async throws {
        let h = try await AIHarness.start(AIConfig.document(AIConfig.route("bedrock", path: "/bedrock", aiProxy: """
            \(AIConfig.chat), auth: {aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "\(Self.secret)"}, \
            model: {provider: bedrock, name: "anthropic.claude-3-haiku-20240307-v1:0", options: {upstream_url: "PROVIDER"}}
            """)))
        defer { Task { await h.stop() } }
        h.provider.answer { _ in .json(Self.bedrockAnswer) }

        let response = try await h.post("/bedrock", Self.hello)
        expectAIError(response, "LLM request failed before proxying", status: 500)
        #expect(h.provider.requests.isEmpty)
        #expect(h.gateway.upstream.acceptedConnections == 0)
    }

    /// Vertex with `gcp_use_service_account`: the JWT the gateway signs verifies with the
    /// account's public key at the key file's `token_uri`; the token is then sent as a bearer and
    /// reused (one exchange for two requests).
    @Test func vertexUsesTheServiceAccountToken() async throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let h = try await AIHarness.start(Self.idle)
        defer { Task { await h.stop() } }
        let email = "gateway@project.iam.gserviceaccount.com"
        let account: JSONValue = [
            "type": "service_account", "project_id": "project", "private_key_id": "key-1",
            "private_key": .string(key.pemRepresentation), "client_email": .string(email),
            "token_uri": .string("\(h.provider.baseURL)/token"),
        ]
        let accountJSON = account.serialized()
        h.provider.answer { request in
            if request.path == "/token" {
                guard Self.jwtIsValid(request, key: key.publicKey, email: email, audience: "\(h.provider.baseURL)/token") else {
                    return .json(#"{"error":"invalid_grant"}"#, status: 400)
                }
                return .json(#"{"access_token":"ya29.mock-token","expires_in":3599,"token_type":"Bearer"}"#)
            }
            guard request.headers.first(name: "authorization") == "Bearer ya29.mock-token" else {
                return .json(#"{"error":{"code":401,"message":"no token"}}"#, status: 401)
            }
            return .json(#"{"candidates":[{"content":{"role":"model","parts":[{"text":"From Vertex"}]},"finishReason":"STOP"}]}"#)
        }
        try h.gateway.apply(AIConfig.document(AIConfig.route("vertex", path: "/vertex", aiProxy: """
            \(AIConfig.chat), auth: {gcp_use_service_account: true, gcp_service_account_json: \(JSONValue.string(accountJSON).serialized())}, \
            model: {provider: gemini, name: gemini-1.5-pro, options: {upstream_url: "PROVIDER/vertex"}}
            """)).replacingOccurrences(of: "PROVIDER", with: h.provider.baseURL))

        for _ in 0..<2 {
            let response = try await h.post("/vertex", Self.hello)
            #expect(response.status == 200, "\(response.body)")
            #expect(response.json?["choices"]?[0]?["message"]?["content"] == "From Vertex")
        }
        #expect(h.provider.requests.map(\.path) == ["/token", "/vertex", "/vertex"], "one token exchange, then the cache")
    }

    /// The token request: the JWT-bearer grant, an RS256 signature by `key`, Google's claims.
    static func jwtIsValid(_ request: ProviderRequest, key: _RSA.Signing.PublicKey, email: String, audience: String) -> Bool {
        let form = Dictionary(uniqueKeysWithValues: request.bodyText.split(separator: "&").compactMap { pair -> (String, String)? in
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
            return parts.count == 2 ? (parts[0], parts[1]) : nil
        })
        guard form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer", let jwt = form["assertion"] else { return false }
        let parts = jwt.split(separator: ".").map(String.init)
        guard parts.count == 3, let header = base64URL(parts[0]), let claims = base64URL(parts[1]),
              let signature = base64URL(parts[2]) else { return false }
        let valid = key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature),
                                         for: Data("\(parts[0]).\(parts[1])".utf8), padding: .insecurePKCS1v1_5)
        guard valid, let head = try? JSONValue.parse(bytes: header), let body = try? JSONValue.parse(bytes: claims) else { return false }
        let now = Date().timeIntervalSince1970
        return head["alg"] == "RS256" && head["kid"] == "key-1" && body["iss"] == .string(email)
            && body["aud"] == .string(audience) && body["scope"] == "https://www.googleapis.com/auth/cloud-platform"
            && abs((body["iat"]?.numberValue ?? 0) - now) < 300
            && body["exp"]?.numberValue == (body["iat"]?.numberValue ?? 0) + 3600
    }

    static func base64URL(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }

    /// Azure with `azure_use_managed_identity`: a token from the instance metadata endpoint
    /// (`AZURE_POD_IDENTITY_AUTHORITY_HOST`, the Azure SDKs' override) for the Cognitive Services
    /// resource and the configured client id, sent as a bearer.
    @Test func azureUsesTheManagedIdentityToken() async throws {
        let h = try await AIHarness.start(Self.idle) { provider in
            ["AZURE_POD_IDENTITY_AUTHORITY_HOST": provider.baseURL]
        }
        defer { Task { await h.stop() } }
        h.provider.answer { request in
            if request.path == "/metadata/identity/oauth2/token" {
                let query = request.query ?? ""
                guard request.headers.first(name: "metadata") == "true",
                      query.contains("resource=https%3A%2F%2Fcognitiveservices.azure.com"),
                      query.contains("client_id=identity-1"), query.contains("api-version=2018-02-01") else {
                    return .json(#"{"error":"invalid_request"}"#, status: 400)
                }
                return .json(#"{"access_token":"az-mock-token","expires_in":"3599","token_type":"Bearer"}"#)
            }
            guard request.headers.first(name: "authorization") == "Bearer az-mock-token" else {
                return .json(#"{"error":{"code":"401","message":"no token"}}"#, status: 401)
            }
            return .json(ProviderFixtures.openAIChat(content: "From Azure"))
        }
        try h.gateway.apply(AIConfig.document(AIConfig.route("azure", path: "/azure", aiProxy: """
            \(AIConfig.chat), auth: {azure_use_managed_identity: true, azure_client_id: identity-1}, \
            model: {provider: azure, name: gpt-4o, options: {azure_instance: inst, azure_deployment_id: gpt-4o, \
            upstream_url: "PROVIDER/azure"}}
            """)).replacingOccurrences(of: "PROVIDER", with: h.provider.baseURL))

        let response = try await h.post("/azure", Self.hello)
        #expect(response.status == 200, "\(response.body)")
        #expect(response.json?["choices"]?[0]?["message"]?["content"] == "From Azure")
        #expect(h.provider.requests.map(\.path) == ["/metadata/identity/oauth2/token", "/azure"])
    }
}
