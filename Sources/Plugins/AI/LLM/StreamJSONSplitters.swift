/// Follows the nesting of one JSON value byte by byte, without parsing it, so a splitter can tell
/// where the value ends however the stream is chunked. String- and escape-aware: brackets and
/// quotes inside strings do not count. Malformed input still terminates (at a bracket that brings
/// the depth back to zero); the event converter then rejects the text.
struct StreamJSONNesting {
    private var depth = 0
    private var inString = false
    private var escaped = false

    /// Starts tracking a value whose first byte is `first`. False for a bare literal (number,
    /// `true`, garbage…), which has no closing byte: its end is the caller's delimiter.
    mutating func begin(_ first: UInt8) -> Bool {
        escaped = false
        switch first {
        case StreamByte.openBrace, StreamByte.openBracket:
            depth = 1
            inString = false
            return true
        case StreamByte.quote:
            depth = 0
            inString = true
            return true
        default:
            return false
        }
    }

    /// Feeds the next byte of the value; true when that byte completes it.
    @inline(__always) mutating func completes(with b: UInt8) -> Bool {
        if inString {
            if escaped {
                escaped = false
            } else if b == StreamByte.backslash {
                escaped = true
            } else if b == StreamByte.quote {
                inString = false
                return depth == 0
            }
            return false
        }
        switch b {
        case StreamByte.quote: inString = true
        case StreamByte.openBrace, StreamByte.openBracket: depth += 1
        case StreamByte.closeBrace, StreamByte.closeBracket:
            depth -= 1
            return depth == 0
        default: break
        }
        return false
    }
}

/// The bytes of a value that started in an earlier chunk. Each chunk's share is copied once, so
/// a value split into many chunks costs its length, never a re-scan.
struct StreamPendingBytes {
    private var bytes: [UInt8] = []

    var isEmpty: Bool { bytes.isEmpty }

    mutating func keep(_ chunk: UnsafeBufferPointer<UInt8>, from start: Int, what: String) throws(StreamSplitError) {
        guard start < chunk.count else { return }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[start...]))
        if bytes.count > StreamLimits.maxBufferedBytes { throw .oversized(what) }
    }

    /// The pending bytes followed by `chunk[range]` as text, trailing spaces/tabs dropped when
    /// `trimTrailing`; the pending bytes are consumed.
    mutating func take(_ chunk: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, trimTrailing: Bool = false) -> String {
        if bytes.isEmpty {
            return StreamPendingBytes.text(UnsafeBufferPointer(rebasing: chunk[range]), trimTrailing: trimTrailing)
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[range]))
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes.withUnsafeBufferPointer { StreamPendingBytes.text($0, trimTrailing: trimTrailing) }
    }

    /// Whatever is pending, as text (end of stream); consumed.
    mutating func takeAll(trimTrailing: Bool) -> String? {
        guard !bytes.isEmpty else { return nil }
        defer { bytes.removeAll() }
        return bytes.withUnsafeBufferPointer { StreamPendingBytes.text($0, trimTrailing: trimTrailing) }
    }

    mutating func reset() { bytes.removeAll() }

    private static func text(_ bytes: UnsafeBufferPointer<UInt8>, trimTrailing: Bool) -> String {
        var end = bytes.count
        if trimTrailing {
            while end > 0, StreamByte.isWhitespace(bytes[end - 1]) { end -= 1 }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
    }
}

/// Splitting mode 1 (spec §2.8): the body is one JSON array delivered in pieces (Gemini
/// `streamGenerateContent` without `alt=sse`). Each complete top-level element becomes an event
/// (its text trimmed, inner bytes untouched); the closing `]` adds `[DONE]` and the scanner
/// expects a new `[` afterwards, as Kong's iterator resets.
///
/// Elements are delimited by their own closing bracket/quote, not by the following comma, so an
/// element is released as soon as it is complete (the `partial-json-beginning` fixture ends
/// without a comma). Separating commas are skipped wherever they appear, which also lets a piece
/// start with `,` (the `partial-json-end` fixture).
struct StreamJSONArraySplitter {
    private enum State { case expectOpen, betweenElements, inValue, inBareValue, failed }
    private var state = State.expectOpen
    private var nesting = StreamJSONNesting()
    private var pending = StreamPendingBytes()

    /// State of a stream whose `[` was consumed and whose previous element was complete.
    mutating func assumeOpened() {
        state = .betweenElements
        pending.reset()
    }

    mutating func split(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) throws(StreamSplitError) {
        let n = bytes.count
        var i = 0
        var valueStart = 0  // an element continued from the previous chunk starts at 0
        while i < n {
            switch state {
            case .failed:
                throw .invalidArrayStart
            case .expectOpen:
                let b = bytes[i]
                if StreamByte.isWhitespace(b) { i += 1; continue }
                guard b == StreamByte.openBracket else {
                    state = .failed
                    throw .invalidArrayStart
                }
                state = .betweenElements
                i += 1
            case .betweenElements:
                let b = bytes[i]
                if StreamByte.isWhitespace(b) || b == StreamByte.comma { i += 1; continue }
                if b == StreamByte.closeBracket {
                    events.append(.done)
                    state = .expectOpen
                    i += 1
                    continue
                }
                valueStart = i
                i += 1
                state = nesting.begin(b) ? .inValue : .inBareValue
            case .inValue:
                while i < n {
                    let b = bytes[i]
                    i += 1
                    if nesting.completes(with: b) {
                        events.append(StreamEvent(data: pending.take(bytes, valueStart..<i)))
                        state = .betweenElements
                        break
                    }
                }
            case .inBareValue:
                // A literal ends at the next delimiter, which betweenElements then consumes.
                while i < n {
                    let b = bytes[i]
                    if StreamByte.isWhitespace(b) || b == StreamByte.comma || b == StreamByte.closeBracket {
                        events.append(StreamEvent(data: pending.take(bytes, valueStart..<i)))
                        state = .betweenElements
                        break
                    }
                    i += 1
                }
            }
        }
        if state == .inValue || state == .inBareValue {
            try pending.keep(bytes, from: valueStart, what: "a JSON array element")
        }
    }

    /// End of stream: an element still open is incomplete and dropped (there is no `]` either).
    mutating func finish() {
        pending.reset()
        if state != .failed { state = .expectOpen }
    }
}

/// Splitting mode 3 (spec §2.8): newline-delimited JSON (Cohere, Ollama). Kong emits one event per
/// non-empty line of each chunk, which breaks when a chunk ends mid-line. Here a line ends an
/// event wherever it falls, and an object or array also ends its event at its closing bracket,
/// so the last line needs no trailing newline (the `complete-json` fixture) and two objects on one
/// line are two events. A line that is neither (garbage, a bare literal) is one event, trailing
/// blanks trimmed.
struct StreamNDJSONSplitter {
    private enum State { case idle, inValue, inBareValue }
    private var state = State.idle
    private var nesting = StreamJSONNesting()
    private var pending = StreamPendingBytes()

    mutating func split(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) throws(StreamSplitError) {
        let n = bytes.count
        var i = 0
        var valueStart = 0
        while i < n {
            switch state {
            case .idle:
                let b = bytes[i]
                if StreamByte.isWhitespace(b) { i += 1; continue }
                valueStart = i
                i += 1
                state = nesting.begin(b) ? .inValue : .inBareValue
            case .inValue:
                while i < n {
                    let b = bytes[i]
                    if StreamByte.isLineBreak(b) {
                        // NDJSON values never span lines: a value still open here is malformed
                        // and goes out as is (the converter drops it), as Kong's line split does.
                        events.append(StreamEvent(data: pending.take(bytes, valueStart..<i, trimTrailing: true)))
                        state = .idle
                        break
                    }
                    i += 1
                    if nesting.completes(with: b) {
                        events.append(StreamEvent(data: pending.take(bytes, valueStart..<i)))
                        state = .idle
                        break
                    }
                }
            case .inBareValue:
                while i < n {
                    if StreamByte.isLineBreak(bytes[i]) {
                        events.append(StreamEvent(data: pending.take(bytes, valueStart..<i, trimTrailing: true)))
                        state = .idle
                        break
                    }
                    i += 1
                }
            }
        }
        if state != .idle {
            try pending.keep(bytes, from: valueStart, what: "an NDJSON line")
        }
    }

    /// End of stream ends the last line.
    mutating func finish(into events: inout [StreamEvent]) {
        if state != .idle, let text = pending.takeAll(trimTrailing: true), !text.isEmpty {
            events.append(StreamEvent(data: text))
        }
        state = .idle
    }
}
