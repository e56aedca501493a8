/// Turns an upstream streaming body, chunk by chunk, into events (spec §2.8 "Frame → event
/// splitting"). One value per request; state persists between chunks.
///
/// **Mode choice, once per stream.** Kong re-decides for every chunk whether it is NDJSON (the
/// left-trimmed chunk starts with `{` and no SSE tail is pending) or SSE, so the same stream can
/// be parsed differently depending on where the network cut it. Here the mode is fixed once:
/// * `application/vnd.amazon.eventstream` → AWS event-stream messages;
/// * `application/json` → one streamed JSON array (Gemini);
/// * any other supported type, or none → decided by the first non-whitespace byte of the body:
///   `{` selects NDJSON (Cohere, Ollama; Kong's `complete-json` fixture sends it as
///   `text/event-stream`), anything else SSE. Leading whitespace is held until that byte arrives.
///
/// Every mode consumes each byte once and buffers only the incomplete tail (a line, an element, a
/// message), so the events are identical however the body is split, and the cost is linear.
public struct StreamFrameSplitter: Sendable {
    public enum Format: Sendable, Equatable {
        case serverSentEvents, ndjson, jsonArray, awsEventStream
    }

    /// False for an upstream content type §2.8 does not parse: the caller answers with
    /// `StreamEventConverter.unsupportedContentTypeFrame` and `split` yields nothing.
    public let isSupported: Bool
    /// The parsing mode; nil until the first non-whitespace byte when the content type leaves it open.
    public private(set) var format: Format?

    private var undecided: [UInt8] = []
    private var sse = StreamSSEParser()
    private var ndjson = StreamNDJSONSplitter()
    private var jsonArray = StreamJSONArraySplitter()
    private var aws = AWSEventStreamDecoder()

    public init(contentType: String?) {
        switch StreamFrameSplitter.mediaType(contentType) {
        case nil, "", "text/event-stream", "application/stream+json", "application/x-ndjson":
            isSupported = true
            format = nil
        case "application/json":
            isSupported = true
            format = .jsonArray
        case "application/vnd.amazon.eventstream":
            isSupported = true
            format = .awsEventStream
        default:
            isSupported = false
            format = nil
        }
    }

    /// Whether §2.8 parses a stream of this upstream `Content-Type` (parameters ignored, a missing
    /// type included).
    public static func isSupported(contentType: String?) -> Bool {
        StreamFrameSplitter(contentType: contentType).isSupported
    }

    /// The lower-cased media type without parameters.
    static func mediaType(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        let type = contentType.prefix { $0 != ";" }
        let trimmed = type.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()
        return String(trimmed).lowercased()
    }

    /// Puts a JSON-array stream in the state "`[` already consumed, nothing buffered" — how Kong's
    /// unit test feeds the `partial-json-end` fixture, a piece that starts with `,`.
    public mutating func assumeJSONArrayOpened() {
        format = .jsonArray
        jsonArray.assumeOpened()
    }

    /// The events completed by `chunk`. Throws when the body cannot be split any further
    /// (`StreamSplitError.invalidArrayStart`, a corrupt AWS message, an oversized event).
    public mutating func split<Bytes: Collection>(_ chunk: Bytes) throws(StreamSplitError) -> [StreamEvent]
    where Bytes.Element == UInt8 {
        var events: [StreamEvent] = []
        var failure: StreamSplitError?
        let contiguous: Void? = chunk.withContiguousStorageIfAvailable { bytes in
            do throws(StreamSplitError) { try feed(bytes, into: &events) } catch { failure = error }
        }
        if contiguous == nil {
            Array(chunk).withUnsafeBufferPointer { bytes in
                do throws(StreamSplitError) { try feed(bytes, into: &events) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return events
    }

    /// End of the upstream body: releases what only the end can complete (the last SSE line and
    /// event, the last NDJSON line). Incomplete JSON-array elements and AWS messages are dropped.
    public mutating func finish() -> [StreamEvent] {
        var events: [StreamEvent] = []
        switch format {
        case .serverSentEvents: sse.finish(into: &events)
        case .ndjson: ndjson.finish(into: &events)
        case .jsonArray: jsonArray.finish()
        case .awsEventStream: aws.finish()
        case nil: undecided.removeAll()
        }
        return events
    }

    private mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) throws(StreamSplitError) {
        guard isSupported else { return }
        if format == nil {
            guard let first = bytes.firstIndex(where: { !StreamByte.isWhitespace($0) }) else {
                undecided.append(contentsOf: bytes)
                if undecided.count > StreamLimits.maxBufferedBytes { throw .oversized("leading whitespace") }
                return
            }
            format = bytes[first] == StreamByte.openBrace ? .ndjson : .serverSentEvents
            if !undecided.isEmpty {
                // Only whitespace, but SSE gives blank lines meaning, so it is replayed.
                let held = undecided
                undecided = []
                try held.withUnsafeBufferPointer { (held) throws(StreamSplitError) in try route(held, into: &events) }
            }
        }
        try route(bytes, into: &events)
    }

    private mutating func route(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) throws(StreamSplitError) {
        switch format {
        case .serverSentEvents: try sse.split(bytes, into: &events)
        case .ndjson: try ndjson.split(bytes, into: &events)
        case .jsonArray: try jsonArray.split(bytes, into: &events)
        case .awsEventStream: try aws.split(bytes, into: &events)
        case nil: break
        }
    }
}
