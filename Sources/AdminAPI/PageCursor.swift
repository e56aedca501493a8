import Core
import Foundation

/// Kong's page `offset`: the sort key of the last row of the page, as a JSON array, in unpadded
/// base64 (`kong/db/strategies/postgres/init.lua`, `tags.lua`). Lists are ordered by that key
/// (the primary key `id`; `/tags` by entity id, then the tag's position in the entity's tags), and
/// the next page starts after the key, not at a row count: deleting rows already seen while
/// paging (a script emptying a list page by page) skips nothing.
struct PageCursor {
    /// The last row's key: JSON strings or numbers.
    let key: [JSONValue]

    init(key: [JSONValue]) { self.key = key }

    /// The offset a client sends back; unpadded, as Kong's `encode_base64(offset, true)`.
    var token: String {
        let base64 = Data(JSONValue.array(key).serializedBytes()).base64EncodedString()
        return String(base64.prefix { $0 != "=" })
    }

    /// Kong's two refusals: `bad base64 encoding`, `bad json encoding` (anything but an array of
    /// the key's parts, which Kong would fail on later).
    static func decode(_ token: String) -> Result<PageCursor, KongError> {
        func invalid(_ reason: String) -> Result<PageCursor, KongError> {
            .failure(KongError(code: .invalidOffset, message: "'\(token)' is not a valid offset: \(reason)"))
        }
        // ngx.decode_base64 takes the padding or leaves it out.
        let padded = token.utf8.count % 4 == 0 ? token : token + String(repeating: "=", count: 4 - token.utf8.count % 4)
        guard token.utf8.count % 4 != 1, let bytes = Data(base64Encoded: padded) else {
            return invalid("bad base64 encoding")
        }
        guard case .array(let key)? = try? JSONValue.parse(String(decoding: bytes, as: UTF8.self)),
              !key.isEmpty, key.allSatisfy({ $0.stringValue != nil || $0.numberValue != nil }) else {
            return invalid("bad json encoding")
        }
        return .success(PageCursor(key: key))
    }

    /// Whether key `a` sorts before `b`: part by part, strings by their bytes (Postgres compares
    /// uuids and LMDB keys byte by byte), numbers by value.
    static func precedes(_ a: [JSONValue], _ b: [JSONValue]) -> Bool {
        for (x, y) in zip(a, b) {
            switch (x, y) {
            case (.string(let s), .string(let t)):
                if s != t { return s.utf8.lexicographicallyPrecedes(t.utf8) }
            case (.number(let m), .number(let n)):
                if m != n { return m < n }
            default:
                // Mixed kinds only come from a hand-made offset: numbers first, consistently.
                if x.numberValue != nil && y.stringValue != nil { return true }
                if x.stringValue != nil && y.numberValue != nil { return false }
            }
        }
        return a.count < b.count
    }
}
