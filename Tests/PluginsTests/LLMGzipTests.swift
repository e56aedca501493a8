import CompressNIO
import NIOCore
@testable import Plugins
import Testing

/// ai-proxy's gzip reading (spec §2.8): whole bodies and streams cut anywhere, several members,
/// and the refusals.
struct LLMGzipTests {
    static func gzip(_ text: String) -> [UInt8] {
        var input = ByteBuffer(string: text)
        return Array(((try? input.compress(with: .gzip)) ?? ByteBuffer()).readableBytesView)
    }

    static let text = String(repeating: "data: {\"choices\":[{\"delta\":{\"content\":\"gz\"}}]}\n\n", count: 40)

    @Test func aWholeBodyInflates() throws {
        let body = try LLMGzip.inflate(ByteBuffer(bytes: Self.gzip(Self.text)))
        #expect(String(buffer: body) == Self.text)
    }

    @Test func concatenatedMembersAreAllRead() throws {
        let body = try LLMGzip.inflate(ByteBuffer(bytes: Self.gzip("first ") + Self.gzip("second")))
        #expect(String(buffer: body) == "first second")
    }

    /// The stream cut at every byte (two members, so a cut also falls exactly between them).
    @Test func aStreamCutAnywhereInflatesToTheSameText() throws {
        let compressed = Self.gzip(Self.text) + Self.gzip("tail")
        for cut in 1..<compressed.count {
            let stream = try LLMGzipStream()
            var output = try stream.inflate(ByteBuffer(bytes: compressed[..<cut]))
            var rest = try stream.inflate(ByteBuffer(bytes: compressed[cut...]))
            output.writeBuffer(&rest)
            #expect(String(buffer: output) == Self.text + "tail", "cut at \(cut)")
        }
    }

    @Test func corruptAndTrailingBytesAreRefused() {
        var corrupt = Self.gzip(Self.text)
        corrupt[12] ^= 0xFF
        corrupt[13] ^= 0xFF
        #expect(throws: LLMGzip.Failure.self) { try LLMGzip.inflate(ByteBuffer(bytes: corrupt)) }
        #expect(throws: LLMGzip.Failure.trailingBytes) {
            try LLMGzip.inflate(ByteBuffer(bytes: Self.gzip("x") + Array("garbage".utf8)))
        }
        #expect(throws: LLMGzip.Failure.corrupt) { try LLMGzip.inflate(ByteBuffer(string: "not gzip at all")) }
    }
}
