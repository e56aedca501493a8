import NIOCore
import Testing
@testable import Core

/// The JSON reader and writer look at strings sixteen bytes at a time (`JSONByteScan`): a byte
/// that needs attention must be found wherever it sits relative to those blocks.
struct JSONCodingTests {
    /// Bytes the writer escapes or the reader stops at, and bytes that pass through as they are.
    static let specials: [String] = ["\"", "\\", "/", "\n", "\u{01}", "\u{1F}", "\u{08}", "\u{0C}", "\t", "\r", "é", "€", " ", "\u{7F}"]

    /// What Kong's encoder writes for `text`, one character at a time, the plain way (lua-cjson's
    /// `char2escape` table: `/` and DEL escaped; without `escapeSlashes`, neither).
    static func reference(_ text: String, escapeSlashes: Bool) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x2F where escapeSlashes: out += "\\/"
            case 0x7F where escapeSlashes: out += "\\u007f"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0..<0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u00" + (hex.count == 1 ? "0" + hex : hex)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Every special at every position of strings 1 to 48 bytes long (three blocks and a tail).
    static var placed: [String] {
        var texts: [String] = []
        for special in specials {
            for length in [1, 15, 16, 17, 31, 32, 33, 47, 48] {
                for position in 0..<length {
                    var characters = Array(repeating: "a", count: length)
                    characters[position] = special
                    texts.append(characters.joined())
                }
            }
        }
        return texts
    }

    @Test func theWriterEscapesEveryByteWhereverItSits() {
        for text in Self.placed {
            for escapeSlashes in [false, true] {
                let options = JSONWriteOptions(escapeSlashes: escapeSlashes)
                #expect(JSONValue.string(text).serialized(options) == Self.reference(text, escapeSlashes: escapeSlashes),
                        "\(text.debugDescription) escapeSlashes: \(escapeSlashes)")
            }
        }
    }

    @Test func theReaderReadsEveryStringItWrote() throws {
        for text in Self.placed {
            let written = JSONValue.string(text).serialized(.kong)
            #expect(try JSONValue.parse(written) == .string(text), "\(written)")
        }
        // Raw control characters and unescaped slashes inside strings, around block edges.
        for length in [15, 16, 17, 33] {
            let raw = String(repeating: "x", count: length - 1) + "\n/\t" + String(repeating: "y", count: length)
            #expect(try JSONValue.parse("\"\(raw)\"") == .string(raw))
        }
    }

    /// Escapes of every kind inside long strings; the reader's run copies join them right.
    @Test func longStringsWithEscapesReadExactly() throws {
        let pieces = [#"\u00e9"#, #"\""#, #"\\"#, #"\/"#, #"\n"#, #"\ud83d\ude00"#, #"\ud800x"#]
        let expected = ["é", "\"", "\\", "/", "\n", "😀", "\u{FFFD}x"]
        for (piece, meaning) in zip(pieces, expected) {
            for before in [0, 13, 16, 30] {
                let lead = String(repeating: "p", count: before), tail = String(repeating: "q", count: 21)
                let document = "\"\(lead)\(piece)\(tail)\(piece)\""
                #expect(try JSONValue.parse(document) == .string(lead + meaning + tail + meaning), "\(document)")
            }
        }
    }

    /// Where a string ends too early, the error and its offset are the same as before.
    @Test func unterminatedStringsReportTheEnd() {
        for document in ["\"" + String(repeating: "a", count: 40), "\"" + String(repeating: "a", count: 20) + "\\n" + String(repeating: "b", count: 20),
                         "\"" + String(repeating: "a", count: 17) + "\\"] {
            do throws(JSONParseError) {
                _ = try JSONValue.parse(document)
                Issue.record("parsed \(document)")
            } catch {
                #expect(error.offset == document.utf8.count, "\(document)")
                #expect(error.message.hasSuffix("found T_END"), "\(error)")
            }
        }
    }

    /// Contiguous bytes (a ByteBuffer's view, a slice) are read in place; others are copied
    /// first: all read the same document.
    @Test func everyKindOfByteCollectionReadsTheSame() throws {
        let text = #"{"messages":[{"role":"user","content":"a long enough \"quoted\" text / with a slash"}],"n":[1,2.5]}"#
        let expected = try JSONValue.parse(text)
        let buffer = ByteBuffer(string: "xx" + text)
        #expect(try JSONValue.parse(bytes: buffer.readableBytesView.dropFirst(2)) == expected)
        #expect(try JSONValue.parse(bytes: Array(text.utf8)[...]) == expected)
        #expect(try JSONValue.parse(bytes: text.utf8.lazy.map { $0 }) == expected)
        #expect(expected["messages"]?.arrayValue?.first?["content"] == #"a long enough "quoted" text / with a slash"#)
    }

    /// Keys are ordered by their first eight bytes as one integer, then in full: keys sharing
    /// those bytes, keys that are prefixes of others, the empty key and non-ASCII keys still come
    /// out in UTF-8 byte order.
    @Test func sortedKeysFollowTheirBytes() {
        let keys = ["x-kong-response-latency", "x-kong-request-id", "x-kong-r", "x-kong-", "", "x", "x\u{0}", "é", "f",
                    "completion_tokens", "completion", "prompt_tokens", "Z", "aaaaaaaab", "aaaaaaaaa", "aaaaaaaa"]
        var members: [String: JSONValue] = [:]
        for (i, key) in keys.enumerated() { members[key] = .number(Double(i)) }
        let written = JSONValue.object(members).serialized(.kong)
        let expected = keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let bytes = Array(written.utf8)
        let order = keys.map { key in bytes.firstRange(of: Array((JSONValue.string(key).serialized(.kong) + ":").utf8))!.lowerBound }
        #expect(keys.indices.sorted { order[$0] < order[$1] }.map { keys[$0] } == expected, "\(written)")
    }

    /// A skimmed parse builds the kept members as a full parse does; the others stand in as
    /// their Lua truthiness.
    @Test func aSkimmedParseBuildsOnlyTheKeptMembers() throws {
        let text = #"{"id":"x","choices":[{"message":{"content":"a\"b\u00e9\/","k":[1,2.5e3,{"z":null}]}}],"#
            + #""usage":{"prompt_tokens":3,"completion_tokens":4},"model":"m\u00e9","n":null,"f":false,"t":true,"e":{},"a":[]}"#
        let full = try JSONValue.parse(text)
        let skimmed = try JSONValue.parse(bytes: Array(text.utf8), skimmingAllBut: ["usage", "model"])
        #expect(skimmed["usage"] == full["usage"])
        #expect(skimmed["model"] == "m\u{e9}")
        #expect(skimmed["choices"] == true && skimmed["id"] == true && skimmed["t"] == true)
        #expect(skimmed["e"] == true && skimmed["a"] == true, "an empty object or array is truthy in Lua")
        #expect(skimmed["n"] == .null && skimmed["f"] == false)
        #expect(skimmed.objectValue?.count == full.objectValue?.count)
        // Not an object: parsed whole.
        #expect(try JSONValue.parse(bytes: Array("[1,{\"a\":2}]".utf8), skimmingAllBut: []) == JSONValue.parse("[1,{\"a\":2}]"))
    }

    /// What is not built is still read as JSON: the same error, at the same offset, as a full
    /// parse, wherever in a skipped member the fault is.
    @Test(arguments: [
        #"{"choices":[{"a":"\x"}],"usage":{}}"#, #"{"choices":"abc"#, #"{"choices":"a\"#, #"{"choices":"\u12G4"}"#,
        #"{"choices":[1,]}"#, #"{"choices":{"a" 1}}"#, #"{"choices":{"a":1,}}"#, #"{"choices":{1:2}}"#, #"{"choices":[-]}"#,
        #"{"choices":[1.]}"#, #"{"choices":[1e]}"#, #"{"choices":[tru]}"#, #"{"choices":[nul,1]}"#, #"{"choices":[1 2]}"#,
        #"{"choices":{"a":1"#, #"{"choices":[[[["#, #"{"choices":1} x"#, #"{"choices":"\ud800"}"#, #"{"choices":[1],"model":}"#,
        #"{"choices":{"a":[{"b":"c"}]}, "usage": {"x": 1,}}"#,
    ])
    func aSkimmedParseRefusesWhatAFullParseRefuses(text: String) {
        var full: JSONParseError?, skimmed: JSONParseError?
        do { _ = try JSONValue.parse(text) } catch { full = error }
        do { _ = try JSONValue.parse(bytes: Array(text.utf8), skimmingAllBut: ["usage", "model"]) } catch { skimmed = error }
        #expect(skimmed == full, "\(text)")
        if text != #"{"choices":"\ud800"}"# { #expect(full != nil, "\(text) is not JSON") }
    }

    /// Objects written in the dictionary's order (requests sent upstream) hold the same members
    /// as the sorted form.
    @Test func unsortedObjectsHoldTheSameMembers() throws {
        let value: JSONValue = ["model": "m", "messages": [["role": "user", "content": "hi/there"]], "n": 2, "e": [:]]
        let unsorted = value.serialized(JSONWriteOptions(sortedKeys: false))
        #expect(try JSONValue.parse(unsorted) == value)
        #expect(unsorted.utf8.count == value.serialized().utf8.count)
    }

    // MARK: Source objects (re-encoding what was passed on unchanged)

    static let source = ByteBuffer(string: #"  {"messages": [ {"content":"caf\u00e9 1\/2"} ], "t": 1.0, "gone": true, "k": 1, "k": [2] }  "#)

    /// Unchanged members are the source's bytes; changed and new ones are written; removed ones
    /// are gone; a repeated key is its last value, from the last value's bytes.
    @Test func aSourceObjectCopiesWhatDidNotChange() throws {
        let parsed = try #require(try JSONSourceObject(parsing: Self.source))
        #expect(parsed.members == ["messages": [["content": "café 1/2"]], "t": 1, "gone": true, "k": [2]])
        var object = parsed.members
        object["gone"] = nil
        object["t"] = 0.5
        object["model"] = "m/1"
        let encoded = String(decoding: parsed.encode(object), as: UTF8.self)
        #expect(encoded.contains(#""messages":[ {"content":"caf\u00e9 1\/2"} ]"#), "\(encoded)")
        #expect(encoded.contains(#""k":[2]"#), "\(encoded)")
        #expect(encoded.contains(#""t":0.5"#), "\(encoded)")
        #expect(encoded.contains(#""model":"m/1""#), "\(encoded)")
        #expect(try JSONValue.parse(encoded) == .object(object))
        #expect(String(decoding: parsed.encode(object, escapeSlashes: true), as: UTF8.self).contains(#""model":"m\/1""#))
        #expect(parsed.encode([:]) == Array("{}".utf8))
    }

    /// A value equal to the parsed one but built anew still reads as the source wrote it; one
    /// that differs anywhere inside is written.
    @Test func aSourceObjectComparesValuesNotStorage() throws {
        let parsed = try #require(try JSONSourceObject(parsing: Self.source))
        let rebuilt: [String: JSONValue] = ["messages": [["content": .string("caf" + "é 1/2")]]]
        #expect(String(decoding: parsed.encode(rebuilt), as: UTF8.self) == #"{"messages":[ {"content":"caf\u00e9 1\/2"} ]}"#)
        let edited: [String: JSONValue] = ["messages": [["content": "café 1/3"]]]
        #expect(String(decoding: parsed.encode(edited), as: UTF8.self) == #"{"messages":[{"content":"café 1/3"}]}"#)
    }

    @Test func aSourceObjectIsAnObject() throws {
        #expect(try JSONSourceObject(parsing: ByteBuffer(string: "[1]")) == nil)
        #expect(try JSONSourceObject(parsing: ByteBuffer(string: #""text""#)) == nil)
        #expect(throws: JSONParseError.self) { try JSONSourceObject(parsing: ByteBuffer(string: #"{"a":"#)) }
        // Offsets are the readable bytes', wherever the buffer's reader index is.
        var buffer = ByteBuffer(string: "xxxx" + #"{"a":"bb","c":[1]}"#)
        buffer.moveReaderIndex(forwardBy: 4)
        let parsed = try #require(try JSONSourceObject(parsing: buffer))
        var object = parsed.members
        object["d"] = true
        let encoded = String(decoding: parsed.encode(object), as: UTF8.self)
        #expect(encoded.contains(#""a":"bb""#) && encoded.contains(#""c":[1]"#), "\(encoded)")
        #expect(try JSONValue.parse(encoded) == .object(object))
    }

    /// Members spelled in ways only a lenient reader takes, or that the writer spells otherwise,
    /// are written as the writer (and Kong's encoder) writes them; the rest are copied.
    @Test func aSourceObjectWritesWhatOnlyALenientReaderTakes() throws {
        var bytes = Array(#"{"raw":"a"#.utf8) + [0x0A] + Array(#"b","bad":"x"#.utf8) + [0xFF] + Array(#"y","#.utf8)
        bytes += Array(#""lone":"\ud800","one":1.0,"neg":-0,"exp":1e2,"lead":007,"nested":{"v":[1,2.50]},"#.utf8)
        bytes += Array(#""ok":[1, 0.5, -3, "a\/b\u00e9", {"x": null}],"okNumber":12.75}"#.utf8)
        let parsed = try #require(try JSONSourceObject(parsing: ByteBuffer(bytes: bytes)))
        let encoded = String(decoding: parsed.encode(parsed.members), as: UTF8.self)
        for written in [#""raw":"a\nb""#, "\"bad\":\"x\u{FFFD}y\"", "\"lone\":\"\u{FFFD}\"", #""one":1"#, #""neg":0"#,
                        #""exp":100"#, #""lead":7"#, #""nested":{"v":[1,2.5]}"#,
                        #""ok":[1, 0.5, -3, "a\/b\u00e9", {"x": null}]"#, #""okNumber":12.75"#] {
            #expect(encoded.contains(written), "\(written) in \(encoded)")
        }
        #expect(try JSONValue.parse(encoded) == .object(parsed.members))
    }

    /// Strings are compared by their bytes: a member set to a canonically equivalent spelling
    /// of the client's is written as set.
    @Test func aSourceObjectComparesStringsByTheirBytes() throws {
        let parsed = try #require(try JSONSourceObject(parsing: ByteBuffer(string: #"{"m":"e\u0301"}"#)))
        #expect(parsed.members["m"] == "\u{E9}", "Swift's == takes the two spellings as equal")
        #expect(String(decoding: parsed.encode(parsed.members), as: UTF8.self) == #"{"m":"e\u0301"}"#)
        #expect(String(decoding: parsed.encode(["m": "\u{E9}"]), as: UTF8.self) == "{\"m\":\"\u{E9}\"}")
    }
}
