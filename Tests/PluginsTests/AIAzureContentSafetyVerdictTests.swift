import Core
@testable import Plugins
import Testing

/// ai-azure-content-safety's pure parts (spec ai-plugins §6.3): the text folded from the prompt,
/// the assistant text of an answer, the Analyze Text body, and the verdict and its wording.
struct AIAzureContentSafetyVerdictTests {
    static let conversation: [JSONValue] = [
        ["role": "system", "content": "You are terse."],
        ["role": "user", "content": "Hi"],
        ["role": "assistant", "content": "Hello"],
        ["role": "user", "content": "Say it in French"],
    ]

    // MARK: Prompt folding (§6.3-2)

    @Test func allContentFoldsEveryMessageInOrder() {
        #expect(ContentSafetyText.prompt(messages: Self.conversation, source: .allContent)
            == "You are terse.\n\nHi\n\nHello\n\nSay it in French\n\n")
    }

    @Test func userContentFoldsOnlyUserMessages() {
        #expect(ContentSafetyText.prompt(messages: Self.conversation, source: .userContent) == "Hi\n\nSay it in French\n\n")
    }

    @Test func aMessageWithoutTextCountsAsOneSpace() {
        let messages: [JSONValue] = [
            ["role": "user"],
            ["role": "user", "content": .null],
            ["role": "user", "content": ""],
            ["role": "user", "content": [["type": "image_url", "image_url": ["url": "https://example.com/a.png"]]]],
        ]
        #expect(ContentSafetyText.prompt(messages: messages, source: .allContent) == " \n\n \n\n\n\n \n\n",
                "missing, null and image-only content are a space; an empty string stays empty")
    }

    @Test func multiModalContentKeepsItsTextParts() {
        let messages: [JSONValue] = [["role": "user", "content": [
            ["type": "text", "text": "What is in"],
            ["type": "image_url", "image_url": ["url": "https://example.com/a.png"]],
            ["type": "text", "text": "this picture?"],
        ]]]
        #expect(ContentSafetyText.prompt(messages: messages, source: .userContent) == "What is in\nthis picture?\n\n")
    }

    @Test func noUserMessageFoldsToNothing() {
        let messages: [JSONValue] = [["role": "system", "content": "Be nice"]]
        #expect(ContentSafetyText.prompt(messages: messages, source: .userContent) == "")
    }

    // MARK: Answer text (§6.3-8)

    @Test func theAnswerIsTheAssistantContentOfEveryChoice() {
        let answer: JSONValue = ["choices": [
            ["index": 0, "message": ["role": "assistant", "content": "First"]],
            ["index": 1, "message": ["role": "assistant", "content": [["type": "text", "text": "Second"]]]],
            ["index": 2, "message": ["role": "assistant", "content": .null, "tool_calls": []]],
        ]]
        #expect(ContentSafetyText.answer(answer) == "First\n\nSecond")
    }

    @Test func aCompletionAnswerIsItsText() {
        #expect(ContentSafetyText.answer(["choices": [["text": "Once upon a time"]]]) == "Once upon a time")
    }

    @Test func anAnswerWithoutTextIsEmpty() {
        #expect(ContentSafetyText.answer(["choices": [["message": ["role": "assistant", "content": ""]]]]) == "")
        #expect(ContentSafetyText.answer(["error": ["message": "overloaded"]]) == "")
        #expect(ContentSafetyText.answer(["choices": .object([:])]) == "", "Kong's encoding of an empty list")
    }

    // MARK: Analyze Text body (§6.3-3)

    static let hateAndViolence = [ContentSafetyCategory(name: "Hate", rejectionLevel: 1),
                                  ContentSafetyCategory(name: "Violence", rejectionLevel: 2)]

    @Test func theBodyNamesTheCategoriesInOrderAndTheBlocklists() {
        let options = ContentSafetyAnalysisOptions(categories: Self.hateAndViolence, blocklistNames: ["company_competitors"],
                                                   haltOnBlocklistHit: true, outputType: "FourSeverityLevels")
        #expect(options.requestBody(text: "Hi\n\n") == [
            "text": "Hi\n\n", "categories": ["Hate", "Violence"], "blocklistNames": ["company_competitors"],
            "haltOnBlocklistHit": true, "outputType": "FourSeverityLevels",
        ])
    }

    @Test func unconfiguredListsAreLeftOut() {
        let options = ContentSafetyAnalysisOptions(categories: [], blocklistNames: nil, haltOnBlocklistHit: false,
                                                   outputType: "EightSeverityLevels")
        #expect(options.requestBody(text: "x") == [
            "text": "x", "haltOnBlocklistHit": false, "outputType": "EightSeverityLevels",
        ])
    }

    // MARK: Verdict (§6.3-4 to -6)

    static func verdict(_ answer: String, categories: [ContentSafetyCategory] = hateAndViolence)
        throws(ContentSafetyAnswerError) -> ContentSafetyVerdict
    {
        try ContentSafetyVerdict(answer: Array(answer.utf8), categories: categories)
    }

    @Test func theSpecExampleNamesTheConfiguredLevels() throws {
        let verdict = try Self.verdict("""
            {"blocklistsMatch":[],"categoriesAnalysis":[{"category":"Hate","severity":2},\
            {"category":"SelfHarm","severity":6},{"category":"Sexual","severity":0},{"category":"Violence","severity":4}]}
            """)
        #expect(verdict.breached)
        #expect(verdict.reasons == "breached category [Hate] at level 1; breached category [Violence] at level 2",
                "the configured level, not the severity; SelfHarm is not configured")
        #expect(verdict.breachedCategories == Self.hateAndViolence)
    }

    @Test func categoryReasonsFollowAzuresOrder() throws {
        let verdict = try Self.verdict(#"{"categoriesAnalysis":[{"category":"Violence","severity":2},{"category":"Hate","severity":6}]}"#)
        #expect(verdict.reasons == "breached category [Violence] at level 2; breached category [Hate] at level 1")
    }

    @Test func aSeverityBelowTheLevelPasses() throws {
        let verdict = try Self.verdict(#"{"categoriesAnalysis":[{"category":"Hate","severity":0},{"category":"Violence","severity":1}]}"#)
        #expect(!verdict.breached)
        #expect(verdict.reasons == "")
    }

    @Test func blocklistReasonsFollowWithoutASeparator() throws {
        let verdict = try Self.verdict("""
            {"blocklistsMatch":[{"blocklistName":"competitors","blocklistItemId":"1","blocklistItemText":"Acme"},\
            {"blocklistName":"slurs","blocklistItemId":"2","blocklistItemText":"x"}],\
            "categoriesAnalysis":[{"category":"Hate","severity":2}]}
            """)
        #expect(verdict.reasons == "breached category [Hate] at level 1breached blocklist [competitors]breached blocklist [slurs]")
        #expect(verdict.breachedBlocklists == ["competitors", "slurs"])
    }

    @Test func aBlocklistOnlyAnswerIsAccepted() throws {
        // Azure stops at a blocklist hit with haltOnBlocklistHit: no categories analysed (3.11 rule).
        let verdict = try Self.verdict(#"{"blocklistsMatch":[{"blocklistName":"competitors","blocklistItemId":"1","blocklistItemText":"Acme"}],"categoriesAnalysis":[]}"#)
        #expect(verdict.reasons == "breached blocklist [competitors]")
    }

    @Test func anAnswerWithoutAnalysisIsInvalid() {
        #expect(throws: ContentSafetyAnswerError.invalid) { try Self.verdict(#"{"blocklistsMatch":[]}"#) }
        #expect(throws: ContentSafetyAnswerError.invalid) { try Self.verdict(#"{"categoriesAnalysis":[]}"#) }
        #expect(ContentSafetyAnswerError.invalid.description == "content safety introspection is invalid")
    }

    @Test func anAnswerThatIsNoJSONObjectFails() {
        #expect(throws: ContentSafetyAnswerError.notJSON) { try Self.verdict("<html>bad gateway</html>") }
        #expect(throws: ContentSafetyAnswerError.notJSON) { try Self.verdict(#"[{"category":"Hate","severity":6}]"#) }
        #expect(ContentSafetyAnswerError.notJSON.description == "content safety introspection failure")
    }

    @Test func theMessageRevealsReasonsOnlyWhenAsked() {
        let verdict = ContentSafetyVerdict(breachedCategories: [ContentSafetyCategory(name: "Hate", rejectionLevel: 2)],
                                           breachedBlocklists: [])
        #expect(ContentSafetyDirection.request.failureMessage(verdict, reveal: true)
            == "request failed content safety check: breached category [Hate] at level 2")
        #expect(ContentSafetyDirection.request.failureMessage(verdict, reveal: false) == "request failed content safety check")
        #expect(ContentSafetyDirection.response.failureMessage(verdict, reveal: true)
            == "response failed content safety check: breached category [Hate] at level 2")
        #expect(ContentSafetyDirection.response.failureMessage(verdict, reveal: false) == "response failed content safety check")
    }

    // MARK: Configuration

    @Test(arguments: [("INPUT", true, false), ("OUTPUT", false, true), ("BOTH", true, true)])
    func guardingModeChoosesTheSides(_ mode: String, _ request: Bool, _ response: Bool) throws {
        let config = try #require(AIAzureContentSafetyConfig(config: [
            "content_safety_url": "https://cs.example.com/contentsafety/text:analyze", "guarding_mode": .string(mode),
        ]))
        #expect(config.guardsRequest == request)
        #expect(config.guardsResponse == response)
    }

    @Test func theEndpointCarriesTheAPIVersionAndTheKeyIsResolved() throws {
        let options = ContentSafetyAnalysisOptions(categories: [], blocklistNames: nil, haltOnBlocklistHit: true,
                                                   outputType: "FourSeverityLevels")
        let service = ContentSafetyService(config: [
            "content_safety_url": "{vault://env/cs-url}", "content_safety_key": "{vault://env/cs-key}",
            "azure_api_version": "2024-09-01", "ssl_verify": false,
        ], options: options, environment: ["CS_URL": "https://cs.example.com/contentsafety/text:analyze?trace=1", "CS_KEY": "k-123"])
        #expect(try service.endpoint.get() == "https://cs.example.com/contentsafety/text:analyze?trace=1&api-version=2024-09-01")
        guard case .key(let key) = try service.credential.get() else {
            Issue.record("expected the subscription key")
            return
        }
        #expect(key == "k-123")

        let unresolved = ContentSafetyService(config: [
            "content_safety_url": "https://cs.example.com/contentsafety/text:analyze",
            "content_safety_key": "{vault://env/missing}",
        ], options: options, environment: [:])
        #expect(throws: ContentSafetyCallError.self) { try unresolved.credential.get() }
        #expect(try unresolved.endpoint.get() == "https://cs.example.com/contentsafety/text:analyze?api-version=2023-10-01",
                "the default api-version")
    }
}

@Test func longAnswersAreCutIntoPiecesAzureAccepts() {
    #expect(ContentSafetyText.pieces("short") == ["short"])
    #expect(ContentSafetyText.pieces("") == [""])
    let long = String(repeating: "a", count: 25_000)
    #expect(ContentSafetyText.pieces(long).map(\.count) == [10_000, 10_000, 5_000])
    // A character of two UTF-16 units is never split.
    let emoji = String(repeating: "😀", count: 6)
    let pieces = ContentSafetyText.pieces(emoji, limit: 5)
    #expect(pieces.map(\.count) == [2, 2, 2])
    #expect(pieces.joined() == emoji)
}
