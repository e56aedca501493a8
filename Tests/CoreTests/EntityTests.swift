import Testing
@testable import Core

/// Core entities against spec §2 (fields, defaults, messages).
struct EntityTests {
    let registry = EntityRegistry(plugins: [])

    func process(_ entity: String, _ input: [String: JSONValue]) -> Result<[String: JSONValue], ErrorRecord> {
        registry[entity]!.process(input, context: .insert)
    }

    func errors(_ entity: String, _ input: [String: JSONValue]) -> JSONValue? {
        if case .failure(let e) = process(entity, input) { return e.json }
        return nil
    }

    @Test func serviceURLShorthandExpandsAndDefaultsFill() throws {
        let service = try process("services", ["url": "https://example.com/v1", "host": "ignored"]).get()
        #expect(service["protocol"] == "https")
        #expect(service["host"] == "example.com")
        #expect(service["port"] == 443)
        #expect(service["path"] == "/v1")
        #expect(service["retries"] == 5)
        #expect(service["connect_timeout"] == 60000)
        #expect(service["enabled"] == true)
        #expect(service["url"] == nil, "shorthands are never stored")
        #expect(service["id"]?.stringValue.map(UUIDText.isValid) == true)
        #expect(service["created_at"]?.intValue != nil)
        let plain = try process("services", ["url": "http://svc:8080"]).get()
        #expect(plain["port"] == 8080)
        #expect(plain["path"] == .null)
    }

    static let serviceCases: [ErrorCase] = [
        ErrorCase(["host": "example.com", "port": 70000], ["port": "value should be between 0 and 65535"]),
        ErrorCase([:], ["host": "required field missing"]),
        ErrorCase(["host": "example.com:80"], ["host": "must not have a port"]),
        ErrorCase(["host": "exa mple"], ["host": "invalid value: exa mple"]),
        ErrorCase(["host": "h", "protocol": "ftp"], ["protocol": "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"]),
        ErrorCase(["host": "h", "path": "/a//b"], ["path": "must not have empty segments"]),
        ErrorCase(["host": "h", "path": "a"], ["path": "should start with: /"]),
        ErrorCase(["host": "h", "path": "/a b"], ["path": "invalid path: '/a b' (characters outside of the reserved list of RFC 3986 found)"]),
        ErrorCase(["host": "h", "path": "/a%zz"], ["path": "invalid url-encoded value: '%zz'"]),
        ErrorCase(["host": "h", "name": "bad name"], ["name": "invalid value 'bad name': the only accepted ascii characters are alphanumerics or ., -, _, and ~"]),
        ErrorCase(["host": "h", "tags": ["a,b"]], ["tags": ["invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"]]),
        ErrorCase(["host": "h", "connect_timeout": 0], ["connect_timeout": "value should be between 1 and 2147483646"]),
        ErrorCase(["url": "invalid::#//url"], ["host": "required field missing", "path": "should start with: /",
                                             "protocol": "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"]),
        ErrorCase(["url": "foo"], ["host": "required field missing", "path": "should start with: /"]),
    ]

    @Test(arguments: serviceCases)
    func serviceErrors(c: ErrorCase) {
        #expect(errors("services", c.input) == c.expected)
    }

    @Test func serviceProtocolConditionals() {
        #expect(errors("services", ["host": "h", "protocol": "tcp", "path": "/x"]) ==
                ["path": "value must be null", "@entity": ["failed conditional validation given value of field 'protocol'"]])
        #expect(errors("services", ["host": "h", "protocol": "http", "tls_verify": true]) ==
                ["tls_verify": "value must be null", "@entity": ["failed conditional validation given value of field 'protocol'"]])
        #expect(errors("services", ["host": "h", "protocol": "https", "tls_verify": true]) == nil)
    }

    static let routeCases: [ErrorCase] = [
        // No protocols: the defaults (http, https) bring their rules; https is reported, as in Kong.
        ErrorCase(["name": "r"],
         ["@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"]]),
        ErrorCase(["protocols": ["http"]],
         ["@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"]]),
        ErrorCase(["paths": ["/a"], "protocols": ["https"], "sources": [["ip": "1.2.3.4"]]],
         ["sources": "cannot set 'sources' when 'protocols' is 'http' or 'https'"]),
        ErrorCase(["methods": ["get"]], ["methods": ["invalid value: get"]]),
        ErrorCase(["paths": ["a"]], ["paths": ["should start with: / (fixed path) or ~/ (regex path)"]]),
        ErrorCase(["paths": ["/a/../b"]], ["paths": ["non-normalized path, consider use '/b' instead"]]),
        ErrorCase(["paths": ["~/(a"]], ["paths": ["invalid regex: '/(a' (PCRE returned: invalid regular expression)"]]),
        ErrorCase(["hosts": ["*.a.*"]], ["hosts": ["invalid wildcard: must have at most one wildcard"]]),
        ErrorCase(["hosts": ["a.*.b"]], ["hosts": ["invalid wildcard: must be placed at leftmost or rightmost label"]]),
        ErrorCase(["headers": ["Host": ["x"]]], ["headers": "cannot contain 'host' header, which must be specified in the 'hosts' attribute"]),
        ErrorCase(["headers": ["bad header": ["x"]]], ["headers": "bad header name 'bad header', allowed characters are A-Z, a-z, 0-9, '_', and '-'"]),
        ErrorCase(["paths": ["/a"], "protocols": ["http", "tcp"]],
         ["protocols": "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')"]),
        ErrorCase(["paths": ["/a"], "protocols": ["foo"]],
         ["protocols": ["expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"]]),
        ErrorCase(["paths": ["/a"], "protocols": ["http"], "snis": ["a.com"]],
         ["snis": "length must be 0",
          "@entity": ["'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"]]),
        ErrorCase(["paths": ["/a"], "protocols": ["grpc"], "strip_path": true],
         ["strip_path": "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'"]),
        ErrorCase(["protocols": ["tcp"]], ["@entity": ["must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'"]]),
        ErrorCase(["protocols": ["tls_passthrough"]], ["@entity": ["must set snis when 'protocols' is 'tls_passthrough'"]]),
        ErrorCase(["protocols": ["tcp"], "paths": ["/a"], "sources": [["port": 1]]],
         ["paths": "cannot set 'paths' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"]),
        ErrorCase(["paths": ["/a"], "https_redirect_status_code": 200], ["https_redirect_status_code": "expected one of: 426, 301, 302, 307, 308"]),
    ]

    @Test(arguments: routeCases)
    func routeErrors(c: ErrorCase) {
        #expect(errors("routes", c.input) == c.expected)
    }

    @Test func routeDefaultsAndGrpcStripPath() throws {
        let route = try process("routes", ["paths": ["/x"]]).get()
        #expect(route["protocols"] == ["http", "https"])
        #expect(route["strip_path"] == true)
        #expect(route["preserve_host"] == false)
        #expect(route["regex_priority"] == 0)
        #expect(route["https_redirect_status_code"] == 426)
        let grpc = try process("routes", ["paths": ["/x"], "protocols": ["grpc"]]).get()
        #expect(grpc["strip_path"] == false, "grpc routes default strip_path to false")
    }

    @Test func consumerNeedsUsernameOrCustomID() {
        #expect(errors("consumers", [:]) ==
                ["@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]])
        #expect(errors("consumers", ["custom_id": "c1"]) == nil)
    }

    @Test func pluginWithUnknownNameStopsValidation() {
        #expect(errors("plugins", ["name": "nope", "config": ["x": 1]]) ==
                ["name": "plugin 'nope' not enabled; add it to the 'plugins' configuration property"])
        #expect(errors("plugins", [:]) == ["name": "required field missing"])
    }

    @Test func schemaExportKeepsFieldOrderAndAttributes() {
        let export = registry["services"]!.exportJSON
        let fields = export["fields"]?.arrayValue ?? []
        #expect(fields.first == ["id": ["type": "string", "uuid": true, "auto": true]])
        let retries = fields.first(where: { $0["retries"] != nil })?["retries"]
        #expect(retries == ["type": "integer", "default": 5, "between": [0, 32767]])
        #expect(export["endpoint_key"] == "name")
    }

    @Test func pathNormalization() {
        #expect(PathSyntax.normalize("/a/./b/../c") == "/a/c")
        #expect(PathSyntax.normalize("/%7euser/%2f") == "/~user/%2F")
        #expect(PathSyntax.normalize("/a/") == "/a/")
    }

    @Test func nameBasedUUIDMatchesRFC4122() {
        #expect(NameBasedUUID.v5(namespace: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", name: "www.example.com")
                == "2ed6657d-e927-568b-95e1-2665a8aea6a2")
    }

    @Test func jsonRoundTripAndKongLenience() throws {
        let value = try JSONValue.parse(#"{"a":[1,2.5,true,null,"x\u00e9\n"],"b":{}}"#)
        #expect(value == ["a": [1, 2.5, true, nil, "x\u{e9}\n"], "b": [:]])
        #expect(try JSONValue.parse(value.serialized()) == value)
        #expect(try JSONValue.parse("\"raw\nnewline\"") == "raw\nnewline", "raw control characters are accepted")
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{\"a\":}") }
        #expect(JSONValue.number(3).serialized() == "3")
    }

    /// Numbers read directly (plain integers) and through text (the rest) agree with Double's
    /// own reading; strings with and without escapes read the same text.
    @Test func jsonNumbersAndStringsReadExactly() throws {
        for text in ["0", "-0", "7", "-42", "123456789012345", "1234567890123456789", "-98765432109876543",
                     "2.5", "-0.125", "1e3", "1E-2", "12.5e+2"] {
            let value = try #require(try JSONValue.parse(text).numberValue, "\(text)")
            #expect(value == Double(text)!, "\(text)")
            #expect(value.sign == Double(text)!.sign, "\(text)")
        }
        #expect(try JSONValue.parse(#"["plain", "", "a\"b", "tab\tand \u00e9", "end\\"]"#)
                == ["plain", "", "a\"b", "tab\tand \u{e9}", "end\\"])
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#""unterminated"#) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("-") }
    }

    /// Objects nested at every position keep their own members; a repeated key keeps its last
    /// value, as Kong's decoder does; a failed read leaves no member behind for the next one.
    @Test func jsonObjectsNestAndTheLastRepeatedKeyWins() throws {
        let value = try JSONValue.parse(#"{"a":{"x":1,"y":{"z":[{"k":1},{}]}},"b":2,"a2":{"x":2},"b":3,"c":[{"d":{"e":{}}}]}"#)
        #expect(value == ["a": ["x": 1, "y": ["z": [["k": 1], [:]]]], "a2": ["x": 2], "b": 3, "c": [["d": ["e": [:]]]]])
        #expect(try JSONValue.parse(#"{"k":1,"k":{"k":2,"k":3}}"#) == ["k": ["k": 3]])
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#"{"a":{"b":1,"c":}"#) }
        let many = (0..<40).map { "\"m\($0)\":\($0)" }.joined(separator: ",")
        let wide = try JSONValue.parse("{\(many)}")
        #expect(wide.objectValue?.count == 40)
        #expect(wide["m39"] == 39)
    }
}

struct ErrorCase: Sendable, CustomTestStringConvertible {
    let input: [String: JSONValue]
    let expected: JSONValue
    init(_ input: [String: JSONValue], _ expected: JSONValue) {
        self.input = input
        self.expected = expected
    }
    var testDescription: String { input.description }
}
