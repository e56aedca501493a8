import Core
import Foundation

/// Splitting mode 2 (spec §2.8): `application/vnd.amazon.eventstream` (Bedrock `converse-stream`).
///
/// Wire format of one message: 4-byte total length, 4-byte headers length, 4-byte prelude CRC,
/// headers (`[name length: 1][name][type: 1][value]`), payload, 4-byte message CRC; integers
/// big-endian. Each message becomes the event `{data: JSON({"headers": {…}, "body": "<payload>"})}`
/// exactly as Kong shapes it. CRCs are not verified (Kong does not either; TLS already protects
/// the bytes).
///
/// Kong assumes every chunk holds whole messages. Here a message may be split anywhere: complete
/// messages are decoded straight from the chunk, and only an incomplete trailing message is copied
/// aside until its declared length has arrived (its prefix is never re-parsed).
struct AWSEventStreamDecoder {
    private var partial: [UInt8] = []

    static let preludeLength = 12
    static let crcLength = 4

    mutating func split(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) throws(StreamSplitError) {
        var i = 0
        let n = bytes.count
        if !partial.isEmpty {
            i = try completePartial(bytes, into: &events)
        }
        while i < n {
            let available = n - i
            guard available >= 4 else { break }
            let total = try AWSEventStreamDecoder.declaredLength(at: i, in: bytes)
            guard available >= total else { break }
            events.append(try AWSEventStreamDecoder.decodeMessage(UnsafeBufferPointer(rebasing: bytes[i..<(i + total)])))
            i += total
        }
        if i < n {
            partial.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i...]))
        }
    }

    /// End of stream: an incomplete message cannot be decoded and is dropped.
    mutating func finish() {
        partial.removeAll()
    }

    /// Tops the buffered message up from `bytes`; returns how many bytes of `bytes` it took.
    private mutating func completePartial(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [StreamEvent]) throws(StreamSplitError) -> Int {
        var taken = 0
        if partial.count < 4 {
            taken = min(4 - partial.count, bytes.count)
            partial.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[..<taken]))
            guard partial.count == 4 else { return taken }
        }
        let total = try partial.withUnsafeBufferPointer { (p) throws(StreamSplitError) in
            try AWSEventStreamDecoder.declaredLength(at: 0, in: p)
        }
        let wanted = min(total - partial.count, bytes.count - taken)
        partial.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[taken..<(taken + wanted)]))
        taken += wanted
        if partial.count == total {
            let message = try partial.withUnsafeBufferPointer { (p) throws(StreamSplitError) in
                try AWSEventStreamDecoder.decodeMessage(p)
            }
            events.append(message)
            partial.removeAll(keepingCapacity: false)
        }
        return taken
    }

    private static func declaredLength(at offset: Int, in bytes: UnsafeBufferPointer<UInt8>) throws(StreamSplitError) -> Int {
        let total = Int(readUInt32(bytes, offset))
        guard total >= preludeLength + crcLength else {
            throw StreamSplitError("invalid AWS event-stream message length \(total)")
        }
        guard total <= StreamLimits.maxBufferedBytes else { throw .oversized("an AWS event-stream message") }
        return total
    }

    /// `message` holds exactly one message.
    static func decodeMessage(_ message: UnsafeBufferPointer<UInt8>) throws(StreamSplitError) -> StreamEvent {
        let headersLength = Int(readUInt32(message, 4))
        let headersEnd = preludeLength + headersLength
        let payloadEnd = message.count - crcLength
        guard headersEnd <= payloadEnd else {
            throw StreamSplitError("invalid AWS event-stream headers length \(headersLength)")
        }
        var headers: [String: JSONValue] = [:]
        var reader = HeaderReader(bytes: message, position: preludeLength, end: headersEnd)
        while reader.position < headersEnd {
            let (name, value) = try reader.next()
            headers[name] = value
        }
        let body = String(decoding: UnsafeBufferPointer(rebasing: message[headersEnd..<payloadEnd]), as: UTF8.self)
        let envelope: JSONValue = ["headers": .object(headers), "body": .string(body)]
        return StreamEvent(data: envelope.serialized(),
                           awsMessage: AWSEventMessage(eventType: headers[":event-type"]?.stringValue, payload: body))
    }

    @inline(__always) static func readUInt32(_ bytes: UnsafeBufferPointer<UInt8>, _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    /// Reads `[name length][name][type][value]` headers. Every type of the format is decoded so
    /// that an unusual header cannot desynchronise the ones after it.
    private struct HeaderReader {
        let bytes: UnsafeBufferPointer<UInt8>
        var position: Int
        let end: Int

        mutating func next() throws(StreamSplitError) -> (String, JSONValue) {
            let nameLength = Int(try take(1)[0])
            let name = String(decoding: try take(nameLength), as: UTF8.self)
            let type = try take(1)[0]
            let value: JSONValue
            switch type {
            case 0: value = .bool(true)
            case 1: value = .bool(false)
            case 2: value = .number(Double(Int8(bitPattern: try take(1)[0])))
            case 3: value = .number(Double(Int16(bitPattern: UInt16(try integer(2)))))
            case 4: value = .number(Double(Int32(bitPattern: UInt32(try integer(4)))))
            case 5, 8: value = .number(Double(Int64(bitPattern: try integer(8))))  // 8: timestamp, ms
            case 6: value = .string(Data(try take(Int(try integer(2)))).base64EncodedString())
            case 7: value = .string(String(decoding: try take(Int(try integer(2))), as: UTF8.self))
            case 9: value = .string(AWSEventStreamDecoder.uuidText(try take(16)))
            default: throw StreamSplitError("unknown AWS event-stream header type \(type)")
            }
            return (name, value)
        }

        private mutating func take(_ count: Int) throws(StreamSplitError) -> UnsafeBufferPointer<UInt8> {
            guard count <= end - position else { throw StreamSplitError("truncated AWS event-stream header") }
            defer { position += count }
            return UnsafeBufferPointer(rebasing: bytes[position..<(position + count)])
        }

        private mutating func integer(_ width: Int) throws(StreamSplitError) -> UInt64 {
            try take(width).reduce(0) { $0 << 8 | UInt64($1) }
        }
    }

    static func uuidText(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { out.append(UInt8(ascii: "-")) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
