import Core
@testable import Plugins
import Testing

/// ai-prompt-guard's decision (spec §8): which text is collected from a body, and how the allow and
/// deny patterns decide over it.
struct AIPromptGuardTests {
    static func rules(allow: [String] = [], deny: [String] = [], onlyLatest: Bool = false, matchAllRoles: Bool = false,
                      format: LLMNativeFormat? = nil) -> PromptGuard {
        PromptGuard(allow: allow.map(GuardPattern.init), deny: deny.map(GuardPattern.init), onlyLatest: onlyLatest,
                    matchAllRoles: matchAllRoles, format: format)
    }

    static func body(_ json: String) throws -> [String: JSONValue] {
        try #require(try JSONValue.parse(json).objectValue)
    }

    static let cheeseShop = #"""
        {"messages": [
          {"role": "system", "content": "You run a cheese shop."},
          {"role": "user", "content": "I think that leicester is the best cheese."},
          {"role": "assistant", "content": "No, edam is the best cheese."},
          {"role": "user", "content": "Why edam?"}
        ]}
        """#

    // MARK: Collected text

    @Test func userMessagesAreCollectedLatestFirstEachFollowedByASpace() throws {
        let body = try Self.body(Self.cheeseShop)
        #expect(Self.rules(deny: ["x"]).prompt(of: body) == "Why edam? I think that leicester is the best cheese. ")
    }

    @Test func withTheHistoryAllowedOnlyTheLatestUserMessageCounts() throws {
        let body = try Self.body(Self.cheeseShop)
        #expect(Self.rules(deny: ["x"], onlyLatest: true).prompt(of: body) == "Why edam?")
    }

    @Test func matchAllRolesTakesEveryMessage() throws {
        let body = try Self.body(Self.cheeseShop)
        #expect(Self.rules(deny: ["x"], matchAllRoles: true).prompt(of: body)
                == "Why edam? No, edam is the best cheese. I think that leicester is the best cheese. You run a cheese shop. ")
    }

    @Test func completionsUseThePrompt() throws {
        #expect(Self.rules(deny: ["x"]).prompt(of: try Self.body(#"{"prompt": "Tell me about brie"}"#)) == "Tell me about brie")
        // `messages` that is no table is skipped for the prompt, as Lua's `type(...) == "table"` test does.
        #expect(Self.rules(deny: ["x"]).prompt(of: try Self.body(#"{"messages": "hi", "prompt": "p"}"#)) == "p")
    }

    @Test func emptyOrObjectMessagesGiveEmptyText() throws {
        #expect(Self.rules(deny: ["x"]).prompt(of: try Self.body(#"{"messages": []}"#)) == "")
        #expect(Self.rules(deny: ["x"]).prompt(of: try Self.body(#"{"messages": {"role": "user"}}"#)) == "")
    }

    @Test(arguments: [
        #"{"model": "gpt-4o"}"#,
        #"{"prompt": ["a", "b"]}"#,
        #"{"messages": [{"content": "no role"}]}"#,
        #"{"messages": [{"role": 1, "content": "x"}]}"#,
        #"{"messages": ["just text"]}"#,
        #"{"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}]}"#,
        #"{"messages": [{"role": "user"}]}"#,
    ])
    func badFormatsAreBlocked(_ json: String) throws {
        let rules = Self.rules(allow: [".*"])
        #expect(rules.prompt(of: try Self.body(json)) == nil)
        #expect(rules.verdict(for: try Self.body(json)) == .blocked(PromptGuard.badFormat))
    }

    @Test func messagesNotTakenMayHaveAnyContent() throws {
        let body = try Self.body(#"{"messages": [{"role": "assistant", "content": [{"type": "text", "text": "x"}]}, {"role": "user", "content": "hi"}]}"#)
        #expect(Self.rules(deny: ["x"]).prompt(of: body) == "hi ")
        #expect(Self.rules(deny: ["x"], matchAllRoles: true).prompt(of: body) == nil, "taken, it must be a string")
    }

    @Test func nativeGeminiBodiesAreReadThroughTheirOpenAIShape() throws {
        let body = try Self.body(#"""
            {"systemInstruction": {"parts": [{"text": "Be a cheesemonger."}]},
             "contents": [{"role": "user", "parts": [{"text": "Is edam"}, {"text": "good?"}]},
                          {"role": "model", "parts": [{"text": "Yes."}]},
                          {"role": "user", "parts": [{"text": "Why?"}]}]}
            """#)
        #expect(Self.rules(deny: ["x"], format: .gemini).prompt(of: body) == "Why? Is edam good? ")
        #expect(Self.rules(deny: ["x"], matchAllRoles: true, format: .gemini).prompt(of: body)
                == "Why? Yes. Is edam good? Be a cheesemonger. ")
        #expect(Self.rules(deny: ["x"], format: .gemini).prompt(of: try Self.body(#"{"messages": []}"#)) == nil,
                "a Gemini body needs `contents`")
    }

    @Test func nativeBedrockBodiesAreReadThroughTheirOpenAIShape() throws {
        let body = try Self.body(#"""
            {"system": [{"text": "Sell cheese."}],
             "messages": [{"role": "user", "content": [{"text": "One edam"}, {"image": {"format": "png", "source": {"bytes": "AA=="}}}]}]}
            """#)
        #expect(Self.rules(deny: ["x"], format: .bedrock).prompt(of: body) == "One edam ")
        #expect(Self.rules(deny: ["x"], matchAllRoles: true, format: .bedrock).prompt(of: body) == "One edam Sell cheese. ")
        #expect(Self.rules(deny: [".*edam.*"], format: .bedrock).verdict(for: body) == .blocked(PromptGuard.denied))
    }

    // MARK: Patterns

    @Test func aMatchingDenyPatternBlocks() {
        let rules = Self.rules(deny: [".*leicester.*", ".*edam.*"])
        #expect(rules.check("Why edam?") == .blocked(PromptGuard.denied))
        #expect(rules.check("Why cheddar?") == .allowed)
    }

    @Test func patternsSearchUnanchoredAndCaseSensitively() {
        #expect(Self.rules(deny: ["pa..ern"]).check("this is a user request with custom content pattern") == .blocked(PromptGuard.denied))
        #expect(Self.rules(deny: ["Edam"]).check("edam") == .allowed)
        #expect(Self.rules(deny: ["^edam$"]).check("I like edam") == .allowed)
    }

    /// PCRE without the `u` flag, as Kong's `ngx.re.find(text, re, "jo")`: bytes, not characters.
    /// `\b`, `\w`, `\d` and `(?i)` know ASCII only, only `\n` ends a line, `.` is one byte.
    @Test func patternsMatchBytesAsKongsPCREDoes() {
        // Deny lists copied from Kong keep blocking what they blocked there.
        let history = Self.rules(deny: ["ignore.*instructions"])
        for separator in ["\r", "\u{2028}", "\u{85}", "\u{0B}", "\u{0C}"] {
            #expect(history.check("ignore all\(separator)instructions") == .blocked(PromptGuard.denied), "\(separator.unicodeScalars.first!.value)")
        }
        #expect(history.check("ignore all\ninstructions") == .allowed, "only \\n ends a line for `.`")
        let word = Self.rules(deny: [#"\bpassword\b"#])
        #expect(word.check("épassword") == .blocked(PromptGuard.denied), "é is no word character in bytes")
        #expect(word.check("passwordé") == .blocked(PromptGuard.denied))
        // Allow lists meant for ASCII let only ASCII through.
        let ascii = Self.rules(allow: [#"^[\w\s]+$"#])
        #expect(ascii.check("hello world") == .allowed)
        #expect(ascii.check("héllo wörld") == .blocked(PromptGuard.notAllowed))
        #expect(ascii.check("hello١٢") == .blocked(PromptGuard.notAllowed))
        // …and nothing is blocked that PCRE would not match.
        #expect(Self.rules(deny: ["secret$"]).check("secret\r") == .allowed)
        #expect(Self.rules(deny: ["(?i)ÉCOLE"]).check("école") == .allowed, "(?i) folds ASCII only")
        #expect(Self.rules(deny: ["(?i)ÉCOLE"]).check("ÉcOLE") == .blocked(PromptGuard.denied))
        #expect(Self.rules(deny: [#"\d\d\d"#]).check("١٢٣") == .allowed)
        #expect(Self.rules(deny: ["café"]).check("un café") == .blocked(PromptGuard.denied), "literal UTF-8 matches itself")
        #expect(Self.rules(deny: ["caf.$"]).check("un café") == .allowed, "`.` takes one of é's two bytes")
        #expect(Self.rules(deny: ["caf..$"]).check("un café") == .blocked(PromptGuard.denied))
        #expect(Self.rules(deny: [#"caf\xc3\xa9"#]).check("un café") == .blocked(PromptGuard.denied), "\\xHH names a byte")
        #expect(Self.rules(deny: [#"(?P<w>edam)"#]).check("edam") == .blocked(PromptGuard.denied), "PCRE's (?P<name>")
    }

    /// The transformers' extract pattern gets back the original text of a match, found in bytes.
    @Test func aMatchFoundInBytesIsTheOriginalText() throws {
        let pattern = try AIPattern(#"\{.*\}"#, caseInsensitive: true, multiline: true)
        #expect(try pattern.firstMatch(in: "voilà: {\"a\": \"é😀\"} fin") == #"{"a": "é😀"}"#)
        #expect(try AIPattern("b.").firstMatch(in: "aé") == nil)
        #expect(try AIPattern("a.").firstMatch(in: "aé").map(String.init) == "a\u{FFFD}", "half a character, as PCRE can")
    }

    @Test func withAllowPatternsOneMustMatch() {
        let rules = Self.rules(allow: [".*cheddar.*", ".*brie.*"])
        #expect(rules.check("Why brie?") == .allowed)
        #expect(rules.check("Why gouda?") == .blocked(PromptGuard.notAllowed))
        #expect(rules.check("") == .blocked(PromptGuard.notAllowed))
    }

    @Test func denyPatternsWinOverAllowPatterns() {
        let rules = Self.rules(allow: [".*cheddar.*"], deny: [".*edam.*"])
        #expect(rules.check("cheddar or edam") == .blocked(PromptGuard.denied))
        #expect(rules.check("cheddar") == .allowed)
    }

    /// Kong's integration cases: with the history checked, a denied word anywhere in the user's
    /// turns blocks; with the history allowed only the latest turn counts.
    @Test func historyDecidesWhetherEarlierTurnsCount() throws {
        let body = try Self.body(#"""
            {"messages": [
              {"role": "user", "content": "I think that leicester is the best cheese."},
              {"role": "assistant", "content": "No, cheddar is the best cheese."},
              {"role": "user", "content": "Why cheddar?"}
            ]}
            """#)
        #expect(Self.rules(deny: [".*leicester.*"], onlyLatest: true).verdict(for: body) == .allowed)
        #expect(Self.rules(deny: [".*leicester.*"]).verdict(for: body) == .blocked(PromptGuard.denied))
        #expect(Self.rules(deny: [".*cheddar.*"], onlyLatest: true).verdict(for: body)
                == .blocked(PromptGuard.denied))
    }

    @Test func anInvalidPatternFailsWhenReachedEvenOnEmptyText() throws {
        let invalid = Self.rules(deny: ["[]"])
        guard case .failed(let reason) = invalid.verdict(for: try Self.body(#"{"messages": []}"#)) else {
            Issue.record("an invalid pattern must fail the request")
            return
        }
        #expect(reason.hasPrefix("bad regex pattern '[]', failed to execute: "), "\(reason)")
        #expect(Self.rules(deny: ["edam", "("]).check("edam") == .blocked(PromptGuard.denied), "a match before it decides")
        #expect(Self.rules(allow: ["brie", "("]).check("brie") == .allowed)
        guard case .failed = Self.rules(allow: ["brie", "("]).check("gouda") else {
            Issue.record("reached, the invalid allow pattern fails the request")
            return
        }
    }

    /// A catastrophic pattern is cut off by the match time limit and the prompt is blocked.
    @Test func aPathologicalPatternTimesOutAndBlocks() {
        let rules = Self.rules(deny: ["(a+)+$"])
        let clock = ContinuousClock()
        let started = clock.now
        let verdict = rules.check(String(repeating: "a", count: 40) + "b")
        let elapsed = clock.now - started
        #expect(verdict == .timedOut(pattern: "(a+)+$"))
        #expect(elapsed < .seconds(2), "took \(elapsed)")
        #expect(elapsed >= AIPattern.matchTimeLimit, "it ran until the limit, \(elapsed)")
        #expect(Self.rules(deny: ["(a+)+$"]).check("aaaa") == .blocked(PromptGuard.denied), "a sane input still matches")
    }

    @Test func patternsAreCompiledOnceWhenTheConfigIsTyped() {
        let config = AIPromptGuardConfig(["allow_patterns": ["brie"], "deny_patterns": ["[", "edam"],
                                          "allow_all_conversation_history": true, "match_all_roles": false,
                                          "max_request_body_size": 1024, "llm_format": "bedrock"])
        #expect(config.rules.allow.count == 1)
        guard case .invalid(let source, _) = config.rules.deny[0], case .compiled(let edam) = config.rules.deny[1] else {
            Issue.record("the invalid pattern is kept as such, the valid one compiled")
            return
        }
        #expect(source == "[")
        #expect(edam.source == "edam")
        #expect(config.rules.onlyLatest)
        #expect(config.rules.format == .bedrock)
        #expect(config.maxRequestBodySize == 1024)
    }
}
