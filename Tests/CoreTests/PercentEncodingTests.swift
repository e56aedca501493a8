@testable import Core
import Testing

/// The one percent-encoding the proxy and the plugins share (RFC 3986 §2).
struct PercentEncodingTests {
    @Test func encodesAllButTheUnreservedSetInUpperCaseHex() {
        #expect(PercentEncoding.encode("aZ09-._~".utf8) == "aZ09-._~")
        #expect(PercentEncoding.encode("a b/c?d=é+".utf8) == "a%20b%2Fc%3Fd%3D%C3%A9%2B")
        #expect(PercentEncoding.encode("a/b c".utf8, keepingSlash: true) == "a/b%20c")
        #expect(PercentEncoding.encode([0x00, 0xFF]) == "%00%FF")
    }

    @Test func decodesEscapesOfEitherCaseAndKeepsWhatIsNotOne() {
        #expect(PercentEncoding.decode("a%2fb%2Fc".utf8) == Array("a/b/c".utf8))
        #expect(PercentEncoding.decode("%FF%00".utf8) == [0xFF, 0x00], "bytes that are not UTF-8 survive")
        #expect(PercentEncoding.decode("100%".utf8) == Array("100%".utf8))
        #expect(PercentEncoding.decode("%2".utf8) == Array("%2".utf8))
        #expect(PercentEncoding.decode("%zz%4".utf8) == Array("%zz%4".utf8))
        #expect(PercentEncoding.decode("a+b".utf8) == Array("a+b".utf8), "`+` is only a space in form decoding")
    }

    @Test func decodingUndoesEncodingForEveryByte() {
        let all = (0...255).map(UInt8.init)
        #expect(PercentEncoding.decode(PercentEncoding.encode(all).utf8) == all)
    }

    @Test func queryDecodingAlsoReadsPlusAsASpace() {
        #expect(QueryText.decode("a+b%2Bc%") == "a b+c%")
        #expect(QueryText.pairs("x=1+2&y&&z=%41").map { "\($0.name)=\($0.value ?? "nil")" } == ["x=1 2", "y=nil", "z=A"])
    }
}
