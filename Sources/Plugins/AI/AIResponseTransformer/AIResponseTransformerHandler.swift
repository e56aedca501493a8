import Core
import NIOCore
import NIOHTTP1

/// ai-response-transformer (spec §4): makes the upstream call itself in the access phase, has the
/// configured LLM transform the upstream's answer, and answers the client with the result — the
/// normal proxying does not happen.
struct AIResponseTransformerHandler: WithoutRewritePhase {
    let introspection: LLMIntrospection

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        let config = introspection.config
        guard let address = context.upstreamAddress else {
            return .exit(.error(500))
        }
        // §4.3-2: the client's request as it stands now (method, path, query, headers, body).
        let body: ByteBuffer?
        do {
            body = try await AIRequestBody.read(context, maxRequestBodySize: config.maxRequestBodySize)
        } catch {
            // As ai-request-transformer answers it (docs/decisions.md): Kong would send the
            // upstream call without the body.
            return LLMIntrospection.Failure.rejected(
                "request body is larger than max_request_body_size (\(config.maxRequestBodySize) bytes)").verdict
        }
        var headers = context.headers
        headers.remove(name: "Transfer-Encoding")
        headers.remove(name: "Content-Length")
        headers.remove(name: "Host")
        // The gateway reads the answer itself: only encodings it can undo.
        headers.replaceOrAdd(name: "Accept-Encoding", value: "gzip, identity")
        let upstream: TransformerCall.Answer
        do {
            upstream = try await TransformerCall.send(method: context.method, to: address, headers: headers,
                                                      body: body, options: config.http)
        } catch {
            return Self.failure(500, error.connecting ? "failed to connect to upstream: \(error)" : "subrequest failed: \(error)")
        }
        // §4.3-3: the whole body, inflated.
        let upstreamBody: ByteBuffer
        do {
            upstreamBody = try upstream.decodedBody()
        } catch {
            return Self.failure(500, "subrequest failed: the upstream's gzip body \(error)")
        }

        // §4.3-4: the LLM's transformation of it.
        let text: String
        let logged = config.logPayloads ? body.map { String(buffer: $0) } ?? "" : nil
        switch await introspection.run(input: String(buffer: upstreamBody), clientInput: logged, context: context) {
        case .success(let answer): text = answer
        case .failure(let failure): return failure.verdict
        }

        // §4.3-5/6: the upstream's headers without the framing ones, then the LLM's instructions.
        var responseHeaders: [(String, String)] = upstream.headers
            .filter { Self.relayable($0.name, $0.value) }
            .map { ($0.name, $0.value) }
        guard config.parseJSONInstructions else {
            return .exit(PluginExit(status: upstream.status, headers: responseHeaders, body: .raw(text)))
        }
        let instructions: JSONValue
        do {
            instructions = try JSONValue.parse(text)
        } catch {
            return Self.failure(500, "failed to parse JSON response instructions from AI backend: \(error)")
        }
        guard let object = instructions.objectValue else {
            return Self.failure(500, "failed to parse JSON response instructions from AI backend: input not table or string")
        }
        // Kong's `kong.response.exit` refuses a status that is no final HTTP status.
        let status: Int
        switch object["status"] {
        case nil, .null?: status = 200
        case .number(let number)? where number.rounded() == number && (200...599).contains(number): status = Int(number)
        default:
            ErrorLog.report("ai-response-transformer: the LLM's instructions carry an invalid status: \(object["status"]!.serialized())")
            return .exit(.error(500))
        }
        let responseBody: String
        var encodedAsJSON = true
        switch object["body"] {
        case .string(let text)?: responseBody = text; encodedAsJSON = false
        case let value? where value != .null: responseBody = value.serialized(.kong)
        default: responseBody = instructions.serialized(.kong)
        }
        for (name, value) in object["headers"]?.objectValue ?? [:] {
            let shown = value.stringValue ?? value.serialized()
            // Framing stays the gateway's; text that is no header is dropped, not sent.
            guard Self.relayable(name, shown) else { continue }
            responseHeaders.removeAll { $0.0.lowercased() == name.lowercased() }
            responseHeaders.append((name, shown))
        }
        // Kong's `kong.response.exit` with a table body: JSON, typed so unless a type was set.
        if encodedAsJSON, !responseHeaders.contains(where: { $0.0.lowercased() == "content-type" }) {
            responseHeaders.append(("Content-Type", "application/json; charset=utf-8"))
        }
        return .exit(PluginExit(status: status, headers: responseHeaders, body: .raw(responseBody)))
    }

    /// Headers the gateway frames itself (length, encoding, hop-by-hop) are not relayed, nor a
    /// name or value that is not valid header text (an LLM wrote it).
    static func relayable(_ name: String, _ value: String) -> Bool {
        let framing: Set<String> = ["content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive",
                                    "upgrade", "te", "trailer", "proxy-connection"]
        guard !name.isEmpty, !framing.contains(name.lowercased()) else { return false }
        let tokenPunctuation = Set("!#$%&'*+-.^_`|~".utf8)
        guard name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || tokenPunctuation.contains($0) })
        else { return false }
        return !value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }
    }

    private static func failure(_ status: Int, _ message: String) -> PluginVerdict {
        .aiError(status, message)
    }
}
