@testable import Plugins
import TestSupport
import Testing

/// The RESP2/RESP3 reader (the Redis strategy's wire format): every type, values split at every
/// byte, and hostile input that must fail cleanly rather than crash.
struct RESPParserTests {
    static let samples: [RESPValue] = [
        .simpleString("OK"), .error("ERR wrong number of arguments"), .integer(-42), .integer(Int64.max),
        .bulkString(Array("12.5".utf8)), .bulkString([]), .bulkString([0x00, 0x0D, 0x0A, 0xFF]), .bulkString(nil),
        .array([]), .array(nil), .array([.integer(1), .bulkString(Array("a".utf8)), .array([.null])]),
        .null, .boolean(true), .boolean(false), .double(1.5), .double(-.infinity), .bigNumber("3492890328409238509324850943850943825024385"),
        .verbatimString("Some string"), .map([RESPPair(key: .simpleString("first"), value: .integer(1))]),
        .set([.simpleString("a"), .integer(2)]), .push([.bulkString(Array("message".utf8))]),
    ]

    @Test(arguments: samples)
    func everyTypeRoundTrips(_ value: RESPValue) throws {
        let bytes = value.encoded
        let parsed = try #require(try RESPParser.parse(bytes))
        #expect(parsed.value == value)
        #expect(parsed.end == bytes.count)
    }

    @Test(arguments: samples)
    func anIncompleteValueIsNotAValueYet(_ value: RESPValue) throws {
        let bytes = value.encoded
        for cut in 0..<bytes.count {
            #expect(try RESPParser.parse(Array(bytes[..<cut])) == nil, "cut at \(cut) of \(bytes.count)")
        }
    }

    @Test func valuesFollowingEachOtherAreReadInOrder() throws {
        let bytes = Self.samples.flatMap(\.encoded)
        var index = 0
        var read: [RESPValue] = []
        while let (value, end) = try RESPParser.parse(bytes, from: index) {
            read.append(value)
            index = end
        }
        #expect(read == Self.samples)
        #expect(index == bytes.count)
    }

    @Test func attributesAreSkipped() throws {
        let bytes = Array("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n:7\r\n".utf8)
        #expect(try RESPParser.parse(bytes)?.value == .integer(7))
    }

    @Test(arguments: [
        ("?x\r\n", "unknown type byte 0x3f"), (":12a\r\n", "invalid integer '12a'"), ("$-2\r\n", "invalid length -2"),
        ("$3\r\nabcd\r\n", "bulk string without its CRLF"), ("+OK\rX", "CR without LF"), ("+OK\n", "LF without CR"),
        ("#x\r\n", "invalid boolean 'x'"), ("*99999999999\r\n", "invalid length 99999999999"), ("_x\r\n", "invalid null"),
    ])
    func malformedInputIsAProtocolError(_ input: String, _ reason: String) {
        #expect(throws: RESPParser.ProtocolError(description: reason)) { try RESPParser.parse(Array(input.utf8)) }
    }

    @Test func nestingIsBounded() {
        let deep = Array((String(repeating: "*1\r\n", count: 40) + ":1\r\n").utf8)
        #expect(throws: RESPParser.ProtocolError(description: "nesting too deep")) { try RESPParser.parse(deep) }
    }

    /// Property: random values (seeded), encoded, read back whole and from any split.
    @Test func randomValuesRoundTripFromAnySplit() throws {
        var rng = SplitMix64(seed: 0x5EED)
        for _ in 0..<300 {
            let value = Self.random(&rng, depth: 0)
            let bytes = value.encoded
            #expect(try RESPParser.parse(bytes)?.value == value)
            let cut = Int(rng.next() % UInt64(bytes.count))
            #expect(try RESPParser.parse(Array(bytes[..<cut])) == nil)
        }
    }

    /// Fuzz: random bytes and corrupted encodings never crash the reader; each is a value,
    /// incomplete, or a protocol error.
    @Test func arbitraryBytesNeverCrash() {
        var rng = SplitMix64(seed: 0xF022)
        let alphabet = Array("+-:$*_#,(!=%~>|\r\n0123456789-abc".utf8)
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(rng.next() % 40)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            } else {
                bytes = Self.random(&rng, depth: 0).encoded
                let flip = Int(rng.next() % UInt64(bytes.count))
                bytes[flip] = UInt8(truncatingIfNeeded: rng.next())
            }
            _ = try? RESPParser.parse(bytes)
        }
    }

    static func random(_ rng: inout SplitMix64, depth: Int) -> RESPValue {
        let leaf = depth >= 3
        switch rng.next() % (leaf ? 8 : 12) {
        case 0: return .simpleString("s\(rng.next() % 1000)")
        case 1: return .error("ERR \(rng.next() % 10)")
        case 2: return .integer(Int64(bitPattern: rng.next()))
        case 3: return .bulkString((0..<Int(rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        case 4: return .bulkString(nil)
        case 5: return .boolean(rng.next() % 2 == 0)
        case 6: return .double(Double(rng.next() % 100_000) / 8)
        case 7: return .null
        case 8: return .array((0..<Int(rng.next() % 4)).map { _ in random(&rng, depth: depth + 1) })
        case 9: return .set((0..<Int(rng.next() % 4)).map { _ in random(&rng, depth: depth + 1) })
        case 10: return .map((0..<Int(rng.next() % 3)).map { _ in RESPPair(key: random(&rng, depth: depth + 1), value: random(&rng, depth: depth + 1)) })
        default: return .push((0..<Int(rng.next() % 3)).map { _ in random(&rng, depth: depth + 1) })
        }
    }
}

