import Core
import NIOCore

/// ai-request-transformer (spec §3): the client's raw body goes to the configured LLM with the
/// plugin's prompt; the LLM's answer (or the part the extract pattern picks) becomes the body the
/// upstream receives — or the body later AI plugins (ai-proxy) read.
struct AIRequestTransformerHandler: WithoutRewritePhase {
    let introspection: LLMIntrospection

    func access(_ context: ProxyRequestContext) async -> PluginVerdict {
        let config = introspection.config
        let raw: ByteBuffer?
        do {
            raw = try await AIRequestBody.read(context, maxRequestBodySize: config.maxRequestBodySize)
        } catch {
            return LLMIntrospection.Failure.rejected(
                "request body is larger than max_request_body_size (\(config.maxRequestBodySize) bytes)").verdict
        }
        let input = raw.map { String(buffer: $0) } ?? ""
        switch await introspection.run(input: input, context: context) {
        case .success(let text):
            // §3.3-7: raw text; Content-Type as the client sent it; the length follows the body.
            context.setRequestBody(ByteBuffer(string: text))
            return .proceed
        case .failure(let failure):
            return failure.verdict
        }
    }
}
