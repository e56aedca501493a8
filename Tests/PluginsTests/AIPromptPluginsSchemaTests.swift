import Core
import Plugins
import Testing

/// Schemas of ai-prompt-decorator (§7), ai-prompt-guard (§8) and ai-prompt-template (§9): defaults,
/// accepted configurations and every field / entity-check message, through the real write path.

// MARK: - ai-prompt-decorator

let minimalDecorator: JSONValue = ["prompts": ["append": [["role": "user", "content": "Answer in French."]]]]

func decorator(_ patch: JSONValue, extra: [String: JSONValue] = [:]) -> Result<[String: JSONValue], ErrorRecord> {
    processPlugin("ai-prompt-decorator", config: merging(minimalDecorator, patch), extra: extra)
}

let decoratorAtLeastOne = "at least one of these fields must be non-empty: 'config.prompts.prepend', 'config.prompts.append'"

let decoratorDefaults: [DefaultValue] = [
    DefaultValue("config.prompts.prepend", nil),
    DefaultValue("config.max_request_body_size", 8192),
    DefaultValue("config.llm_format", "openai"),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
]

@Test(arguments: decoratorDefaults)
func decoratorMinimalConfigGetsDefaults(_ expected: DefaultValue) {
    guard let entity = expectValid(decorator([:])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

@Test func decoratorMessageRoleDefaultsToSystem() {
    guard let entity = expectValid(decorator(["prompts": ["prepend": [["content": "You are terse."]]]])) else { return }
    #expect(lookup(entity, "config.prompts.prepend.0.role") == "system")
    #expect(lookup(entity, "config.prompts.prepend.0.content") == "You are terse.")
    #expect(lookup(entity, "config.prompts.append.0.role") == "user", "a given role is kept")
}

let validDecoratorConfigs: [ConfigCase] = [
    ConfigCase("prepend only", ["prompts": ["prepend": [["role": "system", "content": "Prepend text 1 here."]], "append": nil]], [:]),
    ConfigCase("prepend with an empty append", ["prompts": ["prepend": [["content": "p"]], "append": []]], [:]),
    ConfigCase("append with an empty prepend", ["prompts": ["prepend": []]], [:]),
    ConfigCase("every role", ["prompts": ["prepend": [
        ["role": "system", "content": "s"], ["role": "assistant", "content": "a"], ["role": "user", "content": "u"],
    ]]], [:]),
    ConfigCase("15 messages of 500 characters",
               ["prompts": ["prepend": .array(Array(repeating: ["content": .string(String(repeating: "x", count: 500))], count: 15))]], [:]),
    ConfigCase("gemini format and a larger body", ["llm_format": "gemini", "max_request_body_size": 1_048_576], [:]),
    ConfigCase("bedrock format", ["llm_format": "bedrock"], [:]),
]

@Test(arguments: validDecoratorConfigs)
func decoratorAcceptsValidConfigs(_ config: ConfigCase) {
    _ = expectValid(decorator(config.patch))
}

let invalidDecoratorConfigs: [ConfigCase] = [
    ConfigCase("no prompts", ["prompts": nil], ["@entity": decoratorAtLeastOne]),
    ConfigCase("empty prompts record", ["prompts": ["append": nil]], ["@entity": decoratorAtLeastOne]),
    ConfigCase("two empty arrays", ["prompts": ["prepend": [], "append": []]], ["@entity": decoratorAtLeastOne]),
    ConfigCase("16 messages", ["prompts": ["prepend": .array(Array(repeating: ["content": "x"], count: 16))]],
               ["config.prompts.prepend": "length must be at most 15"]),
    ConfigCase("16 appended messages", ["prompts": ["append": .array(Array(repeating: ["content": "x"], count: 16))]],
               ["config.prompts.append": "length must be at most 15"]),
    ConfigCase("empty content", ["prompts": ["append": [["content": ""]]]],
               ["config.prompts.append.0.content": "length must be at least 1"]),
    ConfigCase("content of 501 characters", ["prompts": ["append": [["content": .string(String(repeating: "x", count: 501))]]]],
               ["config.prompts.append.0.content": "length must be at most 500"]),
    ConfigCase("content missing", ["prompts": ["append": [["role": "user"]]]],
               ["config.prompts.append.0.content": "required field missing"]),
    ConfigCase("content type", ["prompts": ["append": [["content": 1]]]],
               ["config.prompts.append.0.content": "expected a string"]),
    ConfigCase("unknown role", ["prompts": ["prepend": [["role": "tool", "content": "x"]]]],
               ["config.prompts.prepend.0.role": "expected one of: system, assistant, user"]),
    ConfigCase("unknown message field", ["prompts": ["append": [["content": "x", "name": "bob"]]]],
               ["config.prompts.append.0.name": "unknown field"]),
    ConfigCase("prepend type", ["prompts": ["prepend": "be nice"]], ["config.prompts.prepend": "expected an array"]),
    ConfigCase("max_request_body_size zero", ["max_request_body_size": 0],
               ["config.max_request_body_size": "value must be greater than 0"]),
    ConfigCase("max_request_body_size type", ["max_request_body_size": 1.5],
               ["config.max_request_body_size": "expected an integer"]),
    ConfigCase("llm_format one_of", ["llm_format": "anthropic"],
               ["config.llm_format": "expected one of: openai, bedrock, gemini"]),
    ConfigCase("unknown config field", ["messages": []], ["config.messages": "unknown field"]),
]

@Test(arguments: invalidDecoratorConfigs)
func decoratorRejectsInvalidConfigs(_ config: ConfigCase) {
    expectErrors(decorator(config.patch), config.expected)
}

@Test func decoratorRejectsAnEmptyConfig() {
    expectErrors(processPlugin("ai-prompt-decorator", config: [:]), ["@entity": decoratorAtLeastOne])
}

/// None of the three prompt plugins says `no_consumer` (Kong's published 3.10 schemas offer the
/// consumer and consumer-group scopes).
@Test(arguments: ["ai-prompt-decorator", "ai-prompt-guard", "ai-prompt-template"])
func promptPluginsCanBeScopedToConsumersAndGroups(_ name: String) {
    let config: JSONValue = switch name {
    case "ai-prompt-decorator": minimalDecorator
    case "ai-prompt-guard": minimalGuard
    default: minimalTemplate
    }
    _ = expectValid(processPlugin(name, config: config, extra: ["consumer": someConsumer]))
    _ = expectValid(processPlugin(name, config: config, extra: ["consumer_group": someConsumer]))
}

@Test func promptPluginsHaveKongsPriorities() throws {
    let priorities = Dictionary(uniqueKeysWithValues: BundledPlugins.all.map { ($0.name, $0.priority) })
    #expect(priorities["ai-prompt-template"] == 773)
    #expect(priorities["ai-prompt-decorator"] == 772)
    #expect(priorities["ai-prompt-guard"] == 771)
    #expect(try #require(priorities["ai-proxy"]) < 771)
}

// MARK: - ai-prompt-guard

let minimalGuard: JSONValue = ["deny_patterns": [".*leicester.*"]]

func promptGuard(_ patch: JSONValue, extra: [String: JSONValue] = [:]) -> Result<[String: JSONValue], ErrorRecord> {
    processPlugin("ai-prompt-guard", config: merging(minimalGuard, patch), extra: extra)
}

let guardAtLeastOne = "at least one of these fields must be non-empty: 'config.allow_patterns', 'config.deny_patterns'"

let guardDefaults: [DefaultValue] = [
    DefaultValue("config.allow_patterns", nil),
    DefaultValue("config.deny_patterns", [".*leicester.*"]),
    DefaultValue("config.allow_all_conversation_history", false),
    DefaultValue("config.match_all_roles", false),
    DefaultValue("config.max_request_body_size", 8192),
    DefaultValue("config.llm_format", "openai"),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
]

@Test(arguments: guardDefaults)
func guardMinimalConfigGetsDefaults(_ expected: DefaultValue) {
    guard let entity = expectValid(promptGuard([:])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

let validGuardConfigs: [ConfigCase] = [
    ConfigCase("allow only", ["deny_patterns": nil, "allow_patterns": [".*cheddar.*", ".*brie.*"]], [:]),
    ConfigCase("allow and deny, history allowed", [
        "allow_patterns": [".*cheddar.*"], "allow_all_conversation_history": true,
    ], [:]),
    ConfigCase("match_all_roles with history checked", ["match_all_roles": true, "allow_all_conversation_history": false], [:]),
    ConfigCase("10 patterns of 500 characters",
               ["deny_patterns": .array(Array(repeating: .string(String(repeating: "a", count: 500)), count: 10))], [:]),
    // Kong does not compile patterns at configuration time: an invalid one is a 500 per request.
    ConfigCase("invalid regex accepted", ["deny_patterns": ["[]"]], [:]),
    ConfigCase("native formats", ["llm_format": "gemini", "max_request_body_size": 65536], [:]),
]

@Test(arguments: validGuardConfigs)
func guardAcceptsValidConfigs(_ config: ConfigCase) {
    _ = expectValid(promptGuard(config.patch))
}

let invalidGuardConfigs: [ConfigCase] = [
    ConfigCase("no patterns", ["deny_patterns": nil, "allow_all_conversation_history": true], ["@entity": guardAtLeastOne]),
    ConfigCase("two empty arrays", ["deny_patterns": [], "allow_patterns": []], ["@entity": guardAtLeastOne]),
    ConfigCase("11 allow patterns", ["allow_patterns": .array(Array(repeating: "pattern", count: 11))],
               ["config.allow_patterns": "length must be at most 10"]),
    ConfigCase("11 deny patterns", ["deny_patterns": .array(Array(repeating: "pattern", count: 11))],
               ["config.deny_patterns": "length must be at most 10"]),
    ConfigCase("pattern of 501 characters", ["allow_patterns": [.string(String(repeating: "x", count: 501))]],
               ["config.allow_patterns.0": "length must be at most 500"]),
    ConfigCase("empty deny pattern", ["deny_patterns": ["ok", ""]], ["config.deny_patterns.1": "length must be at least 1"]),
    ConfigCase("pattern type", ["deny_patterns": [1]], ["config.deny_patterns.0": "expected a string"]),
    ConfigCase("match_all_roles needs the history checked", ["match_all_roles": true, "allow_all_conversation_history": true], [
        "@entity": "failed conditional validation given value of field 'config.match_all_roles'",
        "config.allow_all_conversation_history": "value must be false",
    ]),
    ConfigCase("allow_all_conversation_history type", ["allow_all_conversation_history": "yes"],
               ["config.allow_all_conversation_history": "expected a boolean"]),
    ConfigCase("match_all_roles type", ["match_all_roles": 1], ["config.match_all_roles": "expected a boolean"]),
    ConfigCase("max_request_body_size negative", ["max_request_body_size": -1],
               ["config.max_request_body_size": "value must be greater than 0"]),
    ConfigCase("llm_format one_of", ["llm_format": "cohere"], ["config.llm_format": "expected one of: openai, bedrock, gemini"]),
    ConfigCase("unknown config field", ["patterns": ["x"]], ["config.patterns": "unknown field"]),
]

@Test(arguments: invalidGuardConfigs)
func guardRejectsInvalidConfigs(_ config: ConfigCase) {
    expectErrors(promptGuard(config.patch), config.expected)
}

// MARK: - ai-prompt-template

let kongDeveloperChat = """
    {
      "messages": [
        {"role": "system", "content": "You are a {{program}} expert, in {{language}} programming language."},
        {"role": "user", "content": "Write me a {{program}} program."}
      ]
    }
    """

let minimalTemplate: JSONValue = ["templates": [["name": "developer-chat", "template": .string(kongDeveloperChat)]]]

func promptTemplate(_ patch: JSONValue, extra: [String: JSONValue] = [:]) -> Result<[String: JSONValue], ErrorRecord> {
    processPlugin("ai-prompt-template", config: merging(minimalTemplate, patch), extra: extra)
}

/// A one-template config whose template is `text`.
func promptTemplate(text: String) -> Result<[String: JSONValue], ErrorRecord> {
    promptTemplate(["templates": [["name": "t", "template": .string(text)]]])
}

let templateDefaults: [DefaultValue] = [
    DefaultValue("config.allow_untemplated_requests", true),
    DefaultValue("config.log_original_request", false),
    DefaultValue("config.max_request_body_size", 8192),
    DefaultValue("config.templates.0.name", "developer-chat"),
    DefaultValue("protocols", ["grpc", "grpcs", "http", "https"]),
]

@Test(arguments: templateDefaults)
func templateMinimalConfigGetsDefaults(_ expected: DefaultValue) {
    guard let entity = expectValid(promptTemplate([:])) else { return }
    #expect(lookup(entity, expected.path) == expected.value)
}

let validTemplateConfigs: [ConfigCase] = [
    ConfigCase("no templates at all", ["templates": []], [:]),
    ConfigCase("several templates and options", [
        "templates": [
            ["name": "developer-chat", "template": .string(kongDeveloperChat)],
            ["name": "developer-completions", "template": #"{"prompt": "You are a {{language}} programming expert."}"#],
        ],
        "allow_untemplated_requests": false, "log_original_request": true, "max_request_body_size": 16384,
    ], [:]),
    ConfigCase("expressions", ["templates": [["name": "x", "template": """
        {"n": {{ len .items }}, "all": {{ jsonify .items }}, "o": {{ make_json_object "a" .a "b" (len "xyz") }},
         "m": {{ jsonify (slice_to_index_map .reply_list 1) }}, "s": "{{ .who.name }}", "neg": {{ slice_to_index_map .l -2 }}}
        """]]], [:]),
    // Not expressions (Kong leaves them as text): blanks only, a JSON-looking `{{"`, `{{{`.
    ConfigCase("braces that are not expressions", ["templates": [["name": "x", "template": #"{{ }} {{"a": 1}} {{{name}}} {{-}}"#]]], [:]),
]

@Test(arguments: validTemplateConfigs)
func templateAcceptsValidConfigs(_ config: ConfigCase) {
    _ = expectValid(promptTemplate(config.patch))
}

let invalidTemplateConfigs: [ConfigCase] = [
    ConfigCase("templates required", ["templates": nil], ["config.templates": "required field missing"]),
    ConfigCase("templates type", ["templates": ["name": "x", "template": "y"]], ["config.templates": "expected an array"]),
    ConfigCase("template name required", ["templates": [["template": "{}"]]], ["config.templates.0.name": "required field missing"]),
    ConfigCase("template text required", ["templates": [["name": "x"]]], ["config.templates.0.template": "required field missing"]),
    ConfigCase("template name empty", ["templates": [["name": "", "template": "{}"]]],
               ["config.templates.0.name": "length must be at least 1"]),
    ConfigCase("template unknown field", ["templates": [["name": "x", "template": "{}", "description": "d"]]],
               ["config.templates.0.description": "unknown field"]),
    ConfigCase("allow_untemplated_requests type", ["allow_untemplated_requests": "no"],
               ["config.allow_untemplated_requests": "expected a boolean"]),
    ConfigCase("log_original_request type", ["log_original_request": 0], ["config.log_original_request": "expected a boolean"]),
    ConfigCase("max_request_body_size zero", ["max_request_body_size": 0],
               ["config.max_request_body_size": "value must be greater than 0"]),
    ConfigCase("unknown config field", ["llm_format": "openai"], ["config.llm_format": "unknown field"]),
]

@Test(arguments: invalidTemplateConfigs)
func templateRejectsInvalidConfigs(_ config: ConfigCase) {
    expectErrors(promptTemplate(config.patch), config.expected)
}

/// A template text the schema must refuse, and the message it must give.
struct TemplateSyntaxCase: Sendable, CustomTestStringConvertible {
    let label: String
    let text: String
    let message: String

    init(_ label: String, _ text: String, _ message: String) {
        self.label = label
        self.text = text
        self.message = message
    }

    var testDescription: String { label }
}

/// Beyond Kong: a template expression that does not parse is refused at configuration time, with
/// the reason and the expression quoted.
let badTemplateExpressions: [TemplateSyntaxCase] = [
    TemplateSyntaxCase("unknown function inside a call", #"{"a": {{ jsonify (upper .x) }}}"#,
                       "template error: unknown function 'upper' (functions: len, jsonify, make_json_object, slice_to_index_map) in {{ jsonify (upper .x) }}"),
    TemplateSyntaxCase("len without argument", #"{"n": {{ len }}}"#,
                       "template error: len takes 1 argument, got 0 arguments in {{ len }}"),
    TemplateSyntaxCase("jsonify with two arguments", #"{{ jsonify .a .b }}"#,
                       "template error: jsonify takes 1 argument, got 2 arguments in {{ jsonify .a .b }}"),
    TemplateSyntaxCase("slice_to_index_map with one argument", #"{{ slice_to_index_map .l }}"#,
                       "template error: slice_to_index_map takes 2 arguments (a list and its first index), got 1 argument in {{ slice_to_index_map .l }}"),
    TemplateSyntaxCase("make_json_object with an odd count", #"{{ make_json_object "a" }}"#,
                       #"template error: make_json_object takes key/value pairs, got 1 argument in {{ make_json_object "a" }}"#),
    TemplateSyntaxCase("make_json_object with a number key", #"{{ make_json_object 1 .a }}"#,
                       "template error: make_json_object keys must be strings in {{ make_json_object 1 .a }}"),
    TemplateSyntaxCase("unbalanced parenthesis", #"{{ jsonify (len .a }}"#,
                       "template error: missing ')' in {{ jsonify (len .a }}"),
    TemplateSyntaxCase("nested call without parentheses", #"{{ jsonify len .a }}"#,
                       "template error: a call used as an argument needs parentheses: (len …) in {{ jsonify len .a }}"),
    TemplateSyntaxCase("unclosed expression", #"{"a": {{ .x"#,
                       #"template error: missing '}}' in {{ .x"#),
    TemplateSyntaxCase("dot without a name", #"{{ len . }}"#,
                       "template error: expected a property name after '.' in {{ len . }}"),
    TemplateSyntaxCase("unterminated string", #"{{ make_json_object "a .b }}"#,
                       #"template error: unterminated string in {{ make_json_object "a .b }}"#),
    TemplateSyntaxCase("decimal number", #"{{ slice_to_index_map .l 1.5 }}"#,
                       "template error: only integer numbers are supported in {{ slice_to_index_map .l 1.5 }}"),
    TemplateSyntaxCase("two operands", #"{{ .a .b }}"#,
                       "template error: unexpected '.' after the expression in {{ .a .b }}"),
]

@Test(arguments: badTemplateExpressions)
func templateRejectsExpressionsThatDoNotParse(_ bad: TemplateSyntaxCase) {
    expectErrors(promptTemplate(text: bad.text), ["config.templates.0.template": bad.message])
}

/// A `{{` that does not start with `.`, `(` or a function's name is Kong's text, so a Kong
/// configuration whose prompts hold Go, Jinja or Mustache examples, kebab-case or dotted
/// placeholders, loads unchanged.
@Test(arguments: [#"{"a": "{{ name }}"}"#, #"{"a": "{{user-name}} {{user.name}} {{name }}"}"#,
                  #"{"a": "{{ if .x }}yes{{ end }}"}"#, #"{"a": "{{ upper .x }}"}"#])
func templateTextThatIsNoExpressionIsKongsText(_ text: String) {
    _ = expectValid(promptTemplate(text: text))
}
