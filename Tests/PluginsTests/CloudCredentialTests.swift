import Core
import Crypto
import Foundation
import Plugins
import Testing
import _CryptoExtras

/// Cloud identities of the `llm` record (spec ai-plugins §0.5, §2.3 step 14, §2.5): SigV4, GCP
/// service-account JWTs, Azure identity selection, the token cache. Token endpoints over HTTP are
/// covered by the integration tests.
struct CloudCredentialTests {
    // MARK: AWS SigV4 — AWS's published test suite (aws-sig-v4-test-suite)

    static let suiteCredentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE",
                                                 secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    /// 20150830T123600Z.
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)

    static func suiteHeaders(method: String, path: String = "/", query: String? = nil,
                             credentials: AWSCredentials = suiteCredentials) -> [String: String] {
        let request = LLMSignableRequest(method: method, hostHeader: "example.amazonaws.com", path: path, query: query)
        let headers = AWSSigV4.headers(for: request, credentials: credentials, region: "us-east-1",
                                       service: "service", date: suiteDate)
        return Dictionary(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    static func suiteAuthorization(_ signature: String, signedHeaders: String = "host;x-amz-date") -> String {
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    @Test func sigV4GetVanilla() {
        let headers = Self.suiteHeaders(method: "GET")
        #expect(headers["Authorization"]
            == Self.suiteAuthorization("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))
        #expect(headers["X-Amz-Date"] == "20150830T123600Z")
        #expect(headers["X-Amz-Security-Token"] == nil)
        #expect(headers.count == 2)
    }

    @Test func sigV4PostVanilla() {
        let headers = Self.suiteHeaders(method: "POST")
        #expect(headers["Authorization"]
            == Self.suiteAuthorization("5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"))
    }

    /// Suite case "get-vanilla-query-order-key-case": parameters sorted by name.
    @Test func sigV4QueryOrder() {
        let headers = Self.suiteHeaders(method: "GET", query: "Param2=value2&Param1=value1")
        #expect(headers["Authorization"]
            == Self.suiteAuthorization("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"))
    }

    /// Suite case "post-sts-token/post-sts-header-before": the session token is signed.
    @Test func sigV4SessionTokenSigned() {
        var credentials = Self.suiteCredentials
        credentials.sessionToken = Self.suiteSessionToken
        let headers = Self.suiteHeaders(method: "POST", credentials: credentials)
        #expect(headers["Authorization"]
            == Self.suiteAuthorization("85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
                                       signedHeaders: "host;x-amz-date;x-amz-security-token"))
        #expect(headers["X-Amz-Security-Token"] == Self.suiteSessionToken)
    }

    /// Suite cases "get-utf8" and "get-space": the path is URI-encoded (once more) for the
    /// canonical request.
    @Test func sigV4PathEncoding() {
        #expect(Self.suiteHeaders(method: "GET", path: "/ሴ")["Authorization"]
            == Self.suiteAuthorization("8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"))
        #expect(Self.suiteHeaders(method: "GET", path: "/example space/")["Authorization"]
            == Self.suiteAuthorization("652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"))
    }

    static let suiteSessionToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAe"
        + "MicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0"
        + "wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOL"
        + "n9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

    /// A Bedrock-shaped request: body, `Content-Type`, session token, a query with an encoded
    /// value and a repeated name, a model id with `:` in the path. Expected values computed with
    /// an independent Python (hmac/hashlib/urllib.parse.quote) implementation written from AWS's
    /// SigV4 documentation, which also reproduces the published suite vectors above.
    @Test func sigV4BedrockRequest() {
        let request = LLMSignableRequest(
            method: "POST", hostHeader: "bedrock-runtime.us-west-2.amazonaws.com",
            path: "/model/anthropic.claude-3-sonnet-20240229-v1:0/converse", query: "b=2&a=x%20y&a=1",
            contentType: "application/json",
            body: Array(#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}"#.utf8))
        var credentials = Self.suiteCredentials
        credentials.sessionToken = Self.suiteSessionToken

        let canonical = AWSSigV4.canonicalRequest(for: request, credentials: credentials, date: Self.suiteDate)
        #expect(canonical == """
            POST
            /model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse
            a=1&a=x%20y&b=2
            content-type:application/json
            host:bedrock-runtime.us-west-2.amazonaws.com
            x-amz-date:20150830T123600Z
            x-amz-security-token:\(Self.suiteSessionToken)

            content-type;host;x-amz-date;x-amz-security-token
            7421da8d1a0949a481724fee62d5886aacde03836bf58248adb73e8b61ac0d54
            """)

        let headers = AWSSigV4.headers(for: request, credentials: credentials, region: "us-west-2",
                                       service: "bedrock", date: Self.suiteDate)
        #expect(headers.map(\.name) == ["Authorization", "X-Amz-Date", "X-Amz-Security-Token"])
        #expect(headers.first?.value == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-west-2/bedrock/aws4_request, "
            + "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
            + "Signature=8e6e8c0ab0193b330b05cb7f34eb6a43aefb78d468cfc439ab01091e06384f9b")
    }

    @Test func sigV4DateFormatting() {
        func amzDate(_ seconds: TimeInterval) -> String? {
            AWSSigV4.headers(for: LLMSignableRequest(method: "GET", hostHeader: "h", path: "/"),
                             credentials: Self.suiteCredentials, region: "r", service: "s",
                             date: Date(timeIntervalSince1970: seconds)).first { $0.name == "X-Amz-Date" }?.value
        }
        #expect(amzDate(1_709_251_199) == "20240229T235959Z")
        #expect(amzDate(951_868_800) == "20000301T000000Z")
        #expect(amzDate(0.999) == "19700101T000000Z")
    }

    // MARK: AWS credentials and region

    @Test func awsCredentialsConfigOverEnvironment() throws {
        let environment = ["AWS_ACCESS_KEY_ID": "env-id", "AWS_SECRET_ACCESS_KEY": "env-secret",
                           "AWS_SESSION_TOKEN": "env-token", "MY_AWS_SECRET": "vault-secret"]
        let configured = try AWSCredentials.resolve(
            auth: ["aws_access_key_id": "conf-id", "aws_secret_access_key": "{vault://env/my-aws-secret}"],
            environment: environment)
        #expect(configured == AWSCredentials(accessKeyID: "conf-id", secretAccessKey: "vault-secret"))

        let fromEnvironment = try AWSCredentials.resolve(auth: .null, environment: environment)
        #expect(fromEnvironment == AWSCredentials(accessKeyID: "env-id", secretAccessKey: "env-secret",
                                                  sessionToken: "env-token"))

        // Each key falls back on its own; the environment's session token then does not apply.
        let mixed = try AWSCredentials.resolve(auth: ["aws_access_key_id": "conf-id"], environment: environment)
        #expect(mixed == AWSCredentials(accessKeyID: "conf-id", secretAccessKey: "env-secret"))

        #expect("\(configured)" == "AWSCredentials(redacted)")
    }

    @Test func awsCredentialsErrors() {
        #expect(throws: LLMCloudIdentityError("AWS credentials not found: set auth.aws_access_key_id and "
            + "auth.aws_secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")) {
            try AWSCredentials.resolve(auth: ["aws_access_key_id": "conf-id"], environment: [:])
        }
        #expect(throws: LLMCloudIdentityError("could not resolve the vault reference in auth.aws_secret_access_key")) {
            try AWSCredentials.resolve(auth: ["aws_access_key_id": "id", "aws_secret_access_key": "{vault://env/absent}"],
                                       environment: ["AWS_SECRET_ACCESS_KEY": "env-secret"])
        }
    }

    @Test func awsRegionPrecedence() {
        let both = ["AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-central-1"]
        #expect(AWSRegion.resolve(configured: "us-east-2", environment: both) == "us-east-2")
        #expect(AWSRegion.resolve(configured: nil, environment: both) == "eu-west-1")
        #expect(AWSRegion.resolve(configured: "", environment: both) == "eu-west-1")
        #expect(AWSRegion.resolve(configured: nil, environment: ["AWS_DEFAULT_REGION": "eu-central-1"]) == "eu-central-1")
        #expect(AWSRegion.resolve(configured: nil, environment: [:]) == nil)
    }

    // MARK: LLMCloudIdentity

    @Test func identityOnlyWhereNeeded() {
        #expect(LLMCloudIdentity.make(provider: .openai, auth: .null, environment: [:]) == nil)
        #expect(LLMCloudIdentity.make(provider: .gemini, auth: ["header_name": "x-goog-api-key"], environment: [:]) == nil)
        #expect(LLMCloudIdentity.make(provider: .gemini, auth: ["gcp_use_service_account": false], environment: [:]) == nil)
        #expect(LLMCloudIdentity.make(provider: .azure, auth: .null, environment: [:]) == nil)
        #expect(LLMCloudIdentity.make(provider: .bedrock, auth: .null, environment: [:]) != nil)
        #expect(LLMCloudIdentity.make(provider: .gemini, auth: ["gcp_use_service_account": true], environment: [:]) != nil)
        #expect(LLMCloudIdentity.make(provider: .azure, auth: ["azure_use_managed_identity": true], environment: [:]) != nil)
    }

    static let bedrockRequest = LLMSignableRequest(
        method: "POST", hostHeader: "bedrock-runtime.us-west-2.amazonaws.com", path: "/model/m/converse",
        contentType: "application/json", body: Array(#"{"messages":[]}"#.utf8))

    @Test func bedrockIdentitySigns() async throws {
        let environment = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                           "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                           "AWS_REGION": "eu-west-1"]
        let identity = try #require(LLMCloudIdentity.make(provider: .bedrock, auth: .null, environment: environment))
        let configuredRegion = try await identity.headers(for: Self.bedrockRequest, region: "us-west-2", now: Self.suiteDate)
        let direct = AWSSigV4.headers(for: Self.bedrockRequest, credentials: Self.suiteCredentials, region: "us-west-2",
                                      service: "bedrock", date: Self.suiteDate)
        #expect(configuredRegion.map { "\($0.name): \($0.value)" } == direct.map { "\($0.name): \($0.value)" })
        // The region comes with the target (`LLMUpstream.signingRegion`, which reads the
        // environment); the identity does not guess one of its own.
        await #expect(throws: LLMCloudIdentityError("AWS region not specified anywhere")) {
            try await identity.headers(for: Self.bedrockRequest, region: nil, now: Self.suiteDate)
        }
    }

    @Test func bedrockIdentityErrors() async {
        let credentials = ["AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"]
        let noRegion = LLMCloudIdentity.make(provider: .bedrock, auth: .null, environment: credentials)
        await #expect(throws: LLMCloudIdentityError("AWS region not specified anywhere")) {
            try await noRegion?.headers(for: Self.bedrockRequest, region: nil, now: Self.suiteDate)
        }
        let noCredentials = LLMCloudIdentity.make(provider: .bedrock, auth: .null, environment: ["AWS_REGION": "us-east-1"])
        do throws(LLMCloudIdentityError) {
            _ = try await noCredentials?.headers(for: Self.bedrockRequest, region: nil, now: Self.suiteDate)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("AWS credentials not found"))
        }
    }

    // MARK: GCP service account

    static func serviceAccountJSON(_ key: _RSA.Signing.PrivateKey, tokenURI: String? = nil) -> String {
        var object: [String: JSONValue] = [
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "0123456789abcdef",
            "private_key": .string(key.pkcs8PEMRepresentation),
            "client_email": "gateway@demo-project.iam.gserviceaccount.com",
            "client_id": "1234567890",
        ]
        if let tokenURI { object["token_uri"] = .string(tokenURI) }
        return JSONValue.object(object).serialized()
    }

    static func base64URLDecoded(_ text: Substring) throws -> [UInt8] {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Array(try #require(Data(base64Encoded: base64)))
    }

    @Test func serviceAccountJWT() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let account = try GCPServiceAccount(json: Self.serviceAccountJSON(key))
        #expect(account.clientEmail == "gateway@demo-project.iam.gserviceaccount.com")
        #expect(account.privateKeyID == "0123456789abcdef")
        #expect(account.tokenURI == "https://oauth2.googleapis.com/token")
        #expect(!"\(account)".contains("PRIVATE KEY"))

        let jwt = try account.assertion(issuedAt: Date(timeIntervalSince1970: 1_700_000_000.7))
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
        try #require(parts.count == 3)
        #expect(!jwt.contains("="))
        #expect(!jwt.contains("+"))
        #expect(!jwt.contains("/"))

        let header = try JSONValue.parse(bytes: Self.base64URLDecoded(parts[0]))
        #expect(header == ["alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"])
        let claims = try JSONValue.parse(bytes: Self.base64URLDecoded(parts[1]))
        #expect(claims == [
            "iss": "gateway@demo-project.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": "https://oauth2.googleapis.com/token",
            "iat": 1_700_000_000,
            "exp": 1_700_003_600,
        ])

        let signature = _RSA.Signing.RSASignature(rawRepresentation: try Self.base64URLDecoded(parts[2]))
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        #expect(key.publicKey.isValidSignature(signature, for: signingInput, padding: .insecurePKCS1v1_5))
        let otherKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        #expect(!otherKey.publicKey.isValidSignature(signature, for: signingInput, padding: .insecurePKCS1v1_5))
    }

    @Test func serviceAccountTokenURIAndTraditionalPEM() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        var json = try JSONValue.parse(Self.serviceAccountJSON(key, tokenURI: "http://127.0.0.1:9/token"))
        json["private_key"] = .string(key.pemRepresentation)  // "BEGIN RSA PRIVATE KEY"
        json["private_key_id"] = nil
        let account = try GCPServiceAccount(json: json.serialized())
        #expect(account.tokenURI == "http://127.0.0.1:9/token")
        let jwt = try account.assertion(issuedAt: Date(timeIntervalSince1970: 1_700_000_000))
        let header = try JSONValue.parse(bytes: Self.base64URLDecoded(jwt.split(separator: ".")[0]))
        #expect(header == ["alg": "RS256", "typ": "JWT"])
        let claims = try JSONValue.parse(bytes: Self.base64URLDecoded(jwt.split(separator: ".")[1]))
        #expect(claims["aud"] == "http://127.0.0.1:9/token")
    }

    @Test func serviceAccountErrors() throws {
        #expect(throws: LLMCloudIdentityError("GCP service account JSON is not valid: not a JSON object")) {
            try GCPServiceAccount(json: "not json")
        }
        #expect(throws: LLMCloudIdentityError("GCP service account JSON is not valid: missing client_email")) {
            try GCPServiceAccount(json: #"{"private_key":"x"}"#)
        }
        #expect(throws: LLMCloudIdentityError("GCP service account JSON is not valid: missing private_key")) {
            try GCPServiceAccount(json: #"{"client_email":"a@b"}"#)
        }
        let secretish = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
        do throws(LLMCloudIdentityError) {
            _ = try GCPServiceAccount(json: JSONValue.object(["client_email": "a@b", "private_key": .string(secretish)]).serialized())
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("GCP service account JSON is not valid: private_key"))
            #expect(!error.message.contains("c2VjcmV0"))
        }
    }

    @Test func serviceAccountSourcePrecedence() throws {
        let configKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let envKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let configJSON = try JSONValue.parse(Self.serviceAccountJSON(configKey, tokenURI: "http://config/token"))
        let envJSON = Self.serviceAccountJSON(envKey, tokenURI: "http://env/token")
        let environment = ["GCP_SERVICE_ACCOUNT": envJSON, "SA_FROM_VAULT": configJSON.serialized()]

        let configured = try GCPServiceAccount.resolve(auth: ["gcp_service_account_json": .string(configJSON.serialized())],
                                                       environment: environment)
        #expect(configured.tokenURI == "http://config/token")
        let viaVault = try GCPServiceAccount.resolve(auth: ["gcp_service_account_json": "{vault://env/sa-from-vault}"],
                                                     environment: environment)
        #expect(viaVault.tokenURI == "http://config/token")
        let fromEnvironment = try GCPServiceAccount.resolve(auth: ["gcp_use_service_account": true], environment: environment)
        #expect(fromEnvironment.tokenURI == "http://env/token")
        #expect(throws: LLMCloudIdentityError("GCP service account JSON not found: set auth.gcp_service_account_json "
            + "or GCP_SERVICE_ACCOUNT")) {
            try GCPServiceAccount.resolve(auth: .null, environment: [:])
        }
    }

    @Test func geminiIdentityErrors() async throws {
        let invalid = LLMCloudIdentity.make(provider: .gemini,
                                            auth: ["gcp_use_service_account": true, "gcp_service_account_json": "{}"],
                                            environment: [:])
        await #expect(throws: LLMCloudIdentityError("GCP service account JSON is not valid: missing client_email")) {
            try await invalid?.headers(for: Self.bedrockRequest, region: nil, now: Date())
        }

        // Nothing listens on port 1: a transport error, reported without the assertion.
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let unreachable = LLMCloudIdentity.make(
            provider: .gemini,
            auth: ["gcp_use_service_account": true,
                   "gcp_service_account_json": .string(Self.serviceAccountJSON(key, tokenURI: "http://127.0.0.1:1/token"))],
            environment: [:], cache: CloudTokenCache())
        do throws(LLMCloudIdentityError) {
            _ = try await unreachable?.headers(for: Self.bedrockRequest, region: nil, now: Date())
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("GCP token endpoint request failed"))
            #expect(!error.message.contains("eyJ"))
        }
    }

    // MARK: Azure

    @Test func azureModes() throws {
        let secretAuth: JSONValue = ["azure_use_managed_identity": true, "azure_client_id": "client-1",
                                     "azure_client_secret": "{vault://env/azure-secret}", "azure_tenant_id": "tenant-1"]
        let secret = try AzureIdentity.resolve(auth: secretAuth, environment: ["AZURE_SECRET": "s3cr3t-value"])
        #expect(secret.mode == .clientSecret(authorityHost: "https://login.microsoftonline.com", tenantID: "tenant-1",
                                             clientID: "client-1", secret: "s3cr3t-value"))
        #expect(!"\(secret)".contains("s3cr3t"))
        #expect(!"\(secret.mode)".contains("s3cr3t"))
        let customAuthority = try AzureIdentity.resolve(
            auth: secretAuth, environment: ["AZURE_SECRET": "x", "AZURE_AUTHORITY_HOST": "http://127.0.0.1:8080/"])
        #expect(customAuthority.mode == .clientSecret(authorityHost: "http://127.0.0.1:8080", tenantID: "tenant-1",
                                                      clientID: "client-1", secret: "x"))

        let systemAssigned = try AzureIdentity.resolve(auth: ["azure_use_managed_identity": true], environment: [:])
        #expect(systemAssigned.mode == .managedIdentity(metadataHost: "http://169.254.169.254", clientID: nil))
        let userAssigned = try AzureIdentity.resolve(
            auth: ["azure_use_managed_identity": true, "azure_client_id": "client-2", "azure_tenant_id": "tenant-only"],
            environment: ["AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9999"])
        #expect(userAssigned.mode == .managedIdentity(metadataHost: "http://127.0.0.1:9999", clientID: "client-2"))

        #expect(throws: LLMCloudIdentityError("auth.azure_client_id is required with auth.azure_client_secret")) {
            try AzureIdentity.resolve(auth: ["azure_client_secret": "s", "azure_tenant_id": "t"], environment: [:])
        }
    }

    @Test func azureTransportErrorHidesSecret() async {
        let identity = LLMCloudIdentity.make(
            provider: .azure,
            auth: ["azure_use_managed_identity": true, "azure_client_id": "client-1",
                   "azure_client_secret": "s3cr3t-value", "azure_tenant_id": "tenant-1"],
            environment: ["AZURE_AUTHORITY_HOST": "http://127.0.0.1:1"], cache: CloudTokenCache())
        do throws(LLMCloudIdentityError) {
            _ = try await identity?.headers(for: Self.bedrockRequest, region: nil, now: Date())
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("Azure token endpoint request failed"))
            #expect(!error.message.contains("s3cr3t"))
        }
    }

    // MARK: Token cache

    actor Counter {
        var count = 0
        func next() -> Int { count += 1; return count }
    }

    @Test func tokenCacheSharesOneFetch() async throws {
        let cache = CloudTokenCache()
        let counter = Counter()
        let start = Date(timeIntervalSince1970: 1_000_000)
        let fetch: CloudTokenCache.Fetch = {
            let n = await counter.next()
            try? await Task.sleep(nanoseconds: 50_000_000)
            return CloudToken(accessToken: "token-\(n)", expiresIn: 3_600)
        }
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { try await cache.token(for: "k", now: start, fetch: fetch) } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(tokens == Array(repeating: "token-1", count: 8))
        #expect(await counter.count == 1)

        // Reused until 60 s before expiry; from then on still served while one refresh runs, whose
        // token is the answer once the old one has expired.
        #expect(try await cache.token(for: "k", now: start.addingTimeInterval(3_539), fetch: fetch) == "token-1")
        #expect(await counter.count == 1)
        #expect(try await cache.token(for: "k", now: start.addingTimeInterval(3_540), fetch: fetch) == "token-1")
        #expect(try await cache.token(for: "k", now: start.addingTimeInterval(3_600), fetch: fetch) == "token-2")
        #expect(await counter.count == 2, "one refresh")
        // Another identity has its own token.
        #expect(try await cache.token(for: "other", now: start, fetch: fetch) == "token-3")
    }

    @Test func tokenCacheMarginAndFailures() async throws {
        let cache = CloudTokenCache()
        let counter = Counter()
        let start = Date(timeIntervalSince1970: 1_000_000)
        // Short-lived tokens keep half their lifetime as margin.
        let shortLived: CloudTokenCache.Fetch = { CloudToken(accessToken: "short-\(await counter.next())", expiresIn: 20) }
        #expect(try await cache.token(for: "k", now: start, fetch: shortLived) == "short-1")
        #expect(try await cache.token(for: "k", now: start.addingTimeInterval(9), fetch: shortLived) == "short-1")
        #expect(await counter.count == 1)
        #expect(try await cache.token(for: "k", now: start.addingTimeInterval(10), fetch: shortLived) == "short-1",
                "due for refresh, still valid")
        #expect(try await cache.token(for: "k", now: start.addingTimeInterval(20), fetch: shortLived) == "short-2",
                "expired: the refresh's token")

        // A failing refresh costs nothing while the token is valid; once it expired, the error shows.
        let valid: CloudTokenCache.Fetch = { CloudToken(accessToken: "valid", expiresIn: 20) }
        let unavailable: CloudTokenCache.Fetch = { () async throws(LLMCloudIdentityError) in
            throw LLMCloudIdentityError("token endpoint answered 503")
        }
        #expect(try await cache.token(for: "r", now: start, fetch: valid) == "valid")
        #expect(try await cache.token(for: "r", now: start.addingTimeInterval(12), fetch: unavailable) == "valid")
        await #expect(throws: LLMCloudIdentityError("token endpoint answered 503")) {
            try await cache.token(for: "r", now: start.addingTimeInterval(25), fetch: unavailable)
        }

        // Failures are not cached.
        await #expect(throws: LLMCloudIdentityError("token endpoint answered 503")) {
            try await cache.token(for: "failing", now: start, fetch: unavailable)
        }
        #expect(try await cache.token(for: "failing", now: start, fetch: valid) == "valid")
    }
}
