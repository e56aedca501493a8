import NIOCore
import TestSupport
import Testing
@testable import Core

/// Skims (`JSONSourceObject(parsing:skimmingAllBut:)`): only the kept members are built; the
/// others are copied from the received bytes when encoded, so a skim must never copy what the
/// full parse would have written differently.
struct JSONSkimTests {
    static let kept: Set<String> = ["model", "stream"]

    @Test func aSkimBuildsOnlyTheKeptMembersAndCopiesTheRest() throws {
        let text = #"{"model": "m", "messages": [ {"role":"user","content":"caf\u00e9 \ud83d\ude00 é \/"} ],"#
            + #" "n": null, "f": false, "t": 0.7, "stream": true, "tools": {}}"#
        let skim = try #require(try JSONSourceObject(parsing: ByteBuffer(string: text), skimmingAllBut: Self.kept))
        #expect(skim.kept == Self.kept)
        #expect(skim.members == ["model": "m", "stream": true, "messages": true, "n": nil, "f": false, "t": true, "tools": true],
                "members not kept stand in as their Lua truthiness")
        var object = skim.members
        object["model"] = "other"
        object["tools"] = nil
        let encoded = String(decoding: skim.encode(object), as: UTF8.self)
        #expect(encoded.contains(#""messages":[ {"role":"user","content":"caf\u00e9 \ud83d\ude00 é \/"} ]"#), "\(encoded)")
        #expect(encoded.contains(#""t":0.7"#) && encoded.contains(#""model":"other""#) && !encoded.contains("tools"), "\(encoded)")
        var expected = try #require(try JSONSourceObject(parsing: ByteBuffer(string: text))).members
        expected["model"] = "other"
        expected["tools"] = nil
        #expect(try JSONValue.parse(encoded) == .object(expected), "the skim sends what the whole parse would")
    }

    /// A member not kept whose bytes the writer would write otherwise cannot be copied, and the
    /// skim has no value to write for it: the whole object is parsed instead.
    @Test func aSkimParsesEverythingWhenAMemberNotKeptCannotBeCopied() throws {
        let lenient: [[UInt8]] = [
            Array(#""a"#.utf8) + [0x0A] + Array(#"b""#.utf8),           // a raw control character
            Array(#""x"#.utf8) + [0xFF] + Array(#"y""#.utf8),           // invalid UTF-8
            Array(#"[{"k"#.utf8) + [0xC3] + Array(#"": 1}]"#.utf8),     // invalid UTF-8 in a nested key
            Array(#"{"k"#.utf8) + [0x01] + Array(#"": 1}"#.utf8),       // a control character in a nested key
            Array(#""\ud800""#.utf8), Array(#""\udc00x""#.utf8), Array(#""\ud800\u0041""#.utf8),  // lone surrogates
            Array("1.0".utf8), Array("-0".utf8), Array("1e2".utf8), Array("007".utf8), Array("[1, 2.50]".utf8),
        ]
        for value in lenient {
            let bytes = Array(#"{"model":"m","messages":"#.utf8) + value + Array("}".utf8)
            let skim = try #require(try JSONSourceObject(parsing: ByteBuffer(bytes: bytes), skimmingAllBut: Self.kept))
            let whole = try #require(try JSONSourceObject(parsing: ByteBuffer(bytes: bytes)))
            #expect(skim.kept == nil, "\(String(decoding: value, as: UTF8.self))")
            #expect(skim.members == whole.members)
            #expect(skim.encode(["messages": whole.members["messages"]!]) == whole.encode(["messages": whole.members["messages"]!]))
        }
        let copyable: [String] = [#""\ud83d\ude00 é \u00e9 \/ \n""#, "12.75", "-3", "0", "[1, 0.5, {\"x\": null}]", "true", "null", #"{"é": "€"}"#]
        for value in copyable {
            let skim = try #require(try JSONSourceObject(parsing: ByteBuffer(string: #"{"messages": "# + value + "}"), skimmingAllBut: Self.kept))
            #expect(skim.kept == Self.kept, "\(value) is copied as received")
            #expect(String(decoding: skim.encode(skim.members), as: UTF8.self) == #"{"messages":"# + value + "}")
        }
    }

    /// Whatever the bytes, a member encoded from a skim is what the whole parse encodes: seeded
    /// random documents mixing every spelling a string, key or number can have.
    @Test func aSkimEncodesEveryMemberAsTheWholeParseDoes() throws {
        let pieces: [[UInt8]] = [
            Array("a".utf8), Array("é".utf8), Array("😀".utf8), Array(#"\u00e9"#.utf8), Array(#"\ud83d\ude00"#.utf8),
            Array(#"\ud800"#.utf8), Array(#"\udc00"#.utf8), Array(#"\n"#.utf8), Array(#"\/"#.utf8), Array(#"\""#.utf8),
            [0x0A], [0x1F], [0xFF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xC0, 0x80], [0x7F],
        ]
        let numbers = ["0", "12", "-3", "0.5", "1.0", "-0", "1e2", "007", "12.75", "1E-7"]
        var random = SplitMix64(seed: 0x5EED)
        func string() -> [UInt8] {
            var out: [UInt8] = [0x22]
            for _ in 0..<Int(random.next() % 24) { out += pieces[Int(random.next() % UInt64(pieces.count))] }
            return out + [0x22]
        }
        func value(_ depth: Int) -> [UInt8] {
            switch random.next() % (depth > 2 ? 3 : 5) {
            case 0: return string()
            case 1: return Array(numbers[Int(random.next() % UInt64(numbers.count))].utf8)
            case 2: return Array(["true", "false", "null"][Int(random.next() % 3)].utf8)
            case 3: return Array("[".utf8) + (0..<Int(random.next() % 4)).map { _ in value(depth + 1) }.joined(separator: Array(", ".utf8)) + Array("]".utf8)
            default:
                let members = (0..<Int(random.next() % 4)).map { _ in string() + Array(": ".utf8) + value(depth + 1) }
                return Array("{".utf8) + members.joined(separator: Array(",".utf8)) + Array("}".utf8)
            }
        }
        var skims = 0
        for _ in 0..<2_000 {
            let members = ["model", "messages", "stream", "extra"].filter { _ in random.next() % 4 != 0 }.map { ($0, value(1)) }
            let bytes = Array("{".utf8) + members.map { Array("\"\($0.0)\":".utf8) + $0.1 }.joined(separator: Array(",".utf8)) + Array("}".utf8)
            let skim = try #require(try JSONSourceObject(parsing: ByteBuffer(bytes: bytes), skimmingAllBut: Self.kept))
            let whole = try #require(try JSONSourceObject(parsing: ByteBuffer(bytes: bytes)))
            let document = String(decoding: bytes, as: UTF8.self)
            // A member the whole parse writes otherwise than received is what a skim cannot copy.
            let notCopyable = members.filter { name, raw in
                !Self.kept.contains(name) && whole.encode([name: whole.members[name]!]) != Array("{\"\(name)\":".utf8) + raw + [0x7D]
            }
            #expect((skim.kept == nil) == !notCopyable.isEmpty, "fell back exactly when needed: \(document)")
            guard skim.kept != nil else { continue }
            skims += 1
            for (name, raw) in members where !Self.kept.contains(name) {
                #expect(skim.encode([name: skim.members[name]!]) == Array("{\"\(name)\":".utf8) + raw + [0x7D], "\(name) of \(document)")
            }
        }
        #expect(skims > 100 && skims < 1_900, "both outcomes are exercised: \(skims) skims of 2000")
    }

    @Test func aSkimTellsANonEmptyListFromItsBytes() throws {
        let cases: [(String, Bool)] = [("[]", false), ("[ \n ]", false), ("[1]", true), (" [ {} ]", true), ("{}", false),
                                       (#""[1]""#, false), ("null", false), ("0", false)]
        for (value, nonEmpty) in cases {
            let text = #"{"messages":"# + value + #", "model": ["a"], "tools": [ "b" ]}"#
            let skim = try #require(try JSONSourceObject(parsing: ByteBuffer(string: text), skimmingAllBut: Self.kept))
            #expect(skim.isNonEmptyArray("messages") == nonEmpty, "\(value)")
            let whole = try #require(try JSONSourceObject(parsing: ByteBuffer(string: text)))
            #expect(whole.isNonEmptyArray("messages") == nonEmpty, "\(value), parsed whole")
            #expect(skim.isNonEmptyArray("model") && skim.isNonEmptyArray("tools") && !skim.isNonEmptyArray("absent"),
                    "a kept member read from its value, one not kept from its bytes")
        }
    }

    /// `isValidUTF8` agrees with Swift's own decoding (which repairs what is not valid) on seeded
    /// random bytes, across the sixteen-byte blocks it checks at once.
    @Test func utf8ValidityMatchesSwiftsDecoding() {
        var random = SplitMix64(seed: 0xC0FFEE)
        let samples: [[UInt8]] = [Array("plain ascii text longer than sixteen".utf8), Array("é€😀".utf8), [0xED, 0xA0, 0x80], [0xC0, 0x80], [0xF4, 0x90, 0x80, 0x80], [],
                                  [0xE0, 0x80, 0x80], [0xE0, 0xA0, 0x80], [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
                                  [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], Array("abcdefgh".utf8) + [0xC3], [0x80], [0xC3, 0x28]]
        var valid = 0
        for index in 0..<5_000 {
            var bytes = index < samples.count ? samples[index] : []
            if index >= samples.count {
                for _ in 0..<Int(random.next() % 24) {
                    let roll = random.next() % 10
                    if roll < 6 { bytes.append(UInt8(0x20 + random.next() % 0x5F)) }
                    else if roll < 9 { bytes += Array(["é", "€", "😀"][Int(random.next() % 3)].utf8) }
                    else { bytes.append(UInt8(truncatingIfNeeded: random.next())) }
                }
            }
            let expected = Array(String(decoding: bytes, as: UTF8.self).utf8) == bytes
            if expected { valid += 1 }
            #expect(bytes.withUnsafeBufferPointer(JSONByteScan.isValidUTF8) == expected, "\(bytes)")
        }
        #expect(valid > 500 && valid < 4_500, "both outcomes are exercised: \(valid) valid")
    }
}
