import Core

/// Kong's prompt-token estimate (spec §2.11), used for providers whose streams report no usage
/// (openai, azure, mistral, huggingface) until real usage replaces it: a word count, not a
/// tokenizer.
public enum LLMTokenEstimate {
    /// Kong scales word counts of streamed requests by this factor.
    static let streamingFactor = 1.8

    /// Whitespace-separated words of every message `content` (a string, or the `text` of
    /// `type:"text"` parts) or of `prompt` (string: words; list: strings count words, numbers
    /// count 1, lists of numbers count each number), times 1.0 or 1.8 (stream), rounded half up.
    /// A prompt element of any other type is an error (Kong then answers a generic 500).
    public static func promptTokens(request: JSONValue, streaming: Bool) throws(LLMConversionError) -> Int {
        let factor = streaming ? streamingFactor : 1.0
        var count = 0.0
        if let choices = request["choices"], LuaSemantics.truthy(choices) {
            // Kong's counter also serves response bodies; a request never has this member.
            for choice in choices.arrayValue ?? [] {
                if let content = choice["message"]?["content"], LuaSemantics.truthy(content) {
                    count += Double(words(inContent: content)) * factor
                } else if let text = choice["text"], LuaSemantics.truthy(text) {
                    count += Double(words(inContent: text)) * factor
                }
            }
        } else if let messages = request["messages"], LuaSemantics.truthy(messages) {
            for message in messages.arrayValue ?? [] {
                count += Double(words(inContent: message["content"])) * factor
            }
        } else if let prompt = request["prompt"], LuaSemantics.truthy(prompt) {
            count = try promptCount(prompt, factor: factor)
        }
        return Int((count + 0.5).rounded(.down))
    }

    /// Words of a message content: a string, or the `text` of its `type:"text"` parts.
    static func words(inContent content: JSONValue?) -> Int {
        switch content {
        case .string(let text):
            return words(in: text)
        case .array(let parts):
            return parts.reduce(0) { sum, part in
                guard part["type"] == "text", let text = part["text"]?.stringValue else { return sum }
                return sum + words(in: text)
            }
        default:
            return 0
        }
    }

    static func promptCount(_ prompt: JSONValue, factor: Double) throws(LLMConversionError) -> Double {
        switch prompt {
        case .string(let text):
            return Double(words(in: text)) * factor
        case .object:
            return 0  // a Lua table with no list part: nothing to count
        case .array(let items):
            var count = 0.0
            for item in items {
                switch item {
                case .string(let text): count += Double(words(in: text)) * factor
                case .number: count += 1
                case .object: break
                case .array(let tokens):
                    // Pre-tokenized prompts: one token per number.
                    for token in tokens {
                        guard case .number = token else { throw invalidFormat }
                        count += 1
                    }
                default: throw invalidFormat
                }
            }
            return count
        default:
            throw invalidFormat
        }
    }

    static let invalidFormat = LLMConversionError("Invalid request format")

    /// Lua's `gmatch("%S+")` count: runs of bytes outside the C-locale whitespace set.
    ///
    /// Reads the string's UTF-8 in place, sixteen bytes at a time: message contents run to
    /// kilobytes, and the estimate is made for every request of these providers.
    static func words(in text: String) -> Int {
        var text = text
        return text.withUTF8 { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return 0 }
            var count = LuaSemantics.isSpace(bytes[0]) ? 0 : 1
            var index = 1
            // A word starts at each non-space byte that follows a space: the block is compared
            // with the same bytes one position earlier.
            while index + Block.scalarCount <= bytes.count {
                let current = UnsafeRawPointer(base + index).loadUnaligned(as: Block.self)
                let previous = UnsafeRawPointer(base + index - 1).loadUnaligned(as: Block.self)
                let starts = spaces(previous) .& .!spaces(current)
                count += Int(Block(repeating: 0).replacing(with: Block(repeating: 1), where: starts).wrappedSum())
                index += Block.scalarCount
            }
            while index < bytes.count {
                if LuaSemantics.isSpace(bytes[index - 1]) && !LuaSemantics.isSpace(bytes[index]) { count += 1 }
                index += 1
            }
            return count
        }
    }

    private typealias Block = SIMD16<UInt8>

    /// `LuaSemantics.isSpace` of each byte. (Vector operands throughout: the operators taking a
    /// scalar were compiled lane by lane, slower than the plain loop.)
    private static func spaces(_ block: Block) -> SIMDMask<Block.MaskStorage> {
        (block .== Block(repeating: 0x20)) .| ((block &- Block(repeating: 0x09)) .< Block(repeating: 5))
    }
}
