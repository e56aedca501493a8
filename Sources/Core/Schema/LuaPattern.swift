/// Lua 5.1 patterns, as Kong's `match`, `not_match`, `match_all`, `match_any` and `match_none`
/// validators use them (e.g. `^%u+$`). Keeping the patterns in Lua syntax lets a schema declaration
/// read like Kong's and be exported to `/schemas` unchanged.
///
/// Supported: `.`, `%a %c %d %l %p %s %u %w %x` (and upper-case complements), `%<punct>` escapes,
/// sets `[...]` / `[^...]` with ranges and classes, quantifiers `* + - ?`, anchors `^` and `$`.
/// Captures, `%b` and `%f` are not used by any schema here and are rejected at construction.
public struct LuaPattern: Sendable, Hashable, CustomStringConvertible {
    public let source: String
    private let pattern: [UInt8]

    public init(_ source: String) {
        self.source = source
        self.pattern = Array(source.utf8)
        precondition(!source.contains("%b") && !source.contains("%f") && !source.contains("("),
                     "LuaPattern: captures, %b and %f are not supported: \(source)")
    }

    public var description: String { source }

    /// Like Lua's `string.find(s, pattern)`: true when the pattern matches somewhere in `subject`.
    public func matches(_ subject: String) -> Bool {
        let s = Array(subject.utf8)
        var p = 0
        let anchored = pattern.first == UInt8(ascii: "^")
        if anchored { p = 1 }
        var start = 0
        repeat {
            if match(s, start, p) != nil { return true }
            start += 1
        } while start <= s.count && !anchored
        return false
    }

    /// Returns the end index of a match of pattern[p...] against s[si...], or nil.
    private func match(_ s: [UInt8], _ si: Int, _ p: Int) -> Int? {
        if p == pattern.count { return si }
        if pattern[p] == UInt8(ascii: "$") && p + 1 == pattern.count {
            return si == s.count ? si : nil
        }
        let classEnd = self.classEnd(p)
        let matchesHere = si < s.count && singleMatch(s[si], p, classEnd)
        if classEnd < pattern.count {
            switch pattern[classEnd] {
            case UInt8(ascii: "?"):
                if matchesHere, let r = match(s, si + 1, classEnd + 1) { return r }
                return match(s, si, classEnd + 1)
            case UInt8(ascii: "*"):
                return maxExpand(s, si, p, classEnd)
            case UInt8(ascii: "+"):
                return matchesHere ? maxExpand(s, si + 1, p, classEnd) : nil
            case UInt8(ascii: "-"):
                var i = si
                while true {
                    if let r = match(s, i, classEnd + 1) { return r }
                    if i < s.count && singleMatch(s[i], p, classEnd) { i += 1 } else { return nil }
                }
            default: break
            }
        }
        return matchesHere ? match(s, si + 1, classEnd) : nil
    }

    private func maxExpand(_ s: [UInt8], _ si: Int, _ p: Int, _ ep: Int) -> Int? {
        var count = 0
        while si + count < s.count && singleMatch(s[si + count], p, ep) { count += 1 }
        while count >= 0 {
            if let r = match(s, si + count, ep + 1) { return r }
            count -= 1
        }
        return nil
    }

    /// Index just past the single-character class starting at p.
    private func classEnd(_ p: Int) -> Int {
        var i = p
        let c = pattern[i]
        i += 1
        if c == UInt8(ascii: "%") { return i + 1 }
        if c == UInt8(ascii: "[") {
            if i < pattern.count && pattern[i] == UInt8(ascii: "^") { i += 1 }
            repeat {
                precondition(i < pattern.count, "LuaPattern: malformed pattern (missing ']'): \(source)")
                let cc = pattern[i]
                i += 1
                if cc == UInt8(ascii: "%") { i += 1 }
            } while i < pattern.count && pattern[i] != UInt8(ascii: "]")
            return i + 1
        }
        return i
    }

    private func singleMatch(_ c: UInt8, _ p: Int, _ ep: Int) -> Bool {
        switch pattern[p] {
        case UInt8(ascii: "."): return true
        case UInt8(ascii: "%"): return Self.classMatch(c, pattern[p + 1])
        case UInt8(ascii: "["): return setMatch(c, p, ep - 1)
        default: return pattern[p] == c
        }
    }

    private func setMatch(_ c: UInt8, _ start: Int, _ end: Int) -> Bool {
        var p = start + 1
        var negate = false
        if pattern[p] == UInt8(ascii: "^") { negate = true; p += 1 }
        while p < end {
            if pattern[p] == UInt8(ascii: "%") {
                p += 1
                if Self.classMatch(c, pattern[p]) { return !negate }
                p += 1
            } else if p + 2 < end, pattern[p + 1] == UInt8(ascii: "-") {
                if pattern[p] <= c && c <= pattern[p + 2] { return !negate }
                p += 3
            } else {
                if pattern[p] == c { return !negate }
                p += 1
            }
        }
        return negate
    }

    private static func classMatch(_ c: UInt8, _ cl: UInt8) -> Bool {
        let lower = cl | 0x20
        let result: Bool
        switch lower {
        case UInt8(ascii: "a"): result = isAlpha(c)
        case UInt8(ascii: "c"): result = c < 0x20 || c == 0x7F
        case UInt8(ascii: "d"): result = isDigit(c)
        case UInt8(ascii: "l"): result = (0x61...0x7A).contains(c)
        case UInt8(ascii: "p"): result = isPunct(c)
        case UInt8(ascii: "s"): result = c == 0x20 || (0x09...0x0D).contains(c)
        case UInt8(ascii: "u"): result = (0x41...0x5A).contains(c)
        case UInt8(ascii: "w"): result = isAlpha(c) || isDigit(c)
        case UInt8(ascii: "x"): result = isDigit(c) || (0x61...0x66).contains(c | 0x20)
        default: return cl == c
        }
        let isUpperClass = (0x41...0x5A).contains(cl)
        return isUpperClass ? !result : result
    }

    private static func isAlpha(_ c: UInt8) -> Bool { (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) }
    private static func isDigit(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) }
    private static func isPunct(_ c: UInt8) -> Bool {
        (0x21...0x2F).contains(c) || (0x3A...0x40).contains(c) || (0x5B...0x60).contains(c) || (0x7B...0x7E).contains(c)
    }
}
