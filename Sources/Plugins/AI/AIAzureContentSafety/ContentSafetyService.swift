import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1

/// Why a content check could not be made (spec §6.3-7). The descriptions are for the error log and
/// never contain the subscription key.
enum ContentSafetyCallError: Error, CustomStringConvertible {
    /// No managed-identity token: the one failure the client is told about.
    case authentication(String)
    /// A `{vault://…}` reference in the URL or key that does not resolve.
    case configuration(String)
    case transport(String)
    case status(UInt, String)
    case answer(ContentSafetyAnswerError)

    var description: String {
        switch self {
        case .authentication(let reason): return "failed to authenticate with Azure Content Services: \(reason)"
        case .configuration(let reason): return reason
        case .transport(let reason): return "content safety request failed: \(reason)"
        case .status(let status, let body): return "bad content safety status: \(status), response: \(body)"
        case .answer(let error): return error.description
        }
    }
}

/// The *Analyze Text* call of one plugin configuration: endpoint, credential and options resolved
/// once per configuration snapshot, one POST per check.
struct ContentSafetyService: Sendable {
    enum Credential: Sendable {
        /// `Ocp-Apim-Subscription-Key`.
        case key(String)
        /// An Entra ID bearer token for `https://cognitiveservices.azure.com/.default`.
        case identity(LLMCloudIdentity)
        /// Neither configured: Azure will refuse, and that is reported as its status.
        case none
    }

    /// `content_safety_url?api-version=…`, or why the URL could not be resolved.
    let endpoint: Result<String, ContentSafetyCallError>
    let credential: Result<Credential, ContentSafetyCallError>
    let options: ContentSafetyAnalysisOptions
    let client: HTTPClient
    /// The key itself, so that no error text repeats it.
    private let secrets: [String]

    static let timeout: TimeAmount = .seconds(60)
    /// Azure's answer is a few hundred bytes; anything past this is not read.
    static let maxAnswerBytes = 1 << 20
    /// How much of a refusing answer reaches the error log.
    static let loggedAnswerBytes = 1024

    /// - Parameters:
    ///   - config: the plugin's validated `config`.
    ///   - environment: serves `{vault://env/…}` references and the Azure identity endpoints.
    init(config: JSONValue, options: ContentSafetyAnalysisOptions, environment: [String: String]) {
        self.options = options
        client = AISideCallClients.client(verifyTLS: config["ssl_verify"]?.boolValue ?? true, proxy: nil,
                                          timeoutMilliseconds: Int(Self.timeout.nanoseconds / 1_000_000))
        let apiVersion = config["azure_api_version"]?.stringValue ?? "2023-10-01"
        endpoint = Self.resolve(config["content_safety_url"], "content_safety_url", environment: environment)
            .map { url in
                let joiner = url.contains("?") ? "&" : "?"
                return url + joiner + "api-version=" + CloudEncoding.percentEncoded(apiVersion)
            }
        if config["azure_use_managed_identity"]?.boolValue == true {
            // The ai-proxy Azure identity, fed the plugin's own fields (same names as `auth.*`).
            var auth: [String: JSONValue] = ["azure_use_managed_identity": true]
            for field in ["azure_client_id", "azure_client_secret", "azure_tenant_id"] {
                if let value = config[field], !value.isNull { auth[field] = value }
            }
            let identity = LLMCloudIdentity.make(provider: .azure, auth: .object(auth), environment: environment)
            credential = .success(identity.map(Credential.identity) ?? .none)
            secrets = []
        } else if let key = config["content_safety_key"], !key.isNull {
            let resolved = Self.resolve(key, "content_safety_key", environment: environment)
            credential = resolved.map(Credential.key)
            secrets = (try? resolved.get()).map { [$0] } ?? []
        } else {
            credential = .success(.none)
            secrets = []
        }
    }

    private static func resolve(_ value: JSONValue?, _ field: String,
                                environment: [String: String]) -> Result<String, ContentSafetyCallError> {
        guard let text = value?.stringValue,
              let resolved = VaultReference.resolve(text, environment: environment) else {
            return .failure(.configuration("could not resolve config.\(field)"))
        }
        return .success(resolved)
    }

    /// Asks Azure about `text` and reads its verdict against the configured categories.
    func analyze(_ text: String) async throws(ContentSafetyCallError) -> ContentSafetyVerdict {
        let url = try endpoint.get()
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        switch try credential.get() {
        case .key(let key):
            request.headers.add(name: "Ocp-Apim-Subscription-Key", value: key)
        case .identity(let identity):
            do {
                // Only AWS signs over the request; an Entra token needs nothing of it.
                let signable = LLMSignableRequest(method: "POST", hostHeader: "", path: "")
                for (name, value) in try await identity.headers(for: signable, region: nil, now: Date()) {
                    request.headers.replaceOrAdd(name: name, value: value)
                }
            } catch {
                throw .authentication(error.message)
            }
        case .none:
            break
        }
        request.body = .bytes(ByteBuffer(bytes: options.requestBody(text: text).serializedBytes(JSONWriteOptions(sortedKeys: false))))

        let status: UInt
        let answer: ByteBuffer
        do {
            let response = try await client.execute(request, timeout: Self.timeout)
            status = response.status.code
            answer = try await response.body.collect(upTo: Self.maxAnswerBytes)
        } catch {
            throw .transport(CloudTokenEndpoint.redacted(String(describing: error), secrets))
        }
        guard status == 200 else {
            let shown = String(decoding: answer.readableBytesView.prefix(Self.loggedAnswerBytes), as: UTF8.self)
            throw .status(status, CloudTokenEndpoint.redacted(shown, secrets))
        }
        do {
            return try ContentSafetyVerdict(answer: answer.readableBytesView, categories: options.categories)
        } catch {
            throw .answer(error)
        }
    }
}
