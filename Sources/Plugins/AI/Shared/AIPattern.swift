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
        var options: NSRegularExpression.Options = []
        if caseInsensitive { options.insert(.caseInsensitive) }
        if multiline { options.insert(.anchorsMatchLines) }
        do {
            expression = try NSRegularExpression(pattern: pattern, options: options)
        } catch {
            throw .invalid("invalid regular expression '\(pattern)'")
        }
        source = pattern
    }

    /// The whole first match in `text`, nil when there is none.
    func firstMatch(in text: String, timeLimit: Duration = matchTimeLimit) throws(Failure) -> Substring? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeLimit)
        var found: NSRange?
        var timedOut = false
        // NSRange counts UTF-16 units: measured without bridging the text to NSString.
        let whole = NSRange(location: 0, length: text.utf16.count)
        // `reportProgress` makes ICU call back during a long search, where the limit is checked.
        expression.enumerateMatches(in: text, options: [.reportProgress], range: whole) { match, _, stop in
            if let match {
                found = match.range
                stop.pointee = true
            } else if clock.now >= deadline {
                timedOut = true
                stop.pointee = true
            }
        }
        if timedOut { throw .timedOut }
        guard let found, let range = Range(found, in: text) else { return nil }
        return text[range]
    }

    func matches(_ text: String, timeLimit: Duration = matchTimeLimit) throws(Failure) -> Bool {
        try firstMatch(in: text, timeLimit: timeLimit) != nil
    }
}
