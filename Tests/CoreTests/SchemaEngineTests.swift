import Testing
@testable import Core

/// The schema engine against Kong's documented messages and shapes (spec §1).
struct SchemaEngineTests {
    let record = RecordSchema([
        "name": Field.string.required(),
        "count": Field.integer.between(0, 10).default(3),
        "ratio": Field.number.gt(0),
        "mode": Field.string.oneOf(["a", "b"]).default("a"),
        "flag": Field.boolean,
        "tags": Field.set(of: Field.string),
        "list": Field.array(of: Field.integer),
        "labels": Field.map(keys: Field.string, values: Field.integer),
        "nested": Field.record(["inner": Field.string.default("x"), "must": Field.integer.required().default(1)]),
        "optional": Field.record(["a": Field.string]).required(false),
        "prefix": Field.string.startsWith("/"),
        "upper": Field.string.match("^%u+$"),
        "short": Field.string.lenMax(3),
        "id": Field.string.uuid(),
        "secret": Field.string.referenceable().lenMin(5),
    ])

    func errors(_ input: [String: JSONValue]) -> ErrorRecord? {
        record.validate(record.processAutoFields(input, context: .insert))
    }

    @Test func defaultsFillAndRecordsExpand() {
        let out = record.processAutoFields(["name": "n"], context: .insert)
        #expect(out["count"] == 3)
        #expect(out["mode"] == "a")
        #expect(out["flag"] == .null)
        #expect(out["nested"] == ["inner": "x", "must": 1])
        #expect(out["optional"] == .null, "a non-required record without default stays null")
        #expect(errors(["name": "n"]) == nil)
    }

    @Test func setsAreDeduplicatedKeepingFirstOccurrence() {
        let out = record.processAutoFields(["name": "n", "tags": ["b", "a", "b"]], context: .insert)
        #expect(out["tags"] == ["b", "a"])
    }

    static let fieldCases: [FieldCase] = [
        FieldCase(["count": 11], "count", "value should be between 0 and 10"),
        FieldCase(["count": 1.5], "count", "expected an integer"),
        FieldCase(["count": "1"], "count", "expected an integer"),
        FieldCase(["ratio": 0], "ratio", "value must be greater than 0"),
        FieldCase(["ratio": "x"], "ratio", "expected a number"),
        FieldCase(["mode": "c"], "mode", "expected one of: a, b"),
        FieldCase(["flag": "true"], "flag", "expected a boolean"),
        FieldCase(["tags": "x"], "tags", "expected a set"),
        FieldCase(["labels": ["a": "x"]], "labels", "expected an integer"),
        FieldCase(["labels": [1]], "labels", "expected a map"),
        FieldCase(["prefix": "a"], "prefix", "should start with: /"),
        FieldCase(["upper": "get"], "upper", "invalid value: get"),
        FieldCase(["short": "abcd"], "short", "length must be at most 3"),
        FieldCase(["id": "nope"], "id", "expected a valid UUID"),
        FieldCase(["secret": "abc"], "secret", "length must be at least 5"),
        FieldCase(["mode": ""], "mode", "expected one of: a, b"),
        FieldCase(["prefix": ""], "prefix", "length must be at least 1"),
        FieldCase(["bogus": 1], "bogus", "unknown field"),
        FieldCase(["name": .null], "name", "required field missing"),
    ]

    @Test(arguments: fieldCases)
    func fieldMessages(c: FieldCase) {
        let (input, field, message) = (c.input, c.field, c.message)
        var full = input
        if full["name"] == nil { full["name"] = "n" }
        let result = errors(full)
        #expect(result?.fields[field] == .message(message))
    }

    @Test func requiredFieldMissing() {
        #expect(errors([:])?.fields["name"] == .message("required field missing"))
    }

    @Test func vaultReferenceBypassesValidators() {
        #expect(errors(["name": "n", "secret": "{vault://env/x}"]) == nil)
    }

    @Test func arrayElementErrorsArePositional() {
        let result = errors(["name": "n", "list": [1, "x", 2, "y"]])
        #expect(result?.json["list"] == [.null, "expected an integer", .null, "expected an integer"])
    }

    @Test func nestedRecordErrorsNest() {
        let result = errors(["name": "n", "nested": ["inner": 5, "must": .null]])
        #expect(result?.json["nested"] == ["inner": "expected a string", "must": "required field missing"])
    }

    @Test func schemaViolationMessageComposition() {
        let one = KongError.schemaViolation(ErrorRecord(fields: ["name": .message("required field missing")]))
        #expect(one.json == ["code": 2, "name": "schema violation",
                             "message": "schema violation (name: required field missing)",
                             "fields": ["name": "required field missing"]])
        let protocolsError = "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"
        let two = KongError.schemaViolation(ErrorRecord(fields: [
            "service": .record(ErrorRecord(fields: ["protocol": .message(protocolsError)])),
            "protocols": .list([0: .message(protocolsError)]),
        ]))
        #expect(two.message == "2 schema violations (protocols.1: \(protocolsError); service.protocol: \(protocolsError))")
        let entity = KongError.schemaViolation(ErrorRecord(fields: ["a": .message("x")], entity: ["first"]))
        #expect(entity.message == "2 schema violations (first; a: x)")
        #expect(entity.json["fields"]?["@entity"] == ["first"])
    }
}

struct EntityCheckTests {
    func check(_ checks: [EntityCheck], _ input: [String: JSONValue]) -> ErrorRecord? {
        let record = RecordSchema([
            "a": Field.string, "b": Field.string, "c": Field.string,
            "n": Field.integer.between(0, 5),
            "sub": Field.record(["x": Field.string, "y": Field.string]).required(false),
        ], checks: checks)
        return record.validate(record.processAutoFields(input, context: .insert))
    }

    static let failingChecks: [CheckCase] = [
        CheckCase(.atLeastOneOf(["a", "b"]), [:],
         "at least one of these fields must be non-empty: 'a', 'b'"),
        CheckCase(.onlyOneOf(["a", "b"]), ["a": "1", "b": "2"], "exactly one of these fields must be non-empty: 'a', 'b'"),
        CheckCase(.onlyOneOf(["a", "b"]), [:], "exactly one of these fields must be non-empty: 'a', 'b'"),
        CheckCase(.mutuallyRequired(["a", "b"]), ["a": "1"], "all or none of these fields must be set: 'a', 'b'"),
        CheckCase(.mutuallyExclusive(["a", "b"]), ["a": "1", "b": "2"], "only one or none of these fields must be set: 'a', 'b'"),
        CheckCase(.mutuallyExclusiveSets(set1: ["a"], set2: ["b", "c"]), ["a": "1", "c": "2"],
         "these sets are mutually exclusive: ('a'), ('c')"),
        CheckCase(.distinct(["a", "b"]), ["a": "1", "b": "1"], "values of these fields must be distinct: 'a', 'b'"),
        CheckCase(.mutuallyRequired(["sub.x", "sub.y"]), ["sub": ["x": "1"]],
         "all or none of these fields must be set: 'sub.x', 'sub.y'"),
    ]

    @Test(arguments: failingChecks)
    func entityErrors(c: CheckCase) {
        #expect(self.check([c.check], c.input)?.entity == [c.message!])
    }

    static let passingCases: [CheckCase] = [
        CheckCase(.atLeastOneOf(["a", "b"]), ["b": "1"]),
        CheckCase(.onlyOneOf(["a", "b"]), ["a": "1"]),
        CheckCase(.mutuallyRequired(["a", "b"]), [:]),
        CheckCase(.mutuallyRequired(["a", "b"]), ["a": "1", "b": "2"]),
        CheckCase(.mutuallyExclusive(["a", "b"]), ["b": "2"]),
        CheckCase(.distinct(["a", "b"]), ["a": "1", "b": "2"]),
    ]

    @Test(arguments: passingCases)
    func passingChecks(c: CheckCase) {
        #expect(self.check([c.check], c.input) == nil)
    }

    @Test func conditionalReportsFieldAndEntityError() {
        let conditional = EntityCheck.conditional(ifField: "a", ifMatch: Field.rule.oneOf(["on"]),
                                                  thenField: "b", thenMatch: Field.rule.required())
        let result = check([conditional], ["a": "on"])
        #expect(result?.fields["b"] == .message("required field missing"))
        #expect(result?.entity == ["failed conditional validation given value of field 'a'"])
        #expect(check([conditional], ["a": "off"]) == nil)

        let withErr = EntityCheck.conditional(ifField: "a", ifMatch: Field.rule.oneOf(["on"]), thenField: "c",
                                              thenMatch: Field.rule.eq("z"), thenErr: "c must be z when %s is on")
        let r2 = check([withErr], ["a": "on", "c": "y"])
        #expect(r2?.fields["c"] == .message("value must be z"))
        #expect(r2?.entity == ["c must be z when a is on"])
    }

    @Test func conditionalAtLeastOneOfWithElse() {
        let c = EntityCheck.conditionalAtLeastOneOf(ConditionalAtLeastOneOf(
            ifField: "a", ifMatch: Field.rule.oneOf(["x"]), thenAtLeastOneOf: ["b"], thenErr: "need %s for x",
            elseMatch: Field.rule.oneOf(["y"]), elseThenAtLeastOneOf: ["c"], elseThenErr: "need %s for y"))
        #expect(check([c], ["a": "x"])?.entity == ["need 'b' for x"])
        #expect(check([c], ["a": "y"])?.entity == ["need 'c' for y"])
        #expect(check([c], ["a": "z"]) == nil)
        #expect(check([c], ["a": "x", "b": "1"]) == nil)
    }

    @Test func checksSkipFieldsThatAlreadyFailed() {
        // mutually_required does not run when one of its fields is invalid; the field error stands alone.
        let result = check([.mutuallyRequired(["n", "a"])], ["n": 9])
        #expect(result?.fields["n"] == .message("value should be between 0 and 5"))
        #expect(result?.entity == [])
    }

    @Test func customCheck() {
        let custom = EntityCheck.custom(CustomEntityCheck(name: "ab", fieldSources: ["a", "b"]) { value in
            value["a"] == value["b"] ? "a and b must differ" : nil
        })
        #expect(check([custom], ["a": "1", "b": "1"])?.entity == ["a and b must differ"])
        #expect(check([custom], ["a": "1", "b": "2"]) == nil)
    }

    @Test func updateContextWording() {
        let record = RecordSchema(["a": Field.string, "b": Field.string], checks: [.atLeastOneOf(["a", "b"])])
        let errors = record.validate(["a": .null], options: .update)
        #expect(errors?.entity == ["when updating, at least one of these fields must be non-empty: 'a', 'b'"])
    }
}

struct LuaPatternTests {
    @Test(arguments: [
        ("^%u+$", "GET", true), ("^%u+$", "Get", false), ("^[%w%.%-%_~]+$", "my-svc.v1~", true),
        ("^[%w%.%-%_~]+$", "a b", false), ("//", "/a//b", true), ("^%d+%.?%d*$", "12.5", true),
        ("a.-b", "axxb", true), ("^x?y$", "y", true), ("[^abc]", "abc", false),
    ])
    func matches(pattern: String, subject: String, expected: Bool) {
        #expect(LuaPattern(pattern).matches(subject) == expected)
    }
}

struct FieldCase: Sendable, CustomTestStringConvertible {
    let input: [String: JSONValue]
    let field: String
    let message: String
    init(_ input: [String: JSONValue], _ field: String, _ message: String) {
        self.input = input
        self.field = field
        self.message = message
    }
    var testDescription: String { "\(field): \(message)" }
}

struct CheckCase: Sendable {
    let check: EntityCheck
    let input: [String: JSONValue]
    let message: String?
    init(_ check: EntityCheck, _ input: [String: JSONValue], _ message: String? = nil) {
        self.check = check
        self.input = input
        self.message = message
    }
}
