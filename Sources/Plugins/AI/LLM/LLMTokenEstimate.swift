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
    static func words(in text: String) -> Int {
        var count = 0
        var inWord = false
        for byte in text.utf8 {
            if LuaSemantics.isSpace(byte) {
                inWord = false
            } else if !inWord {
                inWord = true
                count += 1
            }
        }
        return count
    }
}
