/// One upstream streaming event after frame splitting (spec §2.8): what Kong calls an event table
/// `{event, id, data}`. `data` is the payload text exactly as received (a JSON document for every
/// provider, or the `[DONE]` marker); `event`/`id` come from SSE `event:`/`id:` fields only.
public struct StreamEvent: Sendable, Equatable, CustomStringConvertible {
    public var event: String?
    public var id: String?
    public var data: String
    /// An AWS event-stream message's parts, kept beside `data` (Kong's `{headers, body}`
    /// envelope, what its fixtures show) so the Bedrock dialect reads the payload without first
    /// parsing the envelope back. Nil for every other framing.
    public var awsMessage: AWSEventMessage?

    public init(event: String? = nil, id: String? = nil, data: String, awsMessage: AWSEventMessage? = nil) {
        self.event = event
        self.id = id
        self.data = data
        self.awsMessage = awsMessage
    }

    /// The OpenAI end-of-stream marker, also synthesised by the splitter when a JSON-array
    /// stream closes (Kong's `SSE_TERMINATOR`).
    public static let doneMarker = "[DONE]"
    public static let done = StreamEvent(data: doneMarker)

    public var description: String {
        var parts: [String] = []
        if let event { parts.append("event=\(event)") }
        if let id { parts.append("id=\(id)") }
        parts.append("data=\(data)")
        return "{" + parts.joined(separator: " ") + "}"
    }
}

/// One AWS event-stream message as the Bedrock dialect reads it.
public struct AWSEventMessage: Sendable, Equatable {
    /// The `:event-type` header (`messageStart`, `contentBlockDelta`, `metadata`…).
    public var eventType: String?
    /// The payload text (a JSON document for Bedrock's events).
    public var payload: String
}

/// The upstream byte stream cannot be split any further; the request's stream is then over.
public struct StreamSplitError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// Kong's JSON-array iterator message for a body that does not open with `[`.
    public static let invalidArrayStart = StreamSplitError("Invalid start: expected '['")

    /// One event (line, element or message) grew beyond what any real provider sends; refusing it
    /// bounds the memory a misbehaving upstream can pin.
    static func oversized(_ what: String) -> StreamSplitError {
        StreamSplitError("\(what) exceeds \(StreamLimits.maxBufferedBytes) bytes")
    }
}

enum StreamLimits {
    /// The most bytes buffered for one incomplete event. AWS caps event-stream messages at 16 MiB
    /// of payload plus 128 KiB of headers; nothing else comes close.
    static let maxBufferedBytes = 17 << 20
}

/// Byte constants and classes shared by the splitters (ASCII only, so byte-wise tests are exact
/// on UTF-8 input: no multi-byte sequence contains these values).
enum StreamByte {
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let quote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C
    static let openBrace: UInt8 = 0x7B
    static let closeBrace: UInt8 = 0x7D
    static let openBracket: UInt8 = 0x5B
    static let closeBracket: UInt8 = 0x5D

    /// JSON whitespace (also what Kong's `ltrim` strips in practice).
    @inline(__always) static func isWhitespace(_ b: UInt8) -> Bool {
        b == space || b == lf || b == cr || b == tab
    }

    @inline(__always) static func isLineBreak(_ b: UInt8) -> Bool { b == lf || b == cr }
}
