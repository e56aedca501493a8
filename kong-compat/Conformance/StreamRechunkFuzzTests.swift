import Core
import Plugins
import TestSupport
import Testing

// Re-chunking fuzz: every streaming fixture byte stream of Kong's suite, re-split at seeded random
// boundaries (and at every single boundary), must give exactly the events, client frames, usage,
// finish reason and text of the unsplit run. The upstream network decides where chunks end; the
// output must not depend on it.

struct RechunkFixture: Sendable, CustomTestStringConvertible {
    let name: String
    /// Files concatenated into one upstream body.
    let files: [String]
    var base64 = false
    let contentType: String?
    var arrayOpened = false
    let provider: LLMProvider
    var route = LLMRouteType.chat
    let modelName: String

    var testDescription: String { name }

    func body() throws -> [UInt8] {
        if base64 { return try kongBedrockStreamChunks().flatMap { $0 } }
        return try files.flatMap { [UInt8](try KongFixtures.data($0)) }
    }
}

private let formats = "unit/streaming-chunk-formats"
private let frames = "unit/real-stream-frames"

let rechunkFixtures = [
    RechunkFixture(name: "complete-json", files: ["\(formats)/complete-json/input.bin"],
                   contentType: "text/event-stream", provider: .cohere, modelName: "command"),
    RechunkFixture(name: "text-event-stream", files: ["\(formats)/text-event-stream/input.bin"],
                   contentType: "text/event-stream", provider: .openai, modelName: "gpt-4"),
    RechunkFixture(name: "partial-json-beginning", files: ["\(formats)/partial-json-beginning/input.bin"],
                   contentType: "application/json", provider: .gemini, modelName: "gemini-1.5-pro"),
    RechunkFixture(name: "partial-json-end", files: ["\(formats)/partial-json-end/input.bin"],
                   contentType: "application/json", arrayOpened: true, provider: .gemini, modelName: "gemini-1.5-pro"),
    RechunkFixture(name: "partial-json-split", files: ["\(formats)/partial-json-split/input-1.bin", "\(formats)/partial-json-split/input-2.bin"],
                   contentType: "application/json", provider: .gemini, modelName: "gemini-1.5-pro"),
    RechunkFixture(name: "partial-json-split-three-parts",
                   files: (1...3).map { "\(formats)/partial-json-split-three-parts/input-\($0).bin" },
                   contentType: "application/json", provider: .gemini, modelName: "gemini-1.5-pro"),
    RechunkFixture(name: "aws", files: ["\(formats)/aws/input.bin"],
                   contentType: "application/vnd.amazon.eventstream", provider: .bedrock, modelName: "bedrock"),
    RechunkFixture(name: "bedrock/chunks", files: [], base64: true,
                   contentType: "application/vnd.amazon.eventstream", provider: .bedrock, modelName: "aws-titan-v1:0"),
    RechunkFixture(name: "real-stream-frames openai chat", files: ["\(frames)/openai/llm-v1-chat.txt"],
                   contentType: nil, provider: .openai, modelName: "gpt-4"),
    RechunkFixture(name: "real-stream-frames openai completions", files: ["\(frames)/openai/llm-v1-completions.txt"],
                   contentType: nil, provider: .openai, route: .completions, modelName: "gpt-3.5-turbo-instruct"),
    RechunkFixture(name: "real-stream-frames cohere chat", files: ["\(frames)/cohere/llm-v1-chat.txt"],
                   contentType: nil, provider: .cohere, modelName: "command"),
    RechunkFixture(name: "real-stream-frames cohere completions", files: ["\(frames)/cohere/llm-v1-completions.txt"],
                   contentType: nil, provider: .cohere, route: .completions, modelName: "command-light"),
]

/// Full-pipeline runs with random cut plans, per fixture (on top of one run per single cut point).
private let randomPlansPerFixture = 300

/// Everything the client and the analytics observe.
private struct Outcome: Equatable {
    var events: [StreamEvent] = []
    var frames: [UInt8] = []
    var usage = LLMUsage()
    var finishReason: String?
    var text = ""
    var sentTerminator = false
    var error: StreamSplitError?
}

private func run(_ fixture: RechunkFixture, _ chunks: [ArraySlice<UInt8>], convert: Bool) -> Outcome {
    var splitter = StreamFrameSplitter(contentType: fixture.contentType)
    if fixture.arrayOpened { splitter.assumeJSONArrayOpened() }
    var converter = StreamEventConverter(route: fixture.route,
                                         model: LLMModelConfig(provider: fixture.provider, name: fixture.modelName),
                                         accumulateText: true)
    var outcome = Outcome()
    func take(_ events: [StreamEvent]) {
        outcome.events += events
        if convert {
            for event in events { converter.convert(event, into: &outcome.frames) }
        }
    }
    do {
        for chunk in chunks { take(try splitter.split(chunk)) }
    } catch {
        outcome.error = error
    }
    take(splitter.finish())
    outcome.usage = converter.usage
    outcome.finishReason = converter.finishReason
    outcome.text = converter.text
    outcome.sentTerminator = converter.sentTerminator
    return outcome
}

private func chunks(_ body: [UInt8], cuts: [Int]) -> [ArraySlice<UInt8>] {
    var result: [ArraySlice<UInt8>] = []
    var start = 0
    for cut in cuts where cut > start && cut < body.count {
        result.append(body[start..<cut])
        start = cut
    }
    result.append(body[start...])
    return result
}

/// A random cut plan: either a handful of uniform cuts, or a run of tiny chunks (1–8 bytes), the
/// worst case for carried state.
private func randomCuts(_ count: Int, _ rng: inout SplitMix64) -> [Int] {
    guard count > 1 else { return [] }
    if rng.below(3) == 0 {
        var cuts: [Int] = []
        var position = 1 + rng.below(8)
        while position < count {
            cuts.append(position)
            position += 1 + rng.below(8)
        }
        return cuts
    }
    let k = 1 + rng.below(min(24, count - 1))
    return Set((0..<k).map { _ in 1 + rng.below(count - 1) }).sorted()
}

/// FNV-1a of the name: a per-fixture seed that does not change between runs (`hashValue` does).
private func seed(_ name: String) -> UInt64 {
    name.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
}

@Suite(.enabled(if: KongFixtures.available, KongFixtures.missingReason))
struct StreamRechunkFuzzTests {
    @Test(.kongGroup("rechunk-fuzz"), arguments: rechunkFixtures)
    func resplitStreamGivesTheSameResult(_ fixture: RechunkFixture) throws {
        KongGroup.name(fixture)
        let body = try fixture.body()
        let reference = run(fixture, [body[...]], convert: true)
        #expect(reference.error == nil)
        #expect(!reference.events.isEmpty)
        #expect(!reference.frames.isEmpty)

        var mismatches = 0
        func check(_ outcome: Outcome, _ reference: Outcome, _ cuts: [Int]) {
            guard outcome != reference else { return }
            mismatches += 1
            if mismatches <= 3 {
                let difference = zip(outcome.events, reference.events).first { $0 != $1 }
                    .map { "\($0) vs \($1)" } ?? "in frames, usage or error"
                let message = "\(fixture.name): cuts \(cuts.prefix(30)) give \(outcome.events.count) events "
                    + "(unsplit: \(reference.events.count)); first difference: \(difference)"
                Issue.record("\(message)")
            }
        }

        // Every single cut point (splitter level).
        let eventsOnly = Outcome(events: reference.events, error: reference.error)
        for cut in 1..<body.count {
            check(run(fixture, chunks(body, cuts: [cut]), convert: false), eventsOnly, [cut])
        }
        // Seeded random plans through the whole pipeline, plus one byte at a time.
        var rng = SplitMix64(seed: seed(fixture.name))
        for _ in 0..<randomPlansPerFixture {
            let cuts = randomCuts(body.count, &rng)
            check(run(fixture, chunks(body, cuts: cuts), convert: true), reference, cuts)
        }
        let everyByte = Array(1..<body.count)
        check(run(fixture, chunks(body, cuts: everyByte), convert: true), reference, everyByte)
        #expect(mismatches == 0)
    }

    /// The plan above re-splits the fixtures at least 10,000 times in total.
    @Test func totalResplitCount() throws {
        let total = try rechunkFixtures.reduce(0) { sum, fixture in
            sum + (try fixture.body().count - 1) + randomPlansPerFixture + 1
        }
        #expect(total >= 10_000, "only \(total) re-split runs")
    }
}
