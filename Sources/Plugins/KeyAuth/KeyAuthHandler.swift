import Core
import Foundation
import NIOCore
import NIOHTTP1

/// key-auth at request time (spec §9): finds the API key, authenticates the consumer, sets the
/// consumer headers upstream, or answers 401 — or falls back to the `anonymous` consumer.
struct KeyAuthHandler: WithoutRewritePhase {
    let keyNames: [String]
    let hideCredentials: Bool
    let anonymous: String?
    let keyInHeader: Bool
    let keyInQuery: Bool
    let keyInBody: Bool
    let runOnPreflight: Bool
    let realm: String?
    let directory: GatewayDirectory
    let now: @Sendable () -> Int

    init(config: JSONValue, directory: GatewayDirectory, now: @escaping @Sendable () -> Int = KeyAuthHandler.unixTime) {
        keyNames = config["key_names"]?.arrayValue?.compactMap(\.stringValue) ?? ["apikey"]
        hideCredentials = config["hide_credentials"]?.boolValue ?? false
        anonymous = config["anonymous"]?.stringValue
        keyInHeader = config["key_in_header"]?.boolValue ?? true
        keyInQuery = config["key_in_query"]?.boolValue ?? true
        keyInBody = config["key_in_body"]?.boolValue ?? false
        runOnPreflight = config["run_on_preflight"]?.boolValue ?? true
        realm = config["realm"]?.stringValue
        self.directory = directory
        self.now = now
    }

    @Sendable static func unixTime() -> Int { Int(Date().timeIntervalSince1970) }

    enum Failure {
        case noKey, duplicate, unauthorized
        var message: String {
            switch self {
            case .noKey: return "No API key found in request"
            case .duplicate: return "Duplicate API key found"
            case .unauthorized: return "Unauthorized"
            }
        }
    }

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        if skips(context) { return .proceed }
        // The body is read only when key_in_body is on: nothing is buffered otherwise.
        var body: ByteBuffer?
        if keyInBody { body = try? await context.requestBody() }
        return decide(context, body: body)
    }

    /// Without waiting when the body is not needed or has already arrived whole.
    func accessNow(_ context: ProxyRequestContext) -> PluginVerdict? {
        if skips(context) { return .proceed }
        var body: ByteBuffer?
        if keyInBody {
            guard let ready = context.requestBodyNow() else { return nil }
            body = try? ready.get()
        }
        return decide(context, body: body)
    }

    private func skips(_ context: ProxyRequestContext) -> Bool {
        if !runOnPreflight && context.method == .OPTIONS { return true }
        // Logical OR with other auth plugins: someone already authenticated the request.
        return anonymous != nil && context.credentialID != nil
    }

    private func decide(_ context: ProxyRequestContext, body: ByteBuffer?) -> PluginVerdict {
        switch authenticate(context, body: body) {
        case .success: return .proceed
        case .failure(let failure):
            guard let anonymous else {
                let challenge = realm.map { "Key realm=\"\($0)\"" } ?? "Key"
                return .exit(.error(401, failure.message, headers: [("WWW-Authenticate", challenge)]))
            }
            guard let consumer = directory.consumer(idOrUsername: anonymous) else {
                return .exit(.error(500, "anonymous consumer \(anonymous) is configured but doesn't exist"))
            }
            setConsumerHeaders(context, consumer: consumer)
            context.headers.remove(name: "X-Credential-Identifier")
            context.headers.replaceOrAdd(name: "X-Anonymous-Consumer", value: "true")
            context.consumer = consumer
            context.isAnonymous = true
            return .proceed
        }
    }

    enum Outcome { case success, failure(Failure) }

    private func authenticate(_ context: ProxyRequestContext, body: ByteBuffer?) -> Outcome {
        var found: (key: String, name: String)?
        let bodyFields = body.flatMap {
            RequestBodyFields(contentType: context.headers.first(name: "content-type"), body: $0)
        }
        // Decoded on first need (not when a header holds the key), then once for all key names.
        var queryArguments: [(name: String, value: String?)]?
        for name in keyNames {
            if keyInHeader {
                // As Kong's `get_headers()[name]`: case-insensitive, `-` and `_` alike.
                let values = context.headerValues(name)
                if values.count > 1 { return .failure(.duplicate) }
                if let value = values.first { found = (value, name); break }
            }
            if keyInQuery {
                if queryArguments == nil { queryArguments = context.queryArguments }
                let values = queryArguments!.filter { $0.name == name }
                if values.count > 1 { return .failure(.duplicate) }
                if let argument = values.first {
                    // A bare `?apikey` is not a string in Kong: this name yields no key, and the
                    // next key name is tried (the body is not looked at for this one).
                    guard let value = argument.value else { continue }
                    found = (value, name)
                    break
                }
            }
            // Kong's `type(v)`: a string is the key, a table a duplicate; a number, boolean or
            // null is no key (the next name is tried).
            if let bodyFields {
                switch bodyFields.value(of: name) {
                case .string(let value): found = (value, name)
                case .several: return .failure(.duplicate)
                case .absent, .other: continue
                }
                break
            }
        }
        guard let found, !found.key.isEmpty else { return .failure(.noKey) }
        guard let credential = directory.keyAuthCredential(key: found.key), credential.isValid(at: now()) else {
            return .failure(.unauthorized)
        }
        guard let consumer = directory.consumer(id: credential.consumerID) else { return .failure(.unauthorized) }
        if hideCredentials {
            // Wherever the key was found, Kong clears the name from the headers, the query and
            // (with `key_in_body`) the body: a copy of the key sent in a second place is not
            // passed on either.
            context.removeHeaders(matching: found.name)
            if context.hasQueryArgument(found.name) { context.removeQueryArgument(found.name) }
            if let bodyFields, bodyFields.value(of: found.name) != .absent {
                context.setRequestBody(bodyFields.removing(found.name))
            }
        }
        setConsumerHeaders(context, consumer: consumer)
        context.headers.replaceOrAdd(name: "X-Credential-Identifier", value: credential.id)
        context.headers.remove(name: "X-Anonymous-Consumer")
        context.consumer = consumer
        context.credentialID = credential.id
        return .success
    }

    private func setConsumerHeaders(_ context: ProxyRequestContext, consumer: Consumer) {
        context.headers.replaceOrAdd(name: "X-Consumer-ID", value: consumer.id)
        if let customID = consumer.customID {
            context.headers.replaceOrAdd(name: "X-Consumer-Custom-ID", value: customID)
        } else {
            context.headers.remove(name: "X-Consumer-Custom-ID")
        }
        if let username = consumer.username {
            context.headers.replaceOrAdd(name: "X-Consumer-Username", value: username)
        } else {
            context.headers.remove(name: "X-Consumer-Username")
        }
    }
}
