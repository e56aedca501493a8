import Core
@testable import Plugins
import Testing

/// ai-prompt-template's renderer (spec §9 step 5): Kong's `{{placeholder}}` substitution, exactly,
/// and the expression helpers beyond Kong (docs/decisions.md).
struct PromptTemplateRendererTests {
    static func render(_ template: String, _ properties: JSONValue) throws -> String {
        String(decoding: try PromptTemplate(template).render(properties: properties), as: UTF8.self)
    }

    /// The client-visible message of a failed render; nil when it renders.
    static func failure(_ template: String, _ properties: JSONValue) throws -> String? {
        let parsed = try PromptTemplate(template)
        do {
            _ = try parsed.render(properties: properties)
            return nil
        } catch {
            return error.message
        }
    }

    // MARK: Kong's placeholders

    @Test func kongsDeveloperChatExampleRendersVerbatim() throws {
        let template = """
            {
              "messages": [
                {"role": "system", "content": "You are a {{program}} expert, in {{language}} programming language."},
                {"role": "user", "content": "Write me a {{program}} program."}
              ]
            }
            """
        let text = try Self.render(template, ["language": "python", "program": "flask web server"])
        #expect(text == """
            {
              "messages": [
                {"role": "system", "content": "You are a flask web server expert, in python programming language."},
                {"role": "user", "content": "Write me a flask web server program."}
              ]
            }
            """, "the template's own whitespace is kept")
        #expect(try !PromptTemplate(template).usesExpressions)
    }

    @Test func valuesAreJSONEscapedWithoutQuotesAsCjsonWritesThem() throws {
        let value = "say \"hi\"\\ then/now\nnext\ttab\u{01} é 🦍"
        let text = try Self.render(#"{"content": "{{v}}"}"#, ["v": .string(value)])
        #expect(text == #"{"content": "say \"hi\"\\ then\/now\nnext\ttab\u0001 é 🦍"}"#)
        let parsed = try JSONValue.parse(text)
        #expect(parsed["content"] == .string(value), "an injected quote cannot close the string")
    }

    @Test func everyOccurrenceIsReplacedAndUnknownBracesStayText() throws {
        let text = try Self.render(#"{{a}}-{{a}} {{{a}}} {{ }} {{"k": 1}} {{-a}} {a}"#, ["a": "x"])
        #expect(text == #"x-x {x} {{ }} {{"k": 1}} {{-a}} {a}"#)
    }

    @Test func missingParametersAreListedOnceInOrderOfAppearance() throws {
        #expect(try Self.failure("{{b}} {{a}} {{b}} {{c}}", ["a": "x"]) == "missing template parameters: [b], [c]")
        #expect(try Self.failure(#"{"prompt": "{{program}}"}"#, [:]) == "missing template parameters: [program]")
    }

    /// Kong scans the result, not the template: a value that holds a placeholder is reported too.
    @Test func aValueHoldingAPlaceholderIsReportedMissingAsInKong() throws {
        #expect(try Self.failure("{{a}} and {{b}}", ["a": "{{z}}", "b": "ok"]) == "missing template parameters: [z]")
    }

    @Test func withoutExpressionsEveryPropertyMustBeAStringEvenUnused() throws {
        let template = #"{"prompt": "{{a}}"}"#
        #expect(try Self.failure(template, ["a": "x", "n": 1]) == "property values must be a string, got number")
        #expect(try Self.failure(template, ["a": "x", "b": true]) == "property values must be a string, got boolean")
        #expect(try Self.failure(template, ["a": "x", "o": ["k": "v"]]) == "property values must be a string, got table")
        #expect(try Self.failure(template, ["a": "x", "l": ["v"]]) == "property values must be a string, got table")
        #expect(try Self.failure(template, ["a": "x", "z": nil]) == "property values must be a string, got userdata")
        #expect(try Self.failure(template, ["a": 2, "b": true]) == "property values must be a string, got number",
                "several: the smallest key's type, every time")
    }

    @Test func propertiesMustBeAnObject() throws {
        for properties: JSONValue in ["text", ["a"], [], 3, nil, true] {
            #expect(try Self.failure("{{a}}", properties) == "properties must be an object", "\(properties)")
        }
    }

    // MARK: Expressions

    static let list: JSONValue = ["first", ["role": "x/y"], 3]

    @Test func lenCountsElementsMembersAndCharacters() throws {
        let text = try Self.render("{{ len .l }} {{ len .o }} {{ len .s }} {{ len (jsonify .l) }}",
                                   ["l": Self.list, "o": ["a": 1, "b": 2], "s": "héllo 🦍"])
        #expect(text == #"3 2 7 27"#)
    }

    @Test func jsonifyInsertsCompactJSONAsIs() throws {
        let text = try Self.render(#"{"all": {{ jsonify .l }}, "s": {{ jsonify .s }}, "n": {{jsonify .n}}}"#,
                                   ["l": Self.list, "s": "a\"b", "n": 1.5])
        #expect(text == #"{"all": ["first",{"role":"x\/y"},3], "s": "a\"b", "n": 1.5}"#)
        #expect(try JSONValue.parse(text)["all"] == Self.list)
    }

    @Test func makeJSONObjectBuildsAnObjectFromPairs() throws {
        let text = try Self.render(#"{{ make_json_object "b" .n "a" "x/y" "c" (len .l) "d\u0041" .l }}"#,
                                   ["n": 42, "l": Self.list])
        #expect(text == #"{"a":"x\/y","b":42,"c":3,"dA":["first",{"role":"x\/y"},3]}"#, "compact, keys sorted")
        #expect(try Self.render("{{ make_json_object }}", [:]) == "{}")
    }

    @Test func sliceToIndexMapNumbersTheElementsFromTheStart() throws {
        let replies: JSONValue = ["Hi", "How are you?", "Bye"]
        #expect(try Self.render("{{ jsonify (slice_to_index_map .reply_list 1) }}", ["reply_list": replies])
                == #"{"1":"Hi","2":"How are you?","3":"Bye"}"#)
        #expect(try Self.render("{{ slice_to_index_map .reply_list -1 }}", ["reply_list": replies])
                == #"{"-1":"Hi","0":"How are you?","1":"Bye"}"#, "an object result goes in as compact JSON")
        #expect(try Self.render("{{ slice_to_index_map .empty 0 }}", ["empty": []]) == "{}")
    }

    @Test func aBarePropertyIsEscapedLikeAPlaceholderAndOtherValuesAreJSON() throws {
        let properties: JSONValue = ["who": ["name": "Ana \"A\"", "age": 7], "flag": false, "nothing": nil]
        let text = try Self.render(#"{"n": "{{ .who.name }}", "a": {{ .who.age }}, "w": {{ .who }}, "f": {{ .flag }}, "z": {{ .nothing }}}"#,
                                   properties)
        #expect(text == #"{"n": "Ana \"A\"", "a": 7, "w": {"age":7,"name":"Ana \"A\""}, "f": false, "z": null}"#)
        #expect(try Self.render(#"{{ "lit\"eral\n" }}"#, [:]) == #"{{ "lit\"eral\n" }}"#, "a string first is no expression")
        #expect(try Self.render(#"[{{ (len "abc") }}]"#, [:]) == "[3]")
    }

    @Test func withExpressionsNonStringValuesAreAllowedButNotInPlainPlaceholders() throws {
        #expect(try Self.render("{{ len .l }} {{s}}", ["l": Self.list, "s": "ok", "unused": 1]) == "3 ok")
        #expect(try Self.failure("{{ len .l }} {{n}}", ["l": Self.list, "n": 5]) == "property values must be a string, got number")
        #expect(try PromptTemplate("{{ len .l }}").usesExpressions)
    }

    @Test func missingPropertiesOfExpressionsAreReportedWithThePlaceholders() throws {
        #expect(try Self.failure("{{a}} {{ len .b }} {{c}} {{ make_json_object \"k\" .d.e \"j\" .b }}", ["d": ["x": 1]])
                == "missing template parameters: [a], [b], [c], [d.e]")
        #expect(try Self.failure("{{ .who.name }}", ["who": "not an object"]) == "missing template parameters: [who.name]")
    }

    @Test func typeMismatchesAreTemplateErrors() throws {
        #expect(try Self.failure("{{ len .n }}", ["n": 1]) == "template error: len expects an array, an object or a string, got number")
        #expect(try Self.failure("{{ len .z }}", ["z": nil]) == "template error: len expects an array, an object or a string, got null")
        #expect(try Self.failure("{{ slice_to_index_map .o 1 }}", ["o": ["a": 1]])
                == "template error: slice_to_index_map expects an array as its first argument, got object")
        #expect(try Self.failure("{{ slice_to_index_map .l .s }}", ["l": [], "s": "1"])
                == "template error: slice_to_index_map expects an integer as its second argument, got string")
        #expect(try Self.failure("{{ make_json_object .k 1 }}", ["k": true])
                == "template error: make_json_object keys must be strings, got boolean")
    }

    @Test func aMissingPropertyWinsOverATypeMismatch() throws {
        #expect(try Self.failure("{{ len .n }} {{ len .gone }}", ["n": 1]) == "missing template parameters: [gone]")
    }

    @Test func syntaxErrorsNameTheReasonAndTheExpression() throws {
        #expect(PromptTemplate.validationMessage(for: "{{ len .a }} {{b}}") == nil)
        #expect(PromptTemplate.validationMessage(for: "x {{ jsonify (lenn .a) }} y")
                == "template error: unknown function 'lenn' (functions: len, jsonify, make_json_object, slice_to_index_map) in {{ jsonify (lenn .a) }}")
        // Not a function's name: Kong's text, rendered as written (its `{{b}}` still substituted).
        #expect(PromptTemplate.validationMessage(for: "x {{ lenn .a }} y") == nil)
        #expect(try String(decoding: PromptTemplate("{{ if .x }}{{b}}{{ end }}").render(properties: ["b": "B"]), as: UTF8.self)
                == "{{ if .x }}B{{ end }}")
        #expect(throws: PromptTemplateSyntaxError(reason: "missing ')'", expression: "{{ len (jsonify .a }}")) {
            try PromptTemplate("{{ len (jsonify .a }}")
        }
    }
}
