import Core

/// ai-proxy's body filter for one streamed 200 response in non-preserve mode (spec §2.8): upstream
/// chunks in (already inflated), client frames out. Wires a `StreamFrameSplitter` to a
/// `StreamEventConverter` and applies the two ways a stream ends early:
/// * an upstream content type §2.8 does not parse: the first non-empty chunk is replaced by
///   `StreamEventConverter.unsupportedContentTypeFrame` and the response ends (Kong);
/// * a body that cannot be split (a Gemini body not opening with `[`, a corrupt AWS message): the
///   same frame, then the end. Kong logs and drops such chunks, leaving the client waiting for
///   events that never come; a readable error is the better end.
///
/// Observing (`LLMNativeStreamUsage`), the same reading only counts: no frame is built or
/// returned, and a stream that cannot be read stops the counting, never the response.
public struct StreamNormalizer: Sendable {
    public private(set) var splitter: StreamFrameSplitter
    public private(set) var converter: StreamEventConverter
    /// Set once the response must end: later chunks produce nothing.
    public private(set) var ended = false
    /// Why the stream ended early, when it did because the body could not be split.
    public private(set) var splitError: StreamSplitError?
    /// Only the analytics are wanted: nothing goes to the client from here.
    private let observing: Bool

    public init(contentType: String?, route: LLMRouteType, model: LLMModelConfig,
                accumulateText: Bool = false, inspectPassthrough: Bool = true, includeUsage: Bool = false) {
        splitter = StreamFrameSplitter(contentType: contentType)
        converter = StreamEventConverter(route: route, model: model, accumulateText: accumulateText,
                                         inspectPassthrough: inspectPassthrough, includeUsage: includeUsage)
        observing = false
    }

    /// A reader that observes a stream the client gets unchanged.
    init(observing contentType: String?, model: LLMModelConfig, accumulateText: Bool) {
        splitter = StreamFrameSplitter(contentType: contentType)
        converter = StreamEventConverter(route: .chat, model: model, accumulateText: accumulateText,
                                         inspectPassthrough: false)
        observing = true
    }

    /// The client bytes for one upstream chunk (possibly none).
    public mutating func process<Bytes: Collection>(_ chunk: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        guard !ended, !chunk.isEmpty else { return [] }
        guard splitter.isSupported else {
            ended = true
            return observing ? [] : StreamEventConverter.unsupportedContentTypeFrame
        }
        do {
            return read(try splitter.split(chunk))
        } catch {
            ended = true
            splitError = error
            return observing ? [] : StreamEventConverter.unsupportedContentTypeFrame
        }
    }

    /// The client bytes completed by the end of the upstream body.
    public mutating func finish() -> [UInt8] {
        guard !ended else { return [] }
        ended = true
        return read(splitter.finish())
    }

    private mutating func read(_ events: [StreamEvent]) -> [UInt8] {
        if observing {
            converter.observe(events)
            return []
        }
        return converter.convert(events)
    }
}
