import Core

/// Which messages of the prompt are screened (`config.text_source`).
enum ContentSafetyTextSource: String, Sendable {
    case allContent = "concatenate_all_content"
    case userContent = "concatenate_user_content"
}

/// The text sent to Azure for analysis (spec ai-plugins §6.3-2 and -8): the prompt folded into one
/// string, or the assistant's answer.
enum ContentSafetyText {
    /// Follows every folded message. Kong's 3.7 plugin used it; the docs' `"; "` is illustration only.
    static let separator = "\n\n"

    /// Azure's Analyze Text limit (characters, counted as UTF-16 units here to stay within it).
    static let azureLimit = 10_000

    /// `text` in pieces Azure accepts, cut between characters: a long answer is checked piece by
    /// piece instead of being refused by Azure (docs/decisions.md).
    static func pieces(_ text: String, limit: Int = azureLimit) -> [Substring] {
        var pieces: [Substring] = []
        var start = text.startIndex
        var units = 0
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(after: index)
            let width = text.utf16.distance(from: index, to: next)
            if units + width > limit, index > start {
                pieces.append(text[start..<index])
                start = index
                units = 0
            }
            units += width
            index = next
        }
        if start < text.endIndex || pieces.isEmpty { pieces.append(text[start...]) }
        return pieces
    }

    /// The prompt's messages in order — all of them, or only `role: "user"` ones — each as its
    /// content followed by the separator. A message without usable content counts as a single
    /// space, as Kong's `(message.content or " ")`; an empty string stays empty (Lua's `""` is
    /// truthy). Empty when no message is selected.
    static func prompt(messages: [JSONValue], source: ContentSafetyTextSource) -> String {
        var text = ""
        for message in messages where source == .allContent || message["role"]?.stringValue == "user" {
            text += (content(message["content"]) ?? " ") + separator
        }
        return text
    }

    /// The assistant text of an OpenAI-shaped answer: each choice's `message.content` (or a
    /// completion's `text`), non-empty ones joined by the separator. Empty when there is none, and
    /// the check is then skipped (the 3.15 rule).
    static func answer(_ response: JSONValue) -> String {
        guard let choices = response["choices"]?.arrayValue else { return "" }
        let texts = choices.compactMap { choice -> String? in
            let text = content(choice["message"]?["content"]) ?? choice["text"]?.stringValue
            return text?.isEmpty == false ? text : nil
        }
        return texts.joined(separator: separator)
    }

    /// A message's `content`: a string as is; a multi-modal parts array (3.12+) as its text parts
    /// joined by newlines (images and other parts are not text Azure can screen). nil when there
    /// is no text at all.
    static func content(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text)?:
            return text
        case .array(let parts)?:
            let texts = parts.compactMap { part -> String? in
                guard part["type"]?.stringValue == "text" else { return nil }
                return part["text"]?.stringValue
            }
            return texts.isEmpty ? nil : texts.joined(separator: "\n")
        default:
            return nil
        }
    }
}
