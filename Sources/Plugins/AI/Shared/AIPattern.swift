import Foundation

/// A regular expression the AI plugins compile once per configuration snapshot and run on
/// untrusted text (prompts, LLM answers): ai-prompt-guard's allow/deny patterns and the
/// transformers' `transformation_extract_pattern`.
///
/// The engine is ICU's (through `NSRegularExpression`), whose syntax is close to the PCRE that
/// Kong uses. It backtracks, so a pathological pattern could run for a very long time on a crafted
/// prompt; every match is therefore bounded by a time limit (`matchTimeLimit`), checked from
/// ICU's progress callback, and a match that hits it fails with `.timedOut` instead of holding
/// the request (docs/decisions.md).
struct AIPattern: @unchecked Sendable {
    enum Failure: Error, Equatable, CustomStringConvertible {
        /// The pattern does not compile; the text is ICU's reason.
        case invalid(String)
        case timedOut

        var description: String {
            switch self {
            case .invalid(let reason): return reason
            case .timedOut: return "the pattern took longer than its time limit to match"
            }
        }
    }

    /// Long enough for any sane pattern on a prompt within the body limits; short enough that a
    /// catastrophic one costs the request little.
    static let matchTimeLimit: Duration = .milliseconds(100)

    let source: String
    private let expression: NSRegularExpression

    init(_ pattern: String, caseInsensitive: Bool = false, multiline: Bool = false) throws(Failure) {
        // Only `\n` ends a line, as in PCRE (ICU also counts \r, U+0085, U+2028…).
        var options: NSRegularExpression.Options = [.useUnixLineSeparators]
        if caseInsensitive { options.insert(.caseInsensitive) }
        if multiline { options.insert(.anchorsMatchLines) }
        do {
            expression = try NSRegularExpression(pattern: PCREBytes.pattern(pattern), options: options)
        } catch {
            throw .invalid("invalid regular expression '\(pattern)'")
        }
        source = pattern
    }

    /// A text prepared once for every pattern run on it (`PCREBytes.text`).
    struct Subject {
        let original: String
        let bytes: String
        init(_ text: String) {
            original = text
            bytes = PCREBytes.text(text)
        }
    }

    /// The whole first match in `text`, nil when there is none.
    func firstMatch(in text: String, timeLimit: Duration = matchTimeLimit) throws(Failure) -> Substring? {
        try firstMatch(in: Subject(text), timeLimit: timeLimit)
    }

    /// The whole first match in `subject`; the time limit counts the match only.
    func firstMatch(in subject: Subject, timeLimit: Duration = matchTimeLimit) throws(Failure) -> Substring? {
        let text = subject.original
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeLimit)
        var found: NSRange?
        var timedOut = false
        // NSRange counts UTF-16 units: measured without bridging the text to NSString.
        let whole = NSRange(location: 0, length: subject.bytes.utf16.count)
        // `reportProgress` makes ICU call back during a long search, where the limit is checked.
        expression.enumerateMatches(in: subject.bytes, options: [.reportProgress], range: whole) { match, _, stop in
            if let match {
                found = match.range
                stop.pointee = true
            } else if clock.now >= deadline {
                timedOut = true
                stop.pointee = true
            }
        }
        if timedOut { throw .timedOut }
        guard let found else { return nil }
        return PCREBytes.original(of: found, in: text)
    }

    func matches(_ text: String, timeLimit: Duration = matchTimeLimit) throws(Failure) -> Bool {
        try firstMatch(in: Subject(text), timeLimit: timeLimit) != nil
    }

    func matches(_ subject: Subject, timeLimit: Duration = matchTimeLimit) throws(Failure) -> Bool {
        try firstMatch(in: subject, timeLimit: timeLimit) != nil
    }
}

/// Kong runs these patterns with `ngx.re` and no `u` flag: PCRE matches the text's UTF-8 bytes.
/// `\w`, `\d`, `\s`, `\b` and `(?i)` then know ASCII only, and `.` takes one byte. ICU matches
/// characters, so a deny pattern's `\bpassword\b` missed `épassword` and an allow pattern's
/// `[\w\s]` let accented text through. Both the pattern and the text are therefore rewritten so
/// that every byte from 0x80 up is a character of its own from the private use area (U+E080 +
/// byte − 0x80…): not a word, digit or space character, never folded, one per byte, and the same
/// in the pattern as in the text. ASCII text is left as it is.
enum PCREBytes {
    static let base: UInt32 = 0xE000

    /// The text as ICU sees it: its UTF-16 offsets are the original's UTF-8 byte offsets.
    static func text(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 >= 0x80 }) else { return text }
        var scalars = String.UnicodeScalarView()
        for byte in text.utf8 { scalars.append(Unicode.Scalar(byte < 0x80 ? UInt32(byte) : base + UInt32(byte))!) }
        return String(scalars)
    }

    /// The pattern with its non-ASCII bytes mapped as the text's, `\xHH` / `\x{HH}` for a byte
    /// from 0x80 naming that byte's character, and Python's `(?P<name>` as ICU's `(?<name>`.
    static func pattern(_ pattern: String) -> String {
        var out = text(pattern.replacingOccurrences(of: "(?P<", with: "(?<"))
        guard out.contains("\\x") else { return out }
        var rewritten = ""
        var rest = Substring(out)
        while let escape = rest.range(of: "\\x") {
            // An escaped backslash before it (`\\x`) is a literal backslash, then `x`.
            let before = rest[..<escape.lowerBound]
            let backslashes = before.reversed().prefix { $0 == "\\" }.count
            rewritten += before
            var after = rest[escape.upperBound...]
            var hex: Substring?
            if backslashes % 2 == 0 {
                if after.first == "{", let close = after.firstIndex(of: "}") {
                    hex = after[after.index(after: after.startIndex)..<close]
                    if let value = hex.flatMap({ UInt32($0, radix: 16) }), (0x80...0xFF).contains(value) {
                        rewritten += "\\x{\(String(base + value, radix: 16))}"
                        rest = after[after.index(after: close)...]
                        continue
                    }
                } else if after.count >= 2, let value = UInt32(after.prefix(2), radix: 16), (0x80...0xFF).contains(value) {
                    rewritten += "\\x{\(String(base + value, radix: 16))}"
                    after = after.dropFirst(2)
                    rest = after
                    continue
                }
            }
            rewritten += "\\x"
            rest = after
        }
        out = rewritten + rest
        return out
    }

    /// The original text of a match found in `text(original)`: the same byte range (a match
    /// may end inside a character, as PCRE's can; that part is then decoded leniently).
    static func original(of range: NSRange, in original: String) -> Substring? {
        let utf8 = original.utf8
        guard range.location >= 0, range.location + range.length <= utf8.count else { return nil }
        let start = utf8.index(utf8.startIndex, offsetBy: range.location)
        let end = utf8.index(start, offsetBy: range.length)
        if let lower = start.samePosition(in: original), let upper = end.samePosition(in: original) {
            return original[lower..<upper]
        }
        return Substring(String(decoding: utf8[start..<end], as: UTF8.self))
    }
}
