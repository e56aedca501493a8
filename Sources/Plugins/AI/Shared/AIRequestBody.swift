import Core
import NIOCore

/// The request body as the AI plugins of one request see it (spec §0.2, Kong's shared
/// `parse-request` filter): the first plugin that needs it parses it, later ones reuse that parse,
/// and a plugin that rewrites the messages hands the rewritten object on, so ai-prompt-decorator,
/// ai-prompt-guard and ai-proxy each see the previous one's output without parsing it again.
///
/// The cached parse is tied to `ProxyRequestContext.bodyVersion`: a plugin that replaces the body
/// with raw bytes (ai-prompt-template, ai-request-transformer) makes the next reader parse again.
final class AIRequestBody: @unchecked Sendable {
    private static let key = "ai.request-body"

    /// nil: the body is not a JSON object (or could not be read within the limit).
    private let object: [String: JSONValue]?
    /// The parse with the bytes it was read from; nil when the object was handed on by a plugin.
    /// A skim (`skimNow`) is only this: its object is never handed to a reader of the whole body.
    private let source: JSONSourceObject?
    private let version: Int

    private init(object: [String: JSONValue]?, source: JSONSourceObject? = nil, version: Int) {
        self.object = object
        self.source = source
        self.version = version
    }

    private var isSkim: Bool { source?.kept != nil }

    /// Kong reads a body that spilled past nginx's 8 KiB in-memory buffer only when it is within
    /// `max_request_body_size`; smaller bodies are always read.
    static let inMemoryBodyBuffer = 8192

    /// The raw body within `maxRequestBodySize` (at least the in-memory 8 KiB); nil when there is
    /// none, `RequestBodyTooLarge` when it is larger.
    static func read(_ context: ProxyRequestContext, maxRequestBodySize: Int) async throws -> ByteBuffer? {
        try await context.requestBody(limit: max(inMemoryBodyBuffer, maxRequestBodySize))
    }

    /// `read`, with a body too large treated as none.
    static func raw(_ context: ProxyRequestContext, maxRequestBodySize: Int) async -> ByteBuffer? {
        try? await read(context, maxRequestBodySize: maxRequestBodySize)
    }

    /// The body as a JSON object, parsed once per body version; nil when it is not one, is larger
    /// than the limit, or the request says it is something other than JSON.
    static func object(_ context: ProxyRequestContext, maxRequestBodySize: Int) async -> [String: JSONValue]? {
        if let cached = cached(context), !cached.isSkim { return cached.object }
        return parse(context, raw: await raw(context, maxRequestBodySize: maxRequestBodySize))?.object
    }

    /// `object` without waiting: nil when the body is still arriving (nothing was read then);
    /// otherwise what `object` gives.
    static func objectNow(_ context: ProxyRequestContext, maxRequestBodySize: Int) -> [String: JSONValue]?? {
        if let cached = cached(context), !cached.isSkim { return .some(cached.object) }
        guard let ready = context.requestBodyNow(limit: max(inMemoryBodyBuffer, maxRequestBodySize)) else { return nil }
        return .some(parse(context, raw: try? ready.get())?.object)
    }

    /// `objectNow` for the body's last reader, which needs only the members in `keeping` and
    /// passes the rest on unread (ai-proxy sending an OpenAI-format provider the client's
    /// object): when no plugin parsed the body before, only those members are built, and the
    /// others are copied from the received bytes when the body is encoded (`takeSource`). The
    /// skim is never given to `object`/`objectNow`, which parse again. A nil `object`: not a JSON
    /// object; nil: the body is still arriving.
    static func skimNow(_ context: ProxyRequestContext, maxRequestBodySize: Int,
                        keeping: Set<String>) -> Skimmed? {
        if let cached = cached(context) { return cached.skimmed }
        guard let ready = context.requestBodyNow(limit: max(inMemoryBodyBuffer, maxRequestBodySize)) else { return nil }
        return parse(context, raw: try? ready.get(), keeping: keeping)?.skimmed ?? (nil, nil)
    }

    /// `skimNow`, waiting for the body.
    static func skim(_ context: ProxyRequestContext, maxRequestBodySize: Int, keeping: Set<String>) async -> Skimmed {
        if let cached = cached(context) { return cached.skimmed }
        return parse(context, raw: await raw(context, maxRequestBodySize: maxRequestBodySize), keeping: keeping)?.skimmed
            ?? (nil, nil)
    }

    /// The body's object (nil when it is not a JSON object), and the skim it is when only the
    /// members asked for were built.
    typealias Skimmed = (object: [String: JSONValue]?, skim: JSONSourceObject?)

    private var skimmed: Skimmed { (object, isSkim ? source : nil) }

    private static func cached(_ context: ProxyRequestContext) -> AIRequestBody? {
        guard let cached = context.shared[key] as? AIRequestBody, cached.version == context.bodyVersion,
              context.bodyWasBuffered else { return nil }
        return cached
    }

    /// The current body as parsed from its bytes, when it is a JSON object no plugin has
    /// replaced since (`JSONSourceObject.encode` then copies what a conversion left unchanged),
    /// for a caller about to replace the body: the cached parse is dropped, so the received
    /// bytes are not kept for the rest of the request (a long stream included).
    static func takeSource(_ context: ProxyRequestContext) -> JSONSourceObject? {
        defer { context.shared[key] = nil }
        return cached(context)?.source
    }

    /// Whether the request says its body is JSON (or says nothing).
    private static func isJSON(_ context: ProxyRequestContext) -> Bool {
        let contentType = context.headers.first(name: "content-type")?.lowercased() ?? "application/json"
        return contentType.hasPrefix("application/json") || contentType.isEmpty
    }

    /// Parses `raw` (building only the members in `keeping` when given) and remembers the parse
    /// for the body's version; nil without a body (a body too large to read is not remembered:
    /// another plugin may allow more).
    private static func parse(_ context: ProxyRequestContext, raw: ByteBuffer?, keeping: Set<String>? = nil) -> AIRequestBody? {
        guard let raw else { return nil }
        var source: JSONSourceObject?
        if isJSON(context) {
            if let keeping {
                source = (try? JSONSourceObject(parsing: raw, skimmingAllBut: keeping)) ?? nil
            } else {
                source = (try? JSONSourceObject(parsing: raw)) ?? nil
            }
        }
        let body = AIRequestBody(object: source?.members, source: source, version: context.bodyVersion)
        context.shared[key] = body
        return body
    }

    /// Replaces the body sent upstream with `object` encoded as JSON (Kong's
    /// `set_body(…, "application/json")`), and remembers it as the current parse.
    static func replace(_ context: ProxyRequestContext, with object: [String: JSONValue]) {
        let encoded = JSONValue.object(object).serializedBytes(JSONWriteOptions(sortedKeys: false),
                                                               reservingCapacity: (context.bufferedBody?.readableBytes ?? 0) + 256)
        context.setRequestBody(ByteBuffer(bytes: encoded))
        context.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        context.shared[key] = AIRequestBody(object: object, version: context.bodyVersion)
    }
}
