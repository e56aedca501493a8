/// Splitting mode 4 (spec §2.8): `text/event-stream`.
///
/// Field rules follow Kong: `event`, `id` and `data` are recognised, the value is everything after
/// the first `:` with leading blanks removed, lines starting with `:` (comments) and lines without
/// a colon are ignored, a blank line dispatches the event, and an event without `data` produces
/// nothing (Kong hands it to the driver, which drops it).
///
/// Where Kong depends on how the upstream happened to chunk the stream, this parser does not:
/// * Kong keeps an unterminated last line as a "truncated tail" and glues it to the next chunk;
///   here every line is simply buffered until its terminator, wherever chunks end.
/// * Kong dispatches at the end of *every chunk* that ends in `\n`, even without a blank line, and
///   within one chunk a second `data:` line overwrites the first. Here a second `data:` line in
///   the same event dispatches the first one (keeping its `event`/`id`), so no payload is ever
///   overwritten, with or without blank lines, in any chunking.
/// * Lines end at `\n`, `\r\n` or a lone `\r` (the SSE standard; Kong only splits on `\n` and so
///   never sees the blank line of a CRLF stream). A `\r` ending one chunk and a `\n` starting the
///   next are one terminator.
/// * End of stream (`finish`) ends the last line and dispatches a pending event; Kong drops both
///   (its `text-event-stream` fixture pins that a single call does not emit the unterminated
///   `data: [DONE]`, which holds here too until `finish`).
struct StreamSSEParser {
    private var partialLine: [UInt8] = []
    /// The previous chunk ended with `\r`: a `\n` opening this one belongs to that terminator.
    private var skipLeadingLF = false
    private var event: String?
    private var id: String?
    private var data: String?

    mutating func split(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) throws(StreamSplitError) {
        let n = bytes.count
        var i = 0
        if skipLeadingLF, n > 0 {
            skipLeadingLF = false
            if bytes[0] == StreamByte.lf { i = 1 }
        }
        var lineStart = i
        while i < n {
            let b = bytes[i]
            guard StreamByte.isLineBreak(b) else {
                i += 1
                continue
            }
            if partialLine.isEmpty {
                handleLine(UnsafeBufferPointer(rebasing: bytes[lineStart..<i]), into: &events)
            } else {
                partialLine.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[lineStart..<i]))
                partialLine.withUnsafeBufferPointer { handleLine($0, into: &events) }
                partialLine.removeAll(keepingCapacity: true)
            }
            i += 1
            if b == StreamByte.cr {
                if i < n {
                    if bytes[i] == StreamByte.lf { i += 1 }
                } else {
                    skipLeadingLF = true
                }
            }
            lineStart = i
        }
        if lineStart < n {
            partialLine.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[lineStart...]))
            if partialLine.count > StreamLimits.maxBufferedBytes { throw .oversized("an SSE line") }
        }
    }

    /// End of stream: the unterminated last line counts as a line, then a pending event is sent.
    mutating func finish(into events: inout [StreamEvent]) {
        if !partialLine.isEmpty {
            let line = partialLine
            partialLine.removeAll()
            line.withUnsafeBufferPointer { handleLine($0, into: &events) }
        }
        dispatch(into: &events)
        skipLeadingLF = false
    }

    private mutating func handleLine(_ line: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) {
        if line.isEmpty {
            dispatch(into: &events)
            return
        }
        // A colon at position 0 is a comment; no colon at all is a field Kong ignores.
        guard let colon = line.firstIndex(of: StreamByte.colon), colon > 0 else { return }
        var valueStart = colon + 1
        while valueStart < line.count, StreamByte.isWhitespace(line[valueStart]) { valueStart += 1 }
        let value = UnsafeBufferPointer(rebasing: line[valueStart...])
        switch Field(UnsafeBufferPointer(rebasing: line[..<colon])) {
        case .data:
            if data != nil {
                let keptEvent = event, keptID = id
                dispatch(into: &events)
                event = keptEvent
                id = keptID
            }
            data = String(decoding: value, as: UTF8.self)
        case .event:
            event = String(decoding: value, as: UTF8.self)
        case .id:
            id = String(decoding: value, as: UTF8.self)
        case .other:
            break
        }
    }

    private mutating func dispatch(into events: inout [StreamEvent]) {
        if let data {
            events.append(StreamEvent(event: event, id: id, data: data))
        }
        event = nil
        id = nil
        data = nil
    }

    private enum Field {
        case data, event, id, other

        init(_ name: UnsafeBufferPointer<UInt8>) {
            if name.elementsEqual("data".utf8) {
                self = .data
            } else if name.elementsEqual("event".utf8) {
                self = .event
            } else if name.elementsEqual("id".utf8) {
                self = .id
            } else {
                self = .other
            }
        }
    }
}
